"""Removing a workload from the plan: its delete command, run over SSH."""

from __future__ import annotations

import os
from pathlib import Path

from components import databases, services
from components.engines import data_dir, secret_file
from tests.provisioning.harness import SshHost, free_port, wait_until
from tests.provisioning.workloads import database_step, service
from tests.provisioning.workloads import databases as seed_databases


def test_removing_a_service_stops_and_disables_its_unit_and_deletes_its_releases(host: SshHost) -> None:
    port = free_port()
    plan = host.plan("tencent", services=[service("alpha", port, host.release("1.0.0"))])
    deploy = services.deploy_step("app", plan, plan.services[0])
    assert host.step(services.bootstrap_step("app", plan)).code == 0
    assert host.step(deploy).code == 0
    pid = host.service_pids()["platform-alpha.service"]
    wanted = host.units / "multi-user.target.wants/platform-alpha.service"
    assert os.readlink(wanted) == str(host.units / "platform-alpha.service")
    marker = Path(plan.paths.state) / f"ports/{port}"
    assert marker.exists()

    run = host.step(deploy, delete=True)

    assert run.code == 0, run
    assert run.stdout == "alpha: removed (unit stopped and disabled, releases deleted)\n"
    assert host.service_pids() == {}
    assert wait_until(lambda: not host.process_runs(pid), timeout=5)
    assert not os.path.lexists(wanted)
    assert not (host.units / "platform-alpha.service").exists()
    assert not (Path(plan.paths.root) / "alpha").exists()
    assert not marker.exists()


def test_removing_a_database_stops_its_container_and_keeps_its_data(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases("production-mysql"))
    db = plan.databases[0]
    step, stdin = database_step(plan, db)
    assert host.step(databases.bootstrap_step("db", plan)).code == 0
    assert host.step(step, stdin).code == 0
    data = Path(data_dir(db, plan.paths))
    (data / "ibdata1").write_bytes(b"the rows")

    run = host.step(step, delete=True)

    assert run.code == 0, run
    assert run.stdout == f"production-mysql: removed, data kept in {data}\n"
    assert host.container("production-mysql") is None
    removals = [c for c in host.podman_calls() if c[0] == "rm" or c[:2] == ["secret", "rm"]][-2:]
    assert removals[0][:4] == ["rm", "-v", "-f", "-i"]  # the Quadlet unit's ExecStop
    assert removals[1] == ["secret", "rm", "production-mysql"]
    assert not (host.quadlet / "production-mysql.container").exists()
    assert not Path(secret_file(db, plan.paths)).exists()
    assert host.podman_secret("production-mysql") is None
    assert (data / "ibdata1").read_bytes() == b"the rows"
    assert list(Path(plan.paths.state, "ports").iterdir()) == []


def test_removing_a_database_marked_purge_deletes_its_data(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases("production-redis", purge=True))
    db = plan.databases[0]
    step, stdin = database_step(plan, db)
    assert host.step(databases.bootstrap_step("db", plan)).code == 0
    assert host.step(step, stdin).code == 0
    data = Path(data_dir(db, plan.paths))
    (data / "appendonly.aof").write_bytes(b"SET k v")

    run = host.step(step, delete=True)

    assert run.code == 0, run
    assert run.stdout == "production-redis: removed, data purged\n"
    assert host.container("production-redis") is None
    assert not data.exists()
