"""Idempotence, as Molecule checks it: every script run a second time changes nothing and says so.

"Nothing" is strict: no file or directory under the host root gets a new inode, mtime, size or
mode (so not even a temporary file came and went), no service restarts, no container is
recreated, and the second run makes no systemctl call that would change a unit.
"""

from __future__ import annotations

from components import databases, services
from plan import RetiredDatabase, RetiredService
from tests.provisioning.harness import Run, SshHost, free_port
from tests.provisioning.workloads import database_step, service
from tests.provisioning.workloads import databases as seed_databases

READ_ONLY_SYSTEMCTL = ("is-active", "is-enabled")


def twice(host: SshHost, first: list[Run], again: list[Run]) -> None:
    assert all(run.code == 0 for run in first), first
    assert all(run.code == 0 for run in again), again


def changing_systemctl_calls(calls: list[str]) -> list[str]:
    return [call for call in calls if not call.startswith(READ_ONLY_SYSTEMCTL)]


def test_service_bootstrap_and_deploy(host: SshHost) -> None:
    port = free_port()
    plan = host.plan("tencent", services=[service("alpha", port, host.release("1.0.0"))])
    steps = [
        services.bootstrap_step("app", plan.layout, plan.host_check, plan.services),
        services.deploy_step("app", plan.layout, plan.services[0]),
    ]
    first = [host.step(step) for step in steps]
    assert first[1].stdout.splitlines()[-1] == "alpha: 1.0.0 deployed, healthy"
    before, pids, calls = host.snapshot(), host.service_pids(), len(host.systemctl_calls())

    again = [host.step(step) for step in steps]

    twice(host, first, again)
    assert again[0].stdout.splitlines()[-1] == "bootstrap: unchanged"
    assert again[1].stdout == "alpha: 1.0.0 unchanged, healthy\n"
    assert host.snapshot() == before
    assert host.service_pids() == pids
    assert changing_systemctl_calls(host.systemctl_calls()[calls:]) == []


def test_database_bootstrap_and_containers(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases())
    steps = [
        (databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases), ""),
        *(database_step(plan, db) for db in plan.databases),
    ]
    first = [host.step(step, stdin) for step, stdin in steps]
    before = host.snapshot()
    sysctl = (host.standin_state / "sysctl/vm.max_map_count").stat().st_mtime_ns
    containers = {db.name: host.container(db.name) for db in plan.databases}
    podman_calls, systemctl_calls = len(host.podman_calls()), len(host.systemctl_calls())

    again = [host.step(step, stdin) for step, stdin in steps]

    twice(host, first, again)
    assert again[0].stdout.splitlines()[-1] == "bootstrap: unchanged"
    assert [run.stdout for run in again[1:]] == [f"{db.name}: unchanged, healthy\n" for db in plan.databases]
    assert host.snapshot() == before
    assert (host.standin_state / "sysctl/vm.max_map_count").stat().st_mtime_ns == sysctl
    assert {db.name: host.container(db.name) for db in plan.databases} == containers
    later = host.podman_calls()[podman_calls:]
    assert {call[0] for call in later} == {"--version", "healthcheck", "secret"}
    assert {tuple(call[:2]) for call in later if call[0] == "secret"} == {("secret", "inspect")}  # read only
    assert changing_systemctl_calls(host.systemctl_calls()[systemctl_calls:]) == []


def test_retirements(host: SshHost) -> None:
    app = host.plan("tencent", services=[service("alpha", free_port(), host.release("1.0.0"))])
    db = host.plan("alibaba", databases=seed_databases("production-redis"))
    container, stdin = database_step(db, db.databases[0])
    deploy = services.deploy_step("app", app.layout, app.services[0])
    for step, text in (
        (services.bootstrap_step("app", app.layout, app.host_check, app.services), ""),
        (deploy, ""),
        (databases.bootstrap_step("db", db.layout, db.host_check, db.databases), ""),
        (container, stdin),
    ):
        assert host.step(step, text).code == 0
    retirements = [
        services.retire_step("app", app.layout, RetiredService(name="alpha")),
        databases.retire_step("db", db.layout, RetiredDatabase(name="production-redis")),
    ]
    first = [host.step(step) for step in retirements]
    before, calls = host.snapshot(), len(host.systemctl_calls())

    again = [host.step(step) for step in retirements]

    twice(host, first, again)
    assert [run.stdout for run in again] == [
        "alpha: unchanged (already retired)\n",
        "production-redis: unchanged (already retired)\n",
    ]
    assert host.snapshot() == before
    assert changing_systemctl_calls(host.systemctl_calls()[calls:]) == []
