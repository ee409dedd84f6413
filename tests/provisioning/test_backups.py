"""Backups and the restore drill, run for real: the installer over SSH, then the timer's service.

The installer (``db_backup.sh``) is rendered by ``components.backups`` and run as its
``remote.Command`` would. The stand-in systemctl never fires a timer, so each test runs the
service's ``ExecStart=`` (read from the unit file the installer wrote) over SSH itself, as
systemd would when the timer elapses. MariaDB 10.11, PostgreSQL 15 and Redis 7 are real
(tests/provisioning/real_engines.py): ``podman exec <container>`` reaches them through the
podman stand-in; the drill's scratch container is a second real instance. Neo4j,
Elasticsearch and Weaviate cannot run here: their tests go as far as the stand-ins honestly
allow (the maintenance window around neo4j-admin, a failing snapshot API) and no further.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from components import databases as databases_component
from components.backups import OffHostTarget, backup_step, backup_unit, database_config_file, drill_step
from components.engines import data_dir
from plan import Plan, load_plan
from policies._scan import data_removals, secret_literals
from policies.backups import static_credentials
from policies.data_protection import removal_problems
from tests.provisioning import real_engines
from tests.provisioning.harness import Run, SshHost, free_port, password_for
from tests.provisioning.real_engines import Instance, attach
from tests.provisioning.workloads import database_step
from tests.provisioning.workloads import databases as seed_databases
from tests.stacks import exactly

ROLE = "platform-loopback-backups"
BUCKET = "platform-loopback-backups-0123abcd"
TARGET = OffHostTarget(
    bucket=BUCKET, prefix="platform/", endpoint="oss-cn-shenzhen-internal.aliyuncs.com", ram_role=ROLE
)
DAY = 86400
# Monday 2025-01-06 03:00 UTC: the first day of ISO week 2025-W02.
MONDAY = int(datetime(2025, 1, 6, 3, tzinfo=UTC).timestamp())
# Backup size and time per engine (``make bench`` prints them): engine, bytes, seconds.
FIGURES: list[tuple[str, int, float]] = []


# --- the host ------------------------------------------------------------------------------------


def backup_plan(host: SshHost, *names: str, not_backed_up: Sequence[str] = (), **backups: Any) -> Plan:
    """The seeds' databases named, on free ports, with the host's paths (backups included);
    those in ``not_backed_up`` say ``backup: none``."""
    databases = [
        {**db, "backup": {"none": "rebuilt from the other databases"}} if db["name"] in not_backed_up else db
        for db in seed_databases(*names)
    ]
    config = {
        "platform:cloud": "alibaba",
        "platform:host": json.dumps(
            {
                "mode": "adopt",
                "instanceId": "i-loopback",
                "publicIp": "203.0.113.10",
                "hostKey": host.host_key,
                "memoryMib": 2048,
                "cpus": 2,
                "diskGb": 40,
            }
        ),
        "platform:firewall": json.dumps(
            {"adminCidrs": ["198.51.100.0/24"], "peerAddress": "203.0.113.20", "securityGroupId": "sg-loopback"}
        ),
        "platform:paths": json.dumps(host.paths()),
        # The databases named, and no other default.
        **{f"platform:{key}": json.dumps(value) for key, value in exactly("alibaba", {"databases": databases}).items()},
        # The drill restores every engine the tests start (the default 16 MiB restores Redis alone).
        "platform:backups": json.dumps({"randomizedDelayS": 600, "drillMemoryMib": 256, **backups}),
    }
    return load_plan(config)


def provision(host: SshHost, plan: Plan, target: OffHostTarget | None = TARGET) -> None:
    """Bootstrap, each database's container (its secret file), the bucket and role, each backup."""
    assert host.step(databases_component.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
    for db in plan.databases:
        step, stdin = database_step(plan, db)
        assert host.step(step, stdin).code == 0
    if target is not None:
        (host.standin_state / "oss" / target.bucket).mkdir(parents=True, exist_ok=True)
        (host.standin_state / "oss/attached-role").write_text(target.ram_role)
    for db in plan.databases:
        run = host.step(backup_step("db", plan.layout, plan.backups, db, target))
        assert run.code == 0, run


def exec_start(host: SshHost, unit: str) -> list[str]:
    """The service's ExecStart= words, from the unit file the installer wrote."""
    text = (host.units / f"{unit}.service").read_text()
    [line] = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def fire(host: SshHost, unit: str, *args: str, now: int | None = None, timeout: float = 120) -> Run:
    """What the timer does when it elapses: the service's ExecStart, as root, on the host."""
    words = [*exec_start(host, unit), *args]
    prefix = f"BACKUP_NOW={now} " if now is not None else ""
    return host.run(prefix + shlex.join(words), label=unit, timeout=timeout)


def backup_files(plan: Plan, name: str, kind: str = "daily") -> list[str]:
    directory = Path(plan.paths.backups) / name / kind
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def manifests(plan: Plan, name: str, kind: str = "daily") -> list[dict[str, Any]]:
    directory = Path(plan.paths.backups) / name / kind
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def record_figures(engine: str, plan: Plan, name: str, run: Run) -> None:
    """The backup's size and the run's time inside its SSH session, for ``make bench``."""
    found = manifests(plan, name)
    if run.code == 0 and found:
        FIGURES.append((engine, found[-1]["size"], run.seconds))


def stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")


def metric(path: Path, name: str) -> float:
    values = [line.split()[-1] for line in path.read_text().splitlines() if line.startswith(name + "{")]
    assert len(values) == 1, path.read_text()
    return float(values[0])


def bucket_objects(host: SshHost) -> dict[str, str]:
    """Key -> sha256 of every object in the stand-in's bucket."""
    root = host.standin_state / "oss" / BUCKET
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- the engines -----------------------------------------------------------------------------------


@pytest.fixture
def engines() -> Iterator[contextlib.ExitStack]:
    """Real engines the test starts; each is stopped (and its scratch removed) at the end."""
    with contextlib.ExitStack() as stack:
        yield stack


def need(kind: str) -> None:
    reason = real_engines.unavailable(kind)
    if reason is not None:
        pytest.skip(f"{kind}: {reason}")


def started(stack: contextlib.ExitStack, instance: Instance) -> Instance:
    stack.callback(instance.close)
    return instance


def mysql_source(stack: contextlib.ExitStack, base: Path, host: SshHost, name: str) -> Instance:
    """MariaDB as the container's engine: root over TCP needs the password in the host's secret file."""
    instance = started(stack, real_engines.start_mysql(base))
    password = password_for(name)
    instance.query(
        f"CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}';"
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    )
    attach(instance, name, host.standin_state, {"MYSQL_HOST": "127.0.0.1"})
    return instance


def mysql_scratch(stack: contextlib.ExitStack, base: Path, host: SshHost, name: str) -> Instance:
    """A second MariaDB as the drill's scratch container, with what the image's MYSQL_ALLOW_EMPTY_PASSWORD
    gives: root over TCP without a password (the drill waits for the server on TCP)."""
    instance = started(stack, real_engines.start_mysql(base, server_id=2))
    instance.query(
        "CREATE USER 'root'@'127.0.0.1'; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    )
    attach(instance, f"{name}-drill", host.standin_state)
    return instance


def postgres_source(stack: contextlib.ExitStack, base: Path) -> Instance:
    """PostgreSQL with the image's superuser (future_user, POSTGRES_USER in components/engines.py)."""
    instance = started(stack, real_engines.start_postgres(base))
    instance.query("CREATE ROLE future_user SUPERUSER LOGIN;")
    return instance


def stop_scratch_engines(host: SshHost) -> None:
    """Engines the podman stand-in started for a scratch container a failed test left."""
    for pid_file in (host.standin_state / "podman/containers").glob("*/pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


# --- what the steps render ---------------------------------------------------------------------------


def test_rendered_steps_carry_no_secret_no_key_and_no_unsafe_removal(host: SshHost) -> None:
    plan = backup_plan(host)
    steps = [backup_step("db", plan.layout, plan.backups, db, TARGET) for db in plan.databases] + [
        drill_step("db", plan.layout, plan.backups, plan.unscheduled_backups)
    ]

    for step in steps:
        assert step.stdin is None
        assert not step.handles_secrets
        assert secret_literals(step.script) == []
        assert static_credentials(step.script) == []
        assert data_removals(step.script) == []
        assert removal_problems(step.record()) == []
        assert plan.backups.schedule in step.script or plan.backups.drill_schedule in step.script
    assert [s.name for s in steps] == [f"db-backup-{db.name}" for db in plan.databases] + ["db-restore-drill"]


def test_install_writes_program_config_and_timer_then_says_unchanged(host: SshHost) -> None:
    plan = backup_plan(host, "production-redis", schedule="*-*-* 02:30:00", randomizedDelayS=900)
    db = plan.databases[0]
    assert host.step(databases_component.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
    step = backup_step("db", plan.layout, plan.backups, db, TARGET)

    first = host.step(step)
    snapshot = host.snapshot()
    second = host.step(step)

    assert first.code == 0, first
    assert first.stdout == "production-redis: updated, platform-backup-production-redis.timer on *-*-* 02:30:00\n"
    assert second.stdout == "production-redis: unchanged, platform-backup-production-redis.timer on *-*-* 02:30:00\n"
    assert host.snapshot() == snapshot
    timer = (host.units / "platform-backup-production-redis.timer").read_text()
    assert "OnCalendar=*-*-* 02:30:00\nRandomizedDelaySec=900\nPersistent=true\n" in timer
    assert "Unit=platform-backup-production-redis.service\n" in timer
    assert (host.units / "timers.target.wants/platform-backup-production-redis.timer").is_symlink()
    program = Path(plan.paths.root) / "bin/platform-backup"
    assert exec_start(host, "platform-backup-production-redis") == [
        str(program),
        database_config_file(db.name, plan.paths),
    ]
    assert oct(program.stat().st_mode & 0o777) == "0o755"
    config = Path(database_config_file(db.name, plan.paths))
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert "\nKEEP_DAILY=7\nKEEP_WEEKLY=4\n" in config.read_text()
    assert f"OFF_HOST_URL=oss://{BUCKET}/platform/\n" in config.read_text()
    calls = host.systemctl_calls()
    assert calls.count("daemon-reload") == 1
    assert calls[-1] == "is-active --quiet platform-backup-production-redis.timer"
    assert "start platform-backup-production-redis.timer" in calls

    # A new schedule rewrites the timer, reloads systemd and restarts the timer.
    later = backup_plan(host, "production-redis", schedule="*-*-* 04:00:00", randomizedDelayS=900)
    third = host.step(backup_step("db", later.layout, later.backups, later.databases[0], TARGET))
    assert third.stdout == "production-redis: updated, platform-backup-production-redis.timer on *-*-* 04:00:00\n"
    assert host.systemctl_calls()[-2:] == [
        "is-active --quiet platform-backup-production-redis.timer",
        "restart platform-backup-production-redis.timer",
    ]


def test_a_database_no_longer_backed_up_loses_its_timer_and_keeps_its_backups(host: SshHost) -> None:
    plan = backup_plan(host, "production-redis", "production-postgres")
    assert host.step(databases_component.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
    for db in plan.databases:
        assert host.step(backup_step("db", plan.layout, plan.backups, db, TARGET)).code == 0
    assert host.step(drill_step("db", plan.layout, plan.backups, plan.unscheduled_backups)).code == 0
    kept = Path(plan.paths.backups) / "production-redis/daily/production-redis-20261101T030000Z.rdb"
    kept.write_bytes(b"REDIS0011")

    # Now `backup: none` (or retired): the drill's install takes its timer down. (One merely
    # dropped from the plan keeps running, and so do its backups: tests/provisioning/test_upgrade_drill.py.)
    later = backup_plan(host, "production-redis", "production-postgres", not_backed_up=["production-redis"])
    run = host.step(drill_step("db", later.layout, later.backups, later.unscheduled_backups))

    assert run.code == 0, run
    assert run.stdout.splitlines()[-1] == (
        "production-redis: no longer backed up; its timer is removed, "
        f"its backups kept in {plan.paths.backups}/production-redis"
    )
    assert sorted(p.name for p in host.units.glob("platform-backup-*")) == [
        "platform-backup-production-postgres.service",
        "platform-backup-production-postgres.timer",
    ]
    assert not (host.units / "timers.target.wants/platform-backup-production-redis.timer").exists()
    assert "stop platform-backup-production-redis.timer" in host.systemctl_calls()
    assert not Path(database_config_file("production-redis", plan.paths)).exists()
    assert Path(database_config_file("production-postgres", plan.paths)).exists()
    assert kept.read_bytes() == b"REDIS0011"
    again = host.step(drill_step("db", later.layout, later.backups, later.unscheduled_backups))
    assert "no longer backed up" not in again.stdout


def test_install_refuses_an_off_host_target_without_ossutil(host: SshHost) -> None:
    plan = backup_plan(host, "production-redis")
    step = backup_step("db", plan.layout, plan.backups, plan.databases[0], TARGET)
    assert step.params["OSSUTIL"] == "ossutil"
    missing = dataclasses.replace(step, params={**step.params, "OSSUTIL": "ossutil-absent"})

    run = host.step(missing)

    assert run.code == 3, run
    assert "ossutil-absent is not installed on this host" in run.stderr
    assert not (host.units / "platform-backup-production-redis.timer").exists()


# --- MySQL (MariaDB 10.11) ------------------------------------------------------------------------


def test_mysql_backup_copy_metrics_and_a_drill_that_finds_the_rows(
    host: SshHost, engines: contextlib.ExitStack, tmp_path: Path
) -> None:
    need("mysql")
    plan = backup_plan(host, "production-mysql")
    provision(host, plan)
    source = mysql_source(engines, tmp_path / "source", host, "production-mysql")
    source.query(
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40), price BLOB);"
        "INSERT INTO shop.orders VALUES (1, 'tea', x'00ff'), (2, 'rice', NULL), (3, 'ink', 'x');"
        "CREATE TABLE shop.customers (id INT PRIMARY KEY); INSERT INTO shop.customers VALUES (7);"
    )

    run = fire(host, "platform-backup-production-mysql", now=MONDAY)
    record_figures("mysql", plan, "production-mysql", run)

    assert run.code == 0, run
    name = f"production-mysql-{stamp(MONDAY)}"
    assert backup_files(plan, "production-mysql") == [f"{name}.json", f"{name}.sql.gz"]
    assert backup_files(plan, "production-mysql", "weekly") == [f"{name}.json", f"{name}.sql.gz"]
    [manifest] = manifests(plan, "production-mysql")
    dump = Path(plan.paths.backups) / "production-mysql/daily" / f"{name}.sql.gz"
    assert manifest["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert manifest["size"] == dump.stat().st_size
    assert (manifest["engine"], manifest["database"], manifest["week"]) == ("mysql", "production-mysql", "2025-W02")
    assert manifest["checks"] == {"databases": 1, "tables": 2}
    assert "MariaDB" in manifest["tool"]
    text = gzip.decompress(dump.read_bytes()).decode()
    assert "INSERT INTO `orders` VALUES\n(1,'tea',0x00FF),\n(2,'rice',NULL),\n(3,'ink',0x78);" in text
    assert "FLUSH PRIVILEGES" in text
    objects = bucket_objects(host)
    assert objects[f"platform/daily/production-mysql/{name}.sql.gz"] == manifest["sha256"]
    assert set(objects) == {
        f"platform/{kind}/production-mysql/{name}.{ext}" for kind in ("daily", "weekly") for ext in ("sql.gz", "json")
    }
    oss_calls = (host.standin_state / "oss/calls.log").read_text().splitlines()
    assert all(f"--mode EcsRamRole --ecs-role-name {ROLE} -e {TARGET.endpoint}" in c for c in oss_calls)
    metrics = Path(plan.paths.state) / "metrics/backup_production-mysql.prom"
    assert metric(metrics, "platform_backup_last_success_timestamp_seconds") >= MONDAY
    assert metric(metrics, "platform_backup_size_bytes") == manifest["size"]
    assert metric(metrics, "platform_backup_last_run_success") == 1
    status = json.loads((Path(plan.paths.state) / "backup/db/production-mysql.last").read_text())
    assert (status["status"], status["file"], status["offHost"]) == ("ok", f"{name}.sql.gz", "copied")

    # The restore drill: the latest good backup into a second MariaDB playing the scratch container.
    scratch = mysql_scratch(engines, tmp_path / "scratch", host, "production-mysql")
    assert host.step(drill_step("db", plan.layout, plan.backups, plan.unscheduled_backups)).code == 0
    drill = fire(host, "platform-restore-drill")

    assert drill.code == 0, drill
    assert (
        drill.stdout == f"production-mysql: ok {name}.sql.gz: databases 1/1, tables 2/2, rows 4 ({_seconds(drill)}s)\n"
    )
    assert scratch.query("SELECT id, item FROM shop.orders ORDER BY id") == "1\ttea\n2\trice\n3\tink"
    report = json.loads((Path(plan.paths.state) / "backup/drill.last").read_text())
    assert report["status"] == "ok"
    assert [(d["database"], d["status"], d["restored"]) for d in report["databases"]] == [
        ("production-mysql", "ok", True)
    ]
    prom = (Path(plan.paths.state) / "metrics/restore_drill.prom").read_text()
    assert 'platform_restore_drill_success{database="production-mysql",engine="mysql"} 1' in prom
    assert 'platform_restore_drill_restored{database="production-mysql",engine="mysql"} 1' in prom
    runs = [c for c in host.podman_calls() if c[:2] == ["run", "-d"]]
    assert len(runs) == 1
    assert "--memory=256m" in runs[0]
    assert "--network=none" in runs[0]
    assert ["rm", "-f", "-i", "production-mysql-drill"] in host.podman_calls()
    assert not (Path(plan.paths.backups) / ".drill/production-mysql").exists()

    # With the default scratch limit (what the seeds' host has room for) MySQL's dump is
    # verified, not restored: no scratch starts, and the drill still passes.
    small = backup_plan(host, "production-mysql", drillMemoryMib=16)
    assert host.step(drill_step("db", small.layout, small.backups, small.unscheduled_backups)).code == 0
    verified = fire(host, "platform-restore-drill")
    assert verified.code == 0, verified
    assert verified.stdout == (
        f"production-mysql: verified {name}.sql.gz: dump verified (gzip intact, complete); not restored: "
        f"a scratch mysql needs 256 MiB, drillMemoryMib is 16 ({_seconds(verified)}s)\n"
    )
    assert len([c for c in host.podman_calls() if c[:2] == ["run", "-d"]]) == 1


def _seconds(run: Run) -> str:
    match = re.search(r"\((\d+)s\)\n$", run.stdout)
    return match.group(1) if match else "?"


def test_retention_keeps_the_newest_dailies_and_each_weeks_first(
    host: SshHost, engines: contextlib.ExitStack, tmp_path: Path
) -> None:
    need("mysql")
    plan = backup_plan(host, "production-mysql", keepDaily=2, keepWeekly=2)
    provision(host, plan, target=None)
    source = mysql_source(engines, tmp_path / "source", host, "production-mysql")
    source.query("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1);")

    # Mon 6 and Tue 7 Jan (W02), Mon 13 and Wed 15 (W03), Mon 20 and Tue 21 (W04).
    days = [MONDAY + day * DAY for day in (0, 1, 7, 9, 14, 15)]
    for now in days:
        run = fire(host, "platform-backup-production-mysql", now=now)
        assert run.code == 0, run

    def names(*epochs: int) -> list[str]:
        return sorted(f"production-mysql-{stamp(e)}.{ext}" for e in epochs for ext in ("json", "sql.gz"))

    assert backup_files(plan, "production-mysql") == names(days[4], days[5])
    assert backup_files(plan, "production-mysql", "weekly") == names(days[2], days[4])  # Mondays of W03, W04
    assert [m["week"] for m in manifests(plan, "production-mysql", "weekly")] == ["2025-W03", "2025-W04"]
    metrics = Path(plan.paths.state) / "metrics/backup_production-mysql.prom"
    assert 'platform_backup_kept{database="production-mysql",engine="mysql",set="daily"} 2' in metrics.read_text()
    # A weekly backup is the same file as its daily one (a hard link), not a copy.
    daily = Path(plan.paths.backups) / "production-mysql/daily" / f"production-mysql-{stamp(days[4])}.sql.gz"
    assert daily.stat().st_nlink == 2


def test_a_corrupt_newest_backup_never_counts_and_the_drill_restores_the_good_one(
    host: SshHost, engines: contextlib.ExitStack, tmp_path: Path
) -> None:
    need("mysql")
    plan = backup_plan(host, "production-mysql", keepDaily=2, keepWeekly=0)
    provision(host, plan, target=None)
    source = mysql_source(engines, tmp_path / "source", host, "production-mysql")
    source.query("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1);")
    days = [MONDAY + day * DAY for day in range(4)]
    for now in days[:3]:
        assert fire(host, "platform-backup-production-mysql", now=now).code == 0
    daily = Path(plan.paths.backups) / "production-mysql/daily"
    newest = daily / f"production-mysql-{stamp(days[2])}.sql.gz"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, another sha256
    newest.write_bytes(bytes(data))

    # The drill skips it for the newest good backup; named, it is refused before any restore.
    mysql_scratch(engines, tmp_path / "scratch", host, "production-mysql")
    assert host.step(drill_step("db", plan.layout, plan.backups, plan.unscheduled_backups)).code == 0
    drill = fire(host, "platform-restore-drill")
    assert drill.code == 0, drill
    assert drill.stdout.startswith(f"production-mysql: ok production-mysql-{stamp(days[1])}.sql.gz: ")
    named = fire(host, "platform-restore-drill", "production-mysql", newest.name)
    assert named.code == 1, named
    assert f"production-mysql: FAILED {newest.name}" not in named.stdout  # refused before a backup was chosen
    assert "sha256 mismatch" in named.stdout
    assert not any(c[:2] == ["run", "-d"] for c in host.podman_calls()[-3:])

    # The next backup: the corrupt one does not count towards keepDaily, so both good ones stay.
    run = fire(host, "platform-backup-production-mysql", now=days[3])
    assert run.code == 0, run
    assert f"production-mysql-{stamp(days[2])} is not a good backup" in run.stderr
    assert backup_files(plan, "production-mysql") == sorted(
        f"production-mysql-{stamp(e)}.{ext}" for e in days[1:] for ext in ("json", "sql.gz")
    )


def test_a_failed_off_host_copy_fails_the_run_and_keeps_the_local_backup(
    host: SshHost, engines: contextlib.ExitStack, tmp_path: Path
) -> None:
    need("mysql")
    plan = backup_plan(host, "production-mysql")
    provision(host, plan)
    mysql_source(engines, tmp_path / "source", host, "production-mysql")
    first = fire(host, "platform-backup-production-mysql", now=MONDAY)
    assert first.code == 0, first
    host.inject("ossutil", "cp *", times=1)

    run = fire(host, "platform-backup-production-mysql", now=MONDAY + DAY)

    assert run.code == 6, run
    assert "off-host copy of production-mysql-" in run.stderr
    assert len(backup_files(plan, "production-mysql")) == 4  # both backups kept on the host
    status = json.loads((Path(plan.paths.state) / "backup/db/production-mysql.last").read_text())
    assert (status["status"], status["offHost"], status["exitCode"]) == ("failed", "failed", 6)
    metrics = Path(plan.paths.state) / "metrics/backup_production-mysql.prom"
    assert metric(metrics, "platform_backup_last_run_success") == 0
    assert metric(metrics, "platform_backup_last_success_timestamp_seconds") < MONDAY + DAY

    # The host's role is the only way in: a call with static keys or another role is refused.
    assert host.run(f"ossutil ls oss://{BUCKET}/ -e x -i id -k key", label="ossutil").code == 1
    wrong = host.run(f"ossutil ls oss://{BUCKET}/ -e x --mode EcsRamRole --ecs-role-name other", label="ossutil")
    assert wrong.code == 1
    assert "no RAM role 'other' attached" in wrong.stderr


# --- PostgreSQL 15 ----------------------------------------------------------------------------------


def test_postgres_backup_and_a_drill_that_finds_the_rows(
    host: SshHost, engines: contextlib.ExitStack, tmp_path: Path
) -> None:
    need("postgres")
    plan = backup_plan(host, "production-postgres")
    provision(host, plan)
    source = postgres_source(engines, tmp_path / "source")
    attach(source, "production-postgres", host.standin_state)
    source.query(
        "CREATE DATABASE appdb OWNER future_user;\n\\c appdb\n"
        "CREATE TABLE accounts (id int PRIMARY KEY, name text); INSERT INTO accounts VALUES (1, 'ada'), (2, 'lin');"
        "CREATE SCHEMA audit; CREATE TABLE audit.log (at timestamptz DEFAULT now());"
        "INSERT INTO audit.log DEFAULT VALUES;"
    )

    run = fire(host, "platform-backup-production-postgres", now=MONDAY)
    record_figures("postgres", plan, "production-postgres", run)

    assert run.code == 0, run
    [manifest] = manifests(plan, "production-postgres")
    assert manifest["checks"] == {"databases": 2, "tables": 2}  # appdb and postgres; accounts and audit.log
    assert manifest["tool"].startswith("pg_dump (PostgreSQL) 15")
    name = f"production-postgres-{stamp(MONDAY)}.tar"
    assert bucket_objects(host)[f"platform/daily/production-postgres/{name}"] == manifest["sha256"]

    scratch = postgres_source(engines, tmp_path / "scratch")
    attach(scratch, "production-postgres-drill", host.standin_state)
    assert host.step(drill_step("db", plan.layout, plan.backups, plan.unscheduled_backups)).code == 0
    drill = fire(host, "platform-restore-drill")

    assert drill.code == 0, drill
    assert drill.stdout.startswith(f"production-postgres: ok {name}: databases 2/2, tables 2/2, rows 3 (")
    assert scratch.query("\\c appdb\nSELECT name FROM accounts ORDER BY id") == "ada\nlin"


# --- Redis 7 ----------------------------------------------------------------------------------------


def test_redis_backup_and_a_drill_that_loads_the_rdb(
    host: SshHost, engines: contextlib.ExitStack, tmp_path: Path
) -> None:
    need("redis")
    plan = backup_plan(host, "production-redis")
    provision(host, plan)
    engines.callback(stop_scratch_engines, host)
    # The engine's working directory is the container's data volume (dump.rdb lands there).
    source = started(
        engines, real_engines.start_redis(tmp_path / "source", args=["--dir", data_dir("production-redis", plan.paths)])
    )
    attach(source, "production-redis", host.standin_state)
    password = password_for("production-redis")
    source.query(["CONFIG", "SET", "requirepass", password])
    for key, value in (("user:1", "ada"), ("user:2", "lin"), ("counter", "41")):
        source.query(["SET", key, value], password=password)
    source.query(["SET", "session:x", "1", "EX", "3600"], password=password)

    run = fire(host, "platform-backup-production-redis", now=MONDAY)
    record_figures("redis", plan, "production-redis", run)

    assert run.code == 0, run
    [manifest] = manifests(plan, "production-redis")
    assert manifest["checks"] == {"expires": 1, "keys": 4}
    assert manifest["tool"].startswith("redis 7.")
    rdb = Path(plan.paths.backups) / "production-redis/daily" / manifest["file"]
    assert rdb.read_bytes().startswith(b"REDIS")

    # The drill's scratch container is a real redis-server the stand-in starts on the copied RDB.
    port = free_port()
    scratch = Instance("redis", port, tmp_path / "scratch", None, tmp_path / "scratch.log", argv=[])
    attach(
        scratch,
        "production-redis-drill",
        host.standin_state,
        {"RUN": "1", "RUN_ARGS": f"--port {port} --bind 127.0.0.1"},
    )
    assert host.step(drill_step("db", plan.layout, plan.backups, plan.unscheduled_backups)).code == 0
    drill = fire(host, "platform-restore-drill")

    assert drill.code == 0, drill
    assert drill.stdout.startswith(f"production-redis: ok {manifest['file']}: keys 4/4 (expires 1) (")
    [run_call] = [c for c in host.podman_calls() if c[:2] == ["run", "-d"]]
    image = run_call.index(plan.databases[0].image)
    assert run_call[image + 1 :] == [
        *("redis-server", "--dir", "/data", "--dbfilename", "dump.rdb", "--appendonly", "no", "--save", "")
    ]

    assert not list((host.standin_state / "podman/containers").glob("production-redis-drill"))


# --- what cannot run here -----------------------------------------------------------------------------


def test_neo4j_dump_stops_the_database_and_starts_it_again_even_when_the_dump_fails(host: SshHost) -> None:
    plan = backup_plan(host, "production-neo4j")
    provision(host, plan)
    calls_before = len(host.systemctl_calls())

    run = fire(host, "platform-backup-production-neo4j", now=MONDAY)

    # The stand-in cannot run neo4j-admin: the dump fails, and the database is running again.
    assert run.code == 5, run
    assert "neo4j-admin database dump neo4j failed" in run.stderr
    assert host.systemctl_calls()[calls_before:] == ["stop production-neo4j.service", "start production-neo4j.service"]
    container = host.container("production-neo4j")
    assert container is not None
    assert container["status"] == "running"
    [dump] = [c for c in host.podman_calls() if c[:2] == ["run", "--rm"]]
    db = plan.databases[0]
    assert dump[dump.index("--name") + 1] == "production-neo4j-backup"
    assert f"--memory={db.memory_mib}m" in dump
    assert dump[dump.index(db.image) :] == [db.image, "neo4j-admin", "database", "dump", "--to-path=/backups", "neo4j"]
    assert backup_files(plan, "production-neo4j") == []
    status = json.loads((Path(plan.paths.state) / "backup/db/production-neo4j.last").read_text())
    assert status["status"] == "failed"


@pytest.mark.parametrize("name", ["production-elasticsearch", "production-weaviate"])
def test_a_snapshot_api_that_does_not_answer_fails_the_run_visibly(host: SshHost, name: str) -> None:
    plan = backup_plan(host, name, randomizedDelayS=0)
    provision(host, plan)

    run = fire(host, backup_unit(name), now=MONDAY)

    assert run.code == 5, run
    assert f"{name}: backup failed (exit 5)" in run.stderr
    assert backup_files(plan, name) == []
    assert metric(Path(plan.paths.state) / f"metrics/backup_{name}.prom", "platform_backup_last_run_success") == 0


def test_bad_configuration_and_a_missing_ossutil_are_one_line_errors(
    host: SshHost, engines: contextlib.ExitStack, tmp_path: Path
) -> None:
    plan = backup_plan(host, "production-mysql")
    provision(host, plan)
    config = Path(database_config_file("production-mysql", plan.paths))
    original = config.read_text()

    config.write_text(original.replace("KIND=mysql\n", "KIND=cassandra\n"))
    unknown = fire(host, "platform-backup-production-mysql")
    assert (unknown.code, unknown.stderr) == (
        2,
        "production-mysql: unknown engine 'cassandra' (mysql, postgres, redis, neo4j, elasticsearch or weaviate)\n",
    )

    config.write_text(original + "EXTRA=1\n")
    extra = fire(host, "platform-backup-production-mysql")
    assert extra.code == 2
    assert "unexpected line 'EXTRA'" in extra.stderr

    need("mysql")
    mysql_source(engines, tmp_path / "source", host, "production-mysql")
    config.write_text(original.replace("OSSUTIL=ossutil\n", "OSSUTIL=ossutil-absent\n"))
    missing = fire(host, "platform-backup-production-mysql", now=MONDAY)
    assert missing.code == 4, missing
    assert "ossutil-absent is not installed" in missing.stderr
    assert len(backup_files(plan, "production-mysql")) == 2  # the local backup was still made


def test_the_drill_verifies_what_it_cannot_restore_and_reports_each_database(host: SshHost, tmp_path: Path) -> None:
    plan = backup_plan(host, "production-neo4j", "production-elasticsearch")
    provision(host, plan)
    # A Neo4j archive as the runner writes one (neo4j-admin cannot run here to make a real dump).
    daily = Path(plan.paths.backups) / "production-neo4j/daily"
    base = f"production-neo4j-{stamp(MONDAY)}"
    work = tmp_path / "dump"
    work.mkdir()
    (work / "neo4j.dump").write_bytes(b"not a real dump: the drill verifies the archive, not the dump")
    archive = daily / f"{base}.tar"
    subprocess.run(["tar", "-cf", str(archive), "-C", str(work), "."], check=True)
    data = archive.read_bytes()
    (daily / f"{base}.json").write_text(
        json.dumps(
            {
                "format": 1,
                "engine": "neo4j",
                "database": "production-neo4j",
                "file": archive.name,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "checks": {"databases": 1},
            },
            indent=2,
        )
    )
    assert host.step(drill_step("db", plan.layout, plan.backups, plan.unscheduled_backups)).code == 0

    drill = fire(host, "platform-restore-drill")

    # Each database in turn: one without a backup fails the drill, the other is still reported.
    assert drill.code == 1, drill
    assert [re.sub(r" \(\d+s\)$", "", line) for line in drill.stdout.splitlines()] == [
        "production-elasticsearch: FAILED (no backup): no good backup in "
        f"{plan.paths.backups}/production-elasticsearch",
        f"production-neo4j: verified {archive.name}: archive verified (2 entries); not restored: neo4j needs a JVM "
        "or an engine far larger than a scratch limit",
    ]
    report = json.loads((Path(plan.paths.state) / "backup/drill.last").read_text())
    assert report["status"] == "failed"
    assert [(d["database"], d["status"], d["restored"]) for d in report["databases"]] == [
        ("production-elasticsearch", "failed", False),
        ("production-neo4j", "verified", False),
    ]
    prom = (Path(plan.paths.state) / "metrics/restore_drill.prom").read_text()
    assert 'platform_restore_drill_success{database="production-neo4j",engine="neo4j"} 1' in prom
    assert 'platform_restore_drill_restored{database="production-neo4j",engine="neo4j"} 0' in prom
    assert 'platform_restore_drill_success{database="production-elasticsearch",engine="elasticsearch"} 0' in prom
    assert "platform_restore_drill_last_success_timestamp_seconds 0\n" in prom
    assert not any(call[0] == "run" and "--memory=256m" in call for call in host.podman_calls())
