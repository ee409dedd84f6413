"""Retiring a workload (platform:retired): its retire step, run over SSH."""

from __future__ import annotations

import os
from pathlib import Path

from components import databases, services
from components.engines import data_dir, secret_file
from plan import RetiredDatabase, RetiredService
from tests.provisioning.harness import SshHost, free_port, wait_until
from tests.provisioning.workloads import database_step, service
from tests.provisioning.workloads import databases as seed_databases


def test_retiring_a_service_stops_and_disables_its_unit_and_deletes_its_releases(host: SshHost) -> None:
    port, neighbour_port = free_port(), free_port()
    plan = host.plan(
        "tencent",
        services=[
            service("alpha", port, host.release("1.0.0")),
            service("beta", neighbour_port, host.release("1.0.0")),
        ],
    )
    assert host.step(services.bootstrap_step("app", plan.layout, plan.host_check, plan.services)).code == 0
    for deployed in plan.services:
        assert host.step(services.deploy_step("app", plan.layout, deployed)).code == 0
    pid = host.service_pids()["platform-alpha.service"]
    wanted = host.units / "multi-user.target.wants/platform-alpha.service"
    assert os.readlink(wanted) == str(host.units / "platform-alpha.service")
    ports = Path(plan.paths.state) / "ports"
    assert (ports / str(port)).read_text() == "alpha\n"
    # What a service with credentials and an uploaded release also leaves on the host.
    credentials, uploads = Path(plan.paths.secrets) / "services/alpha", Path(plan.paths.uploads) / "alpha"
    for directory in (credentials, uploads):
        directory.mkdir(parents=True, exist_ok=True)
    (credentials / "JWT_SECRET").write_text("x")
    (credentials / "JWT_SECRET").chmod(0o600)
    (uploads / "1.0.0").write_text("tarball")
    neighbour = Path(plan.paths.secrets) / "services/beta"
    neighbour.mkdir(parents=True)
    (neighbour / "JWT_SECRET").write_text("y")
    (neighbour / "JWT_SECRET").chmod(0o600)

    run = host.step(services.retire_step("app", plan.layout, RetiredService(name="alpha")))

    assert run.code == 0, run
    assert run.stdout == "alpha: retired (unit stopped and disabled, releases, credentials and uploads deleted)\n"
    assert not credentials.exists()
    assert not uploads.exists()
    assert (Path(plan.paths.secrets) / "services/beta/JWT_SECRET").read_text() == "y"  # the neighbour's stay
    assert set(host.service_pids()) == {"platform-beta.service"}
    assert wait_until(lambda: not host.process_runs(pid), timeout=5)
    assert not os.path.lexists(wanted)
    assert not (host.units / "platform-alpha.service").exists()
    assert not (Path(plan.paths.root) / "alpha").exists()
    assert [p.name for p in ports.iterdir()] == [str(neighbour_port)]  # only its own marker went


def test_retiring_a_database_stops_its_container_and_keeps_its_data(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases("production-mysql"))
    db = plan.databases[0]
    step, stdin = database_step(plan, db)
    assert host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
    assert host.step(step, stdin).code == 0
    data = Path(data_dir(db.name, plan.paths))
    (data / "ibdata1").write_bytes(b"the rows")

    run = host.step(databases.retire_step("db", plan.layout, RetiredDatabase(name=db.name)))

    assert run.code == 0, run
    assert run.stdout == f"production-mysql: retired, data kept in {data}\n"
    assert host.container("production-mysql") is None
    removals = [c for c in host.podman_calls() if c[0] == "rm" or c[:2] == ["secret", "rm"]][-2:]
    assert removals[0][:4] == ["rm", "-v", "-f", "-i"]  # the Quadlet unit's ExecStop
    assert removals[1] == ["secret", "rm", "production-mysql"]
    assert not (host.quadlet / "production-mysql.container").exists()
    assert not Path(secret_file(db.name, plan.paths)).exists()
    assert host.podman_secret("production-mysql") is None
    assert (data / "ibdata1").read_bytes() == b"the rows"
    assert list(Path(plan.paths.state, "ports").iterdir()) == []


def test_retiring_a_database_with_purge_deletes_its_data(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases("production-redis"))
    db = plan.databases[0]
    step, stdin = database_step(plan, db)
    assert host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
    assert host.step(step, stdin).code == 0
    data = Path(data_dir(db.name, plan.paths))
    (data / "appendonly.aof").write_bytes(b"SET k v")

    run = host.step(databases.retire_step("db", plan.layout, RetiredDatabase(name=db.name, purge=True)))

    assert run.code == 0, run
    assert run.stdout == "production-redis: retired, data purged\n"
    assert host.container("production-redis") is None
    assert not data.exists()


def test_retiring_a_unit_the_platform_never_deployed_is_refused_before_anything_changes(host: SshHost) -> None:
    """``retired.databases: [{name: sshd}]`` would stop ``sshd.service``: a running unit with no platform
    Quadlet file behind it is refused, and so is a hand-made ``.container`` of that name."""
    plan = host.plan("alibaba", databases=seed_databases("production-redis"))
    assert host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
    (host.units / "sshd.service").write_text("[Service]\nExecStart=/bin/sleep 300\n")
    assert host.run("systemctl start sshd.service", label="a unit of the system").code == 0
    handmade = host.quadlet / "cache.container"
    handmade.write_text("[Container]\nImage=docker.io/library/redis:7\n")
    before = host.snapshot()
    calls = len(host.systemctl_calls())

    foreign = host.step(databases.retire_step("db", plan.layout, RetiredDatabase(name="sshd", purge=True)))
    hand = host.step(databases.retire_step("db", plan.layout, RetiredDatabase(name="cache")))

    assert foreign.code == 3, foreign
    assert foreign.stderr.strip() == (
        f"sshd: sshd.service runs, but the platform never deployed it (no {host.quadlet}/sshd.container); "
        "refusing to stop it (nothing changed)"
    )
    assert hand.code == 3, hand
    assert f"cache: {handmade} was not written by the platform; refusing to retire it" in hand.stderr
    assert [c for c in host.systemctl_calls()[calls:] if not c.startswith("is-active")] == []
    assert host.run("systemctl is-active sshd.service", label="still running").stdout.strip() == "active"
    assert handmade.exists()
    assert host.snapshot() == before
