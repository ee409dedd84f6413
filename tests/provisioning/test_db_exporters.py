"""The database exporters over SSH on loopback: each exporter's user made inside the real engine
(Debian's MariaDB, PostgreSQL and Redis, reached through the podman stand-in as the host reaches its
containers), its credential file written, and Debian's mysqld, postgres and redis exporters run by
the monitoring step under the systemctl stand-in, each reporting its engine up while its user can
read no data."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import monitoring
from components.engines import POSTGRES_SUPERUSER, secret_content, secret_file
from components.exporters import EXPORTER_USER, credential_file, exporter_password, exporter_step, redis_acl_line
from plan import Plan
from tests.provisioning import real_engines
from tests.provisioning.harness import SshHost, password_for

# RESIDENT: what `make bench` prints, beside the other monitoring programs.
from tests.provisioning.test_monitoring_loopback import RESIDENT, resident_mib
from tests.provisioning.workloads import free_ports

EXPORTERS = ("mysqld-exporter", "postgres-exporter", "redis-exporter")
IMAGES = {
    "mysql": "docker.io/library/mariadb:10.11",
    "postgres": "docker.io/library/postgres:16",
    "redis": "docker.io/library/redis:7",
}
UP = {"mysqld-exporter": "mysql_up 1", "postgres-exporter": "pg_up 1", "redis-exporter": "redis_up 1"}

missing = [monitoring.binary_of(p) for p in ("node-exporter", *EXPORTERS) if not Path(monitoring.binary_of(p)).exists()]
pytestmark = pytest.mark.skipif(
    bool(missing), reason=f"needs {', '.join(missing)} (Debian's prometheus-*-exporter packages; .ci/run installs them)"
)


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[list[real_engines.Instance]]:
    for kind in ("mysql", "postgres", "redis"):
        if reason := real_engines.unavailable(kind):
            pytest.skip(reason)
    started: list[real_engines.Instance] = []
    yield started
    for instance in started:
        instance.close()


def database(kind: str, port: int) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": f"production-{kind}",
        "image": IMAGES[kind],
        "memoryMib": 128,
        "ports": [{"port": port, "expose": "peer"}],
    }


def alibaba_plan(host: SshHost, ports: dict[str, int], exporter_ports: list[int]) -> Plan:
    monitored = dict(zip(("node-exporter", *EXPORTERS), exporter_ports, strict=True))
    # Only the programs this host runs: node exporter and the exporters of its databases' kinds.
    running = {"node-exporter", *(f"{'mysqld' if kind == 'mysql' else kind}-exporter" for kind in ports)}
    monitored = {name: port for name, port in monitored.items() if name in running}
    return host.plan(
        "alibaba",
        databases=[database(kind, port) for kind, port in ports.items()],
        extra={"monitoring": {"enabled": True, "ports": monitored}},
    )


def write_secret(plan: Plan, kind: str) -> Path:
    """The database's secret file as its container step writes it (Redis's: requirepass and the
    exporter's ACL user)."""
    db = next(d for d in plan.databases if d.kind == kind)
    path = Path(secret_file(db.name, plan.paths))
    path.parent.mkdir(parents=True, exist_ok=True)
    acl = redis_acl_line(exporter_password(password_for(db.name), db)) if kind == "redis" else None
    path.write_text(secret_content(db, password_for(db.name), None, acl))
    path.chmod(0o600)
    return path


def as_exporter(
    kind: str, instance: real_engines.Instance, password: str, statement: str
) -> subprocess.CompletedProcess[str]:
    """``statement`` run by the exporter's user, over TCP as the exporter connects."""
    match kind:
        case "mysql":
            argv = ["/usr/bin/mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(instance.port),
                    "-u", EXPORTER_USER, f"-p{password}", "-N", "-B", "-e", statement]  # fmt: skip
            return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        case "postgres":
            argv = ["/usr/bin/psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(instance.port), "-U", EXPORTER_USER,
                    "-d", "postgres", "-c", statement]  # fmt: skip
            env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": password}
            return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, env=env)
        case _:
            argv = ["/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", str(instance.port), *instance.redis_tls_args(),
                    "--user", EXPORTER_USER, "--pass", password, "--no-auth-warning", *statement.split()]  # fmt: skip
            return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def metrics(port: int) -> str:
    result = subprocess.run(
        ["curl", "-fsS", "--max-time", "10", f"http://127.0.0.1:{port}/metrics"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def test_each_database_exporter_logs_in_as_its_own_user_and_reports_its_engine_up(
    host: SshHost, tmp_path: Path, engines: list[real_engines.Instance]
) -> None:
    exporter_ports = free_ports(4)
    mysql = real_engines.start_mysql(tmp_path / "mysql")
    engines.append(mysql)
    postgres = real_engines.start_postgres(tmp_path / "postgres")
    engines.append(postgres)
    postgres.query(f"CREATE ROLE {POSTGRES_SUPERUSER} SUPERUSER LOGIN")  # what the image makes from POSTGRES_USER
    # Redis reads its auth file at start: the file from a plan with a provisional port (the port is
    # not part of it), then the plan with the port Redis got.
    provisional = alibaba_plan(host, {"mysql": mysql.port, "postgres": postgres.port, "redis": 6379}, exporter_ports)
    auth = write_secret(provisional, "redis")
    tls = real_engines.make_tls(tmp_path / "tls")
    redis_db = next(d for d in provisional.databases if d.kind == "redis")
    redis = real_engines.start_redis_source(tmp_path / "redis", auth, tls, password_for(redis_db.name))
    engines.append(redis)
    instances = {"mysql": mysql, "postgres": postgres, "redis": redis}
    plan = alibaba_plan(host, {kind: instance.port for kind, instance in instances.items()}, exporter_ports)
    for kind, instance in instances.items():
        write_secret(plan, kind)
        real_engines.attach(instance, f"production-{kind}", host.standin_state, env={} if kind == "redis" else None)

    passwords = {}
    for exporter, db in plan.exported_databases.items():
        password = exporter_password(password_for(db.name), db)
        passwords[db.kind.value] = password
        step = exporter_step("alibaba-db", plan.layout, exporter, db, db.name in plan.tls_only, "")
        first = host.step(step, password)
        assert first.code == 0, first
        assert f"{db.name}: {credential_file(plan.paths, exporter)} written" in first.stdout
        assert password not in first.stdout + first.stderr
        assert oct(Path(credential_file(plan.paths, exporter)).stat().st_mode & 0o777) == "0o600"
        again = host.step(step, password)
        assert again.code == 0, again
        assert again.stdout.strip() == f"{db.name}: unchanged (exporter user {EXPORTER_USER})"

    step = monitoring.monitoring_step("alibaba", plan.monitoring_plan)
    installed = host.step(step, "", timeout=180)
    assert installed.code == 0, installed
    pids = host.service_pids()
    for workload in plan.monitoring_workloads:
        if workload.name in UP:
            assert UP[workload.name] in metrics(workload.ports[0].port).splitlines(), workload.name
            unit = monitoring.unit_name(workload.name)
            RESIDENT.append((workload.name, round(resident_mib(pids[unit]), 1), float(workload.memory_mib)))

    # What the users may do: their metrics, and no data.
    mysql.query("CREATE DATABASE app; CREATE TABLE app.items (id INT PRIMARY KEY); INSERT INTO app.items VALUES (1)")
    denied = as_exporter("mysql", mysql, passwords["mysql"], "SELECT id FROM app.items")
    assert "denied" in denied.stderr, denied
    assert as_exporter("mysql", mysql, passwords["mysql"], "SHOW GLOBAL STATUS LIKE 'Uptime'").returncode == 0
    grants = mysql.query(f"SHOW GRANTS FOR '{EXPORTER_USER}'@'%'")
    assert grants.count("GRANT ") == 2, grants
    postgres.query("CREATE TABLE items (id int); INSERT INTO items VALUES (1)")
    refused = as_exporter("postgres", postgres, passwords["postgres"], "SELECT id FROM items")
    assert "permission denied" in refused.stderr, refused
    assert (
        as_exporter("postgres", postgres, passwords["postgres"], "SELECT count(*) FROM pg_stat_activity").returncode
        == 0
    )
    redis.query(["SET", "secret-key", "value"], password=password_for(redis_db.name))
    for command in ("GET secret-key", "CONFIG GET requirepass", "FLUSHALL"):
        answer = as_exporter("redis", redis, passwords["redis"], command)
        assert "NOPERM" in answer.stdout + answer.stderr, (command, answer)
    assert "redis_version" in as_exporter("redis", redis, passwords["redis"], "INFO server").stdout

    rerun = host.step(step, "", timeout=180)
    assert rerun.code == 0, rerun
    assert rerun.stdout.strip() == "monitoring: unchanged"


def test_an_exporter_user_with_more_than_its_commands_is_refused(
    host: SshHost, tmp_path: Path, engines: list[real_engines.Instance]
) -> None:
    """A Redis whose auth file gives the exporter's user more than its commands (edited by hand):
    the step says which, and writes no credential file."""
    exporter_ports = free_ports(4)
    plan = alibaba_plan(host, {"redis": 6379}, exporter_ports)
    db = plan.databases[0]
    auth = Path(secret_file(db.name, plan.paths))
    auth.parent.mkdir(parents=True, exist_ok=True)
    password = exporter_password(password_for(db.name), db)
    auth.write_text(secret_content(db, password_for(db.name), None, redis_acl_line(password).replace("\n", " +get\n")))
    auth.chmod(0o600)
    redis = real_engines.start_redis_source(
        tmp_path / "redis", auth, real_engines.make_tls(tmp_path / "tls"), password_for(db.name)
    )
    engines.append(redis)
    real_engines.attach(redis, db.name, host.standin_state, env={})
    refused = host.step(
        exporter_step("alibaba-db", plan.layout, "redis-exporter", db, db.name in plan.tls_only, ""), password
    )
    assert refused.code == 4, refused
    assert f"user {EXPORTER_USER} may run other commands than the exporter needs" in refused.stderr
    assert not Path(credential_file(plan.paths, "redis-exporter")).exists()
