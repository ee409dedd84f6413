"""Host check: a host that does not match the plan stops the bootstrap before anything changes."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from components import databases, services
from tests.provisioning.harness import SshHost, free_port
from tests.provisioning.workloads import databases as seed_databases
from tests.provisioning.workloads import service


def mem_total_mib() -> int:
    line = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    return int(line.split()[1]) // 1024


def assert_stopped_cleanly(host: SshHost, run_stdout: str, run_stderr: str, before: dict[str, tuple[object, ...]]):
    lines = run_stderr.splitlines()
    assert len(lines) == 1, run_stderr
    assert lines[0].startswith("host check: "), run_stderr
    assert run_stdout == ""
    assert host.snapshot() == before, "the host check changed files on the host"
    assert host.systemctl_calls() == []
    assert host.podman_calls() == []


def test_os_family_the_plan_does_not_support_stops_the_service_bootstrap(host: SshHost) -> None:
    plan = host.plan(
        "tencent",
        services=[service("alpha", free_port(), host.release("1.0.0"))],
        host={"osFamilies": ["rhel", "alinux"]},
    )
    before = host.snapshot()

    run = host.step(services.bootstrap_step("app", plan.layout, plan.host_check, plan.services))

    assert run.code == 3, run
    assert_stopped_cleanly(host, run.stdout, run.stderr, before)
    assert "OS 'debian' is not one of the supported families (platform:host.osFamilies): rhel alinux" in run.stderr


def test_plan_memory_beyond_what_the_host_has_stops_the_database_bootstrap(host: SshHost) -> None:
    actual = mem_total_mib()
    plan = host.plan("alibaba", databases=seed_databases("production-redis"), host={"memoryMib": actual + 512})
    before = host.snapshot()

    run = host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases))

    assert run.code == 3, run
    assert_stopped_cleanly(host, run.stdout, run.stderr, before)
    assert f"host has {actual} MiB of memory, the plan budgets {actual + 512} MiB" in run.stderr
    assert "platform:host.memoryMib" in run.stderr


def test_a_disk_fuller_than_the_plan_allows_stops_the_service_bootstrap(host: SshHost) -> None:
    plan = host.plan(
        "tencent",
        services=[service("alpha", free_port(), host.release("1.0.0"))],
        host={"minFreeDiskMib": 1 << 26},  # 64 TiB, the plan's ceiling: more than any test machine has free
    )
    before = host.snapshot()

    run = host.step(services.bootstrap_step("app", plan.layout, plan.host_check, plan.services))

    assert run.code == 3, run
    assert_stopped_cleanly(host, run.stdout, run.stderr, before)
    assert re.fullmatch(
        rf"host check: only \d+ MiB free under /\S+, the plan needs {1 << 26} MiB \(platform:host.minFreeDiskMib\)\n",
        run.stderr,
    ), run.stderr


def test_plan_port_taken_by_an_undeclared_listener_stops_the_bootstrap(host: SshHost) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        plan = host.plan("tencent", services=[service("alpha", port, host.release("1.0.0"))])
        before = host.snapshot()

        run = host.step(services.bootstrap_step("app", plan.layout, plan.host_check, plan.services))

    assert run.code == 3, run
    assert_stopped_cleanly(host, run.stdout, run.stderr, before)
    assert f"port {port}/tcp is already taken by a process the plan does not declare" in run.stderr


def test_listener_on_a_declared_existing_workload_port_passes(host: SshHost) -> None:
    with socket.socket() as nginx:
        nginx.bind(("127.0.0.1", 0))
        nginx.listen()
        port = nginx.getsockname()[1]
        plan = host.plan(
            "tencent",
            services=[service("alpha", free_port(), host.release("1.0.0"))],
            existing=[{"name": "nginx", "memoryMib": 64, "ports": [{"port": port, "expose": "public"}]}],
        )

        run = host.step(services.bootstrap_step("app", plan.layout, plan.host_check, plan.services))

    assert run.code == 0, run
    assert run.stdout.startswith(f"host check: ok ({mem_total_mib()} MiB memory")
    assert (host.root / "opt/platform").is_dir()


# --- listeners beyond loopback (the ss stand-in plays them: no test may open one) ----------------

# What the architecture document lists as already running on the Tencent host.
DAO_WEB = 'LISTEN 0 4096 0.0.0.0:9200 0.0.0.0:* users:(("dao-web",pid=4242,fd=7))'
BLOCKCHAIN = 'LISTEN 0 511 [::]:8300 [::]:* users:(("node",pid=4343,fd=21))'
SSHD = 'LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))'


def play_listeners(host: SshHost, *lines: str) -> None:
    played = host.standin_state / "ss/listeners"
    played.parent.mkdir(parents=True, exist_ok=True)
    played.write_text("".join(f"{line}\n" for line in lines))


def test_listeners_beyond_loopback_that_the_plan_does_not_declare_stop_the_bootstrap(host: SshHost) -> None:
    play_listeners(host, SSHD, DAO_WEB, BLOCKCHAIN)
    plan = host.plan("tencent", services=[service("alpha", free_port(), host.release("1.0.0"))])
    before = host.snapshot()

    run = host.step(services.bootstrap_step("app", plan.layout, plan.host_check, plan.services))

    assert run.code == 3, run
    assert_stopped_cleanly(host, run.stdout, run.stderr, before)
    assert run.stderr == (
        "host check: 2 TCP listener(s) beyond loopback that the plan does not declare (its firewall would cut them "
        "off): 9200/tcp on 0.0.0.0 (dao-web), 8300/tcp on :: (node); declare each under platform:existing, or set "
        "platform:host.allowUndeclared: true\n"
    )


def test_declared_listeners_pass_and_allow_undeclared_names_what_it_leaves_running(host: SshHost) -> None:
    play_listeners(host, SSHD, DAO_WEB, BLOCKCHAIN)
    alpha = service("alpha", free_port(), host.release("1.0.0"))
    dao_web = {"name": "dao-web", "memoryMib": 64, "ports": [{"port": 9200, "expose": "public"}]}
    declared = host.plan("tencent", services=[alpha], existing=[dao_web])

    refused = host.step(services.bootstrap_step("app", declared.layout, declared.host_check, declared.services))
    allowing = host.plan("tencent", services=[alpha], existing=[dao_web], host={"allowUndeclared": True})
    allowed = host.step(services.bootstrap_step("app", allowing.layout, allowing.host_check, allowing.services))

    assert refused.code == 3, refused
    assert "1 TCP listener(s) beyond loopback" in refused.stderr
    assert "8300/tcp on :: (node)" in refused.stderr
    assert allowed.code == 0, allowed
    assert allowed.stdout.startswith(
        "host check: left running, not declared (platform:host.allowUndeclared): 8300/tcp on :: (node)\n"
        "host check: ok ("
    )


def test_podman_without_quadlet_memory_limits_stops_with_what_to_do(host: SshHost) -> None:
    host.set_podman_version("3.4.4")  # what Ubuntu 22.04 ships
    plan = host.plan("alibaba", databases=seed_databases("production-redis"))
    before = host.snapshot()

    run = host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases))

    assert run.code == 4, run
    assert run.stdout.startswith("host check: ok")
    assert run.stderr.splitlines() == [
        "bootstrap: podman 3.4.4 has no Quadlet PodmanArgs= (needs >= 4.5). Ubuntu 22.04 ships 3.4: move to "
        "Ubuntu 24.04, Alibaba Cloud Linux 3 or a current RHEL-family release."
    ]
    assert host.snapshot() == before
