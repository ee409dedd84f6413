"""Native services: health-gated deploys, rollback, pruning, and batches that stop on a failure."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from components import services
from plan import Plan
from tests.provisioning.harness import Run, SshHost, free_port
from tests.provisioning.schedule import remote_commands, up
from tests.provisioning.workloads import service
from tests.stacks import evaluate


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def listening(port: int) -> bool:
    try:
        get(port, "/version")
    except OSError:
        return False
    return True


def deploy(host: SshHost, port: int, release: dict[str, str], keep: int = 3, **fields: Any) -> tuple[Run, Plan]:
    plan = host.plan("tencent", services=[service("alpha", port, release, **fields)], keep_releases=keep)
    return host.step(services.deploy_step("app", plan.layout, plan.services[0])), plan


def bootstrap(host: SshHost, port: int) -> None:
    plan = host.plan("tencent", services=[service("alpha", port, host.release("A"))])
    assert host.step(services.bootstrap_step("app", plan.layout, plan.host_check, plan.services)).code == 0


def test_healthy_release_serves_a_failing_one_rolls_back_and_old_releases_are_pruned(host: SshHost) -> None:
    port = free_port()
    bootstrap(host, port)
    service_dir = Path(host.paths()["root"]) / "alpha"

    a, _ = deploy(host, port, host.release("A"), keep=2)
    assert a.code == 0, a
    assert a.stdout.splitlines() == ["alpha: unpacked A", "alpha: A deployed, healthy"]
    assert get(port, "/version") == (200, "A")
    pid_a = host.service_pids()["platform-alpha.service"]

    b, _ = deploy(host, port, host.release("B", "unhealthy"), keep=2, healthTimeoutS=3)
    assert b.code == 7, b
    assert f"alpha: B failed http://127.0.0.1:{port}/health within 3s (HTTP 503: B: database unreachable;" in b.stderr
    assert "alpha: rolled back to A, healthy" in b.stderr
    assert get(port, "/version") == (200, "A")
    assert os.readlink(service_dir / "current") == str(service_dir / "releases/A")
    assert host.service_pids()["platform-alpha.service"] != pid_a  # A was started again

    c, _ = deploy(host, port, host.release("C"), keep=2)
    assert c.code == 0, c
    assert get(port, "/version") == (200, "C")
    assert os.readlink(service_dir / "previous") == str(service_dir / "releases/A")
    # keepReleases 2: current and previous stay; B, which never went live, is pruned.
    assert "alpha: pruned B" in c.stdout
    assert sorted(p.name for p in (service_dir / "releases").iterdir()) == ["A", "C"]

    d, _ = deploy(host, port, host.release("D"), keep=2)
    assert d.code == 0, d
    assert get(port, "/version") == (200, "D")
    assert os.readlink(service_dir / "previous") == str(service_dir / "releases/C")
    assert sorted(p.name for p in (service_dir / "releases").iterdir()) == ["C", "D"]


def test_release_that_crashes_on_start_is_rolled_back(host: SshHost) -> None:
    port = free_port()
    bootstrap(host, port)
    assert deploy(host, port, host.release("A"))[0].code == 0

    crash, _ = deploy(host, port, host.release("B", "crash"), healthTimeoutS=3)

    assert crash.code == 7, crash
    assert "Failed to connect" in crash.stderr  # the health output: nothing listens
    assert "unit failed)" in crash.stderr
    assert "alpha: rolled back to A, healthy" in crash.stderr
    assert get(port, "/version") == (200, "A")


def test_slow_release_that_answers_within_its_timeout_is_deployed(host: SshHost) -> None:
    port = free_port()
    bootstrap(host, port)

    slow, _ = deploy(host, port, host.release("S", "slow:1.5"), healthTimeoutS=10)

    assert slow.code == 0, slow
    assert get(port, "/health") == (200, "ok S")


def test_first_release_that_fails_leaves_no_unit_behind(host: SshHost) -> None:
    port = free_port()
    bootstrap(host, port)

    bad, plan = deploy(host, port, host.release("B", "unhealthy"), healthTimeoutS=1)

    assert bad.code == 7, bad
    assert "alpha: no earlier release to roll back to; stopped and removed its unit" in bad.stderr
    assert not listening(port)
    assert not (host.units / "platform-alpha.service").exists()
    assert not list(host.units.glob("*.wants/platform-alpha.service"))
    assert not (Path(plan.paths.root) / "alpha/current").exists()


def test_artifact_with_another_checksum_changes_nothing(host: SshHost) -> None:
    port = free_port()
    bootstrap(host, port)
    assert deploy(host, port, host.release("A"))[0].code == 0
    before = host.snapshot()
    pid = host.service_pids()["platform-alpha.service"]
    tampered = {**host.release("B"), "sha256": "0" * 64}

    run, _ = deploy(host, port, tampered)

    assert run.code == 6, run
    assert "does not match its sha256" in run.stderr
    assert host.snapshot() == before
    assert host.service_pids()["platform-alpha.service"] == pid


def test_unit_change_alone_restarts_the_same_release(host: SshHost) -> None:
    port = free_port()
    bootstrap(host, port)
    assert deploy(host, port, host.release("A"))[0].code == 0
    pid = host.service_pids()["platform-alpha.service"]

    run, _ = deploy(host, port, host.release("A"), memoryMib=96)

    assert run.code == 0, run
    assert run.stdout.splitlines() == ["alpha: A deployed, healthy"]
    assert "MemoryMax=96M" in (host.units / "platform-alpha.service").read_text()
    assert host.service_pids()["platform-alpha.service"] != pid
    assert get(port, "/version") == (200, "A")


def tencent_stack(host: SshHost, entries: list[dict[str, Any]], batches: list[list[str]]) -> list[Any]:
    """The real program's remote commands for these services, pointed at this host."""
    stack = evaluate(
        "tencent",
        services=entries,
        batches=batches,
        existing=[],
        proxy=None,  # no nginx among the existing workloads (tests/provisioning/test_app_platform.py has it)
        monitoring={"enabled": False},  # tests/provisioning/test_monitoring_loopback.py runs it
        paths=host.paths(),
        host={"sshUser": "root", "hostKey": host.host_key, "memoryMib": 2048},
    )
    return remote_commands(stack)


def test_failing_batch_stops_the_later_batches(host: SshHost) -> None:
    alpha, beta, gamma = free_port(), free_port(), free_port()
    entries = [
        service("alpha", alpha, host.release("1.0.0")),
        service("beta", beta, host.release("1.0.0-bad", "unhealthy"), healthTimeoutS=1),
        service("gamma", gamma, host.release("1.0.0")),
    ]
    commands = tencent_stack(host, entries, [["alpha", "beta"], ["gamma"]])

    outcome = up(host, commands)

    assert {name: (run.code if run else None) for name, run in outcome.items()} == {
        "tencent-svc-bootstrap": 0,
        "tencent-svc-alpha": 0,
        "tencent-svc-beta": 7,
        "tencent-svc-gamma": None,  # never started: it depends on batch 1
        "tencent-svc-monitoring": 0,  # off in this plan: it finds nothing of an earlier one to remove
    }
    assert get(alpha, "/version") == (200, "1.0.0")
    assert not listening(beta)
    assert not listening(gamma)
    assert not (Path(host.paths()["root"]) / "gamma").exists()
    assert not (host.units / "platform-gamma.service").exists()


def test_batches_run_in_order_when_every_deploy_is_healthy(host: SshHost) -> None:
    ports = {name: free_port() for name in ("alpha", "beta", "gamma")}
    entries = [service(name, port, host.release("1.0.0")) for name, port in ports.items()]
    commands = tencent_stack(host, entries, [["alpha", "beta"], ["gamma"]])

    outcome = up(host, commands)

    assert all(run is not None and run.code == 0 for run in outcome.values()), outcome
    for port in ports.values():
        assert get(port, "/version") == (200, "1.0.0")
    started = {name: host.service_started_at(f"platform-{name}.service") for name in ports}
    assert started["gamma"] > max(started["alpha"], started["beta"])


def test_a_changed_artifact_under_a_version_already_unpacked_is_refused(host: SshHost) -> None:
    port = free_port()
    bootstrap(host, port)
    first = host.release("A")
    assert deploy(host, port, first)[0].code == 0
    before, pid = host.snapshot(), host.service_pids()["platform-alpha.service"]
    changed = host.release("A", "crash")  # the same version from another tarball, with its own sha256

    run, _ = deploy(host, port, changed)

    assert run.code == 6, run
    assert run.stderr == (
        f"alpha: A is already unpacked from an artifact with sha256 {first['sha256']}, the plan now gives "
        f"{changed['sha256']}: a changed artifact needs a new version; nothing changed\n"
    )
    assert host.snapshot() == before
    assert host.service_pids()["platform-alpha.service"] == pid


def test_a_host_deployed_before_the_healthy_record_keeps_serving_and_rolls_back_to_it(host: SshHost) -> None:
    port = free_port()
    bootstrap(host, port)
    assert deploy(host, port, host.release("A"))[0].code == 0
    service_dir = Path(host.paths()["root"]) / "alpha"
    # What an earlier version of svc_deploy.sh left: no healthy record, no digest beside the release.
    (service_dir / "healthy").unlink()
    (service_dir / "sha256/A").unlink()
    pid = host.service_pids()["platform-alpha.service"]

    again, _ = deploy(host, port, host.release("A"))

    assert again.code == 0, again
    assert again.stdout.splitlines() == [
        "alpha: recorded the sha256 of A",
        "alpha: recorded A as its healthy release",
        "alpha: A unchanged, healthy",
    ]
    assert host.service_pids()["platform-alpha.service"] == pid  # adopted, not restarted
    bad, _ = deploy(host, port, host.release("B", "unhealthy"), healthTimeoutS=1)
    assert bad.code == 7, bad
    assert bad.stderr.endswith("alpha: rolled back to A, healthy\n")
    assert get(port, "/version") == (200, "A")
