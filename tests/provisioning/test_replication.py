"""Replication, Alibaba primary -> Tencent replica, with real engines on loopback.

Per engine (MariaDB 10.11, PostgreSQL 15, Redis 7 from Debian): a primary started with the settings
``engines.replication_args`` renders into its unit, reading the TLS files the real ``repl_tls.sh``
wrote; ``podman exec <container>`` (the stand-in) reaching it; the real ``repl_source.sh`` and
``repl_replica.sh`` run over SSH exactly as the commands run them (rendered by the step builders,
the secrets on stdin); then rows written on the primary show on the replica, a killed replica
catches up, re-runs change nothing, plaintext and an unverified certificate are refused, and the
health check reports each state.

What the tests adapt, and why:
- The plan's peer is 127.0.0.1 (``with_peer``): the plan refuses a loopback peer, and both engines
  run on this machine; the server certificate names 127.0.0.1 (``real_engines.make_tls``).
- MySQL is MariaDB: its ``CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos`` path is proven; the
  MySQL 8.0.23+ path (``CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION=1``) is rendered
  and linted, not run.
- The native PostgreSQL (user postgres) cannot traverse root's 0700 test tree: its primary reads
  the TLS directory through a read-only bind mount, as the container does, and the Tencent plan's
  ``paths.root`` (where the replica's CA lives, 0755 on a host) is a directory of its own in
  /var/lib/platform-tests (``harness.HOSTS_DIR``), which any user may traverse.
- The test writes each source's secret file as its container step would (0600, in the secrets
  directory), and makes the PostgreSQL data directory the engine's, as the image's entrypoint does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.backups import lock_file
from components.engines import replication_args, secret_content, secret_file
from components.replication import (
    counts_metrics_file,
    counts_program,
    dump_dir,
    health_program,
    health_step,
    metrics_file,
    replica_ca_file,
    replica_counts_step,
    replica_stdin,
    replica_step,
    source_counts_step,
    source_stdin,
    source_step,
    tls_dir,
    tls_stdin,
    tls_step,
)
from plan import REPLICATION_USER, Database, Plan, load_plan
from tests.components.test_monitoring import PROMTOOL, promtool_test, series, summary
from tests.provisioning import real_engines
from tests.provisioning.harness import HOSTS_DIR, Run, SshHost, free_port, password_for, wait_until
from tests.provisioning.real_engines import Instance, Placement, Tls, start_redis_source
from tests.stacks import exactly, plan_of

PEER = "127.0.0.1"
SYNC_WAIT_S = 30.0
# Catch-up figures for the bench: engine, first sync (s, the replica step), catch-up after a kill (s).
CATCH_UP: list[tuple[str, float, float]] = []


def repl_password(source: str) -> str:
    return password_for(f"repl-{source}")


def ok(run: Run) -> Run:
    assert run.code == 0, repr(run)
    return run


def expect(run: Run, code: int, *texts: str) -> Run:
    """The run exited with ``code`` and said each of ``texts`` (on stdout or stderr)."""
    assert run.code == code, repr(run)
    for text in texts:
        assert text in run.stdout + run.stderr, repr(run)
    return run


def run_client(argv: list[str], env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """A client run by the test itself (not over SSH), bounded."""
    return subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True, timeout=30, check=False)


def with_peer(plan: Plan) -> Plan:
    """The plan with 127.0.0.1 as its peer (which plan validation refuses, rightly, on a real host)."""
    return plan.model_copy(update={"firewall": plan.firewall.model_copy(update={"peer_address": PEER})})


def skip_unless(kind: str) -> None:
    if reason := real_engines.unavailable(kind):
        pytest.skip(f"{kind}: {reason}")


@dataclass
class Pki:
    good: Tls
    wrong: Tls
    """Another CA and a certificate it signed: what a replica must not accept."""

    @property
    def ca(self) -> str:
        return self.good.ca.read_text()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(good=real_engines.make_tls(tmp_path / "pki"), wrong=real_engines.make_tls(tmp_path / "other-pki"))


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    """Engines to close, mount points to unmount, directories to remove, in reverse order."""
    items: list[Any] = []
    yield items
    for item in reversed(items):
        with contextlib.suppress(Exception):
            if isinstance(item, Instance):
                item.close()
            elif isinstance(item, tuple):
                subprocess.run(["umount", str(item[1])], check=False, timeout=30)
            else:
                shutil.rmtree(item, ignore_errors=True)


def public_dir(cleanup: list[Any], prefix: str) -> Path:
    """A directory any user may traverse (what /opt/platform is on a host)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=HOSTS_DIR))
    path.chmod(0o755)
    cleanup.append(path)
    return path


# --- the two plans -------------------------------------------------------------------------------


def source_database(kind: str, name: str, image: str, port: int) -> dict[str, Any]:
    return {"kind": kind, "name": name, "image": image, "memoryMib": 128, "ports": [{"port": port, "expose": "peer"}]}


def alibaba_plan(host: SshHost, database: dict[str, Any]) -> tuple[Plan, Database]:
    plan = with_peer(host.plan("alibaba", databases=[database]))
    return plan, plan.databases[0]


def tencent_plan(host: SshHost, root: Path, replica: dict[str, Any]) -> Plan:
    """The Tencent host's plan, built from stack config as the program builds it."""
    paths = {**host.paths(), "root": str(root / "opt/platform")}
    config = {
        "platform:cloud": "tencent",
        "platform:host": json.dumps(
            {
                "mode": "adopt",
                "instanceId": "ins-loopback",
                "publicIp": "203.0.113.20",
                "hostKey": host.host_key,
                "memoryMib": 2048,
                "cpus": 2,
                "diskGb": 40,
            }
        ),
        "platform:firewall": json.dumps(
            {"adminCidrs": ["198.51.100.0/24"], "peerAddress": "203.0.113.10", "securityGroupId": "sg-loopback"}
        ),
        # The replica alone: no default service or existing workload of the Tencent plan.
        **{
            f"platform:{key}": json.dumps(value)
            for key, value in exactly("tencent", {"existing": [replica], "services": []}).items()
        },
        "platform:batches": "[]",
        "platform:paths": json.dumps(paths),
        "platform:replication": json.dumps({"sourceStack": "loopback/platform/alibaba"}),
    }
    return with_peer(load_plan(config))


def replica_workload(name: str, kind: str, port: int, source: str) -> dict[str, Any]:
    return {
        "name": name,
        "memoryMib": 256,
        "database": True,
        "ports": [{"port": port, "expose": "peer"}],
        "replicaOf": {"source": source, "kind": kind},
    }


def discarding(plan: Plan) -> Plan:
    """The plan with ``replicaOf.discard: true`` on its replica: the stack file lets its own data go."""
    (replica,) = plan.replicas
    assert replica.replica_of is not None
    changed = replica.model_copy(update={"replica_of": replica.replica_of.model_copy(update={"discard": True})})
    return plan.model_copy(update={"existing": tuple(changed if w is replica else w for w in plan.existing)})


def dumps(plan: Plan) -> list[tuple[Path, dict[str, Any]]]:
    """Each dump the replica step kept (its directory and manifest), oldest first."""
    (replica,) = plan.replicas
    root = Path(dump_dir(replica.name, plan.paths))
    found = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [(p, json.loads((p / "manifest.json").read_text())) for p in found]


def assert_dumped(plan: Plan, held: str, file: str) -> Path:
    """The last dump holds ``file``, whose size and sha256 its manifest states, and says what the replica held."""
    directory, manifest = dumps(plan)[-1]
    assert manifest["held"] == held, manifest
    (entry,) = [f for f in manifest["files"] if f["file"] == file]
    data = (directory / file).read_bytes()
    assert (entry["bytes"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert directory.stat().st_mode & 0o777 == 0o700
    return directory / file


def source_output(kind: str, port: int) -> dict[str, Any]:
    """What the Alibaba stack exports for a source (``replication.sources[db]`` + ``sourceAddress``)."""
    return {"kind": kind, "port": port, "user": REPLICATION_USER, "database": "future_user", "sourceAddress": PEER}


# --- the Alibaba side ----------------------------------------------------------------------------


def install_secret(host: SshHost, plan: Plan, db: Database) -> None:
    """The source's secret file, as its container step writes it (the Redis one defines the replication user)."""
    path = Path(secret_file(db.name, plan.paths))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    replication = repl_password(db.name) if db.kind == "redis" else None
    path.write_text(secret_content(db, password_for(db.name), replication))
    path.chmod(0o600)


def write_tls(host: SshHost, plan: Plan, db: Database, tls: Tls) -> Run:
    stdin = tls_stdin(tls.ca.read_text(), {db.name: (tls.cert.read_text(), tls.key.read_text())})
    return host.step(tls_step("alibaba-db", plan.layout, plan.replication_sources, stdin), stdin)


def prepare_source(host: SshHost, plan: Plan, db: Database, pki: Pki, owner: str | None = None) -> Path:
    """Secret file, data directory (the engine's, as its entrypoint leaves it) and TLS files."""
    install_secret(host, plan, db)
    data = Path(plan.paths.data) / db.name
    data.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        shutil.chown(data, owner, owner)
    run = ok(write_tls(host, plan, db, pki.good))
    assert f"{db.name}: wrote its TLS files" in run.stdout
    assert "not running" in run.stdout or "not started yet" in run.stdout
    again = ok(write_tls(host, plan, db, pki.good))
    assert "replication-tls: unchanged" in again.stdout, again
    return Path(tls_dir(db.name, plan.paths))


def set_up_source(host: SshHost, plan: Plan, db: Database) -> None:
    step = source_step("alibaba-db", plan.layout, plan.firewall.peer_address, db, "")
    stdin = source_stdin(repl_password(db.name))
    first = ok(host.step(step, stdin))
    assert f"{db.name}: " in first.stdout
    again = ok(host.step(step, stdin))
    assert f"{db.name}: unchanged" in again.stdout, again


def replicate(host: SshHost, plan: Plan, source: dict[str, Any], ca: str) -> Run:
    workload = plan.replicas[0]
    assert workload.replica_of is not None
    step = replica_step("tencent-svc", plan.layout, plan.firewall.peer_address, workload, source, "")
    return host.step(step, replica_stdin(repl_password(workload.replica_of.source), ca), timeout=400)


def health(host: SshHost, plan: Plan) -> tuple[Run, str]:
    """The installed health check, run as its timer runs it; its output and its metric file."""
    run = host.run(health_program(plan.paths), label="replication-health")
    return run, Path(metrics_file(plan.paths)).read_text()


def install_health(host: SshHost, plan: Plan) -> Run:
    run = ok(host.step(health_step("tencent-svc", plan.layout, plan.replicas)))
    assert "platform-replication-health: installed, timer active" in run.stdout, run
    again = ok(host.step(health_step("tencent-svc", plan.layout, plan.replicas)))
    assert "platform-replication-health: unchanged" in again.stdout, again
    return run


Counts = dict[tuple[str, str], tuple[dict[str, str], int]]


def count_both(host: SshHost, alibaba: Plan, tencent: Plan) -> Counts:
    """Each side's row counts, as their timers take them: (side, table) -> (labels, rows). The first
    call installs both checks with their steps (each runs its check once); later calls run them.
    (The two plans share their state directory here, so each side's file is read after its run.)"""
    steps = (
        source_counts_step("alibaba-db", alibaba.layout, alibaba.replication_sources, lock_file(alibaba.paths)),
        replica_counts_step("tencent-svc", tencent.layout, tencent.replicas),
    )
    found: Counts = {}
    for plan, step in zip((alibaba, tencent), steps, strict=True):
        program = counts_program(plan.paths)
        ran = host.run(program, label="replication-counts") if Path(program).exists() else host.step(step)
        assert ran.code == 0, ran
        assert "table(s) counted" in ran.stdout, ran
        for line in Path(counts_metrics_file(plan.paths)).read_text().splitlines():
            if match := re.fullmatch(r"platform_replication_rows\{(.*)\} (\d+)", line):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
                found[labels["side"], labels["table"]] = (labels, int(match[2]))
    return found


def assert_counted_alike(found: Counts, *tables: str) -> None:
    """Both sides counted each of ``tables``, the same."""
    for table in tables:
        assert ("source", table) in found, (table, found)
        assert ("replica", table) in found, (table, found)
        assert found["source", table][1] == found["replica", table][1], (table, found)


def rows_differ_fires(tmp_path: Path, found: Counts, table: str) -> None:
    """The counts as Prometheus scrapes them (each side's host labels), held for 40 minutes:
    ReplicaRowsDiffer fires for ``table``, with the replica's labels, and for nothing else."""
    if not Path(PROMTOOL).exists():
        pytest.skip("needs promtool (Debian's prometheus package; .ci/run installs it)")
    scraped = {
        "source": {"host": "alibaba", "instance": "192.0.2.10:9100", "job": "node-exporter"},
        "replica": {"host": "tencent", "instance": "127.0.0.1:9100", "job": "node-exporter"},
    }
    watcher = plan_of("tencent")
    inputs = [
        series("platform_replication_rows", {**labels, **scraped[side]}, f"{rows}x40")
        for (side, _), (labels, rows) in found.items()
    ]
    labels = {**found["replica", table][0], **scraped["replica"]}
    expected = [
        {
            "exp_labels": {**labels, "severity": "critical"},
            "exp_annotations": {"summary": summary(watcher, "ReplicaRowsDiffer", labels)},
        }
    ]
    test = {
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [{"eval_time": "30m", "alertname": "ReplicaRowsDiffer", "exp_alerts": expected}],
    }
    tested = promtool_test(tmp_path, watcher, [test])
    assert tested.returncode == 0, tested.stdout + tested.stderr


def assert_healthy(host: SshHost, plan: Plan, name: str, kind: str) -> str:
    run, metrics = health(host, plan)
    assert run.code == 0, repr(run)
    assert f"{name} kind={kind} healthy=1 io=1 sql=1" in run.stdout, run
    assert f'platform_replication_healthy{{replica="{name}",kind="{kind}"}} 1' in metrics, metrics
    assert "platform_replication_last_error_info{" not in metrics
    return metrics


def assert_unhealthy(host: SshHost, plan: Plan, name: str, kind: str, *words: str) -> str:
    run, metrics = health(host, plan)
    assert run.code == 1, repr(run)
    assert f"{name} kind={kind} healthy=0" in run.stdout, run
    assert f'platform_replication_healthy{{replica="{name}",kind="{kind}"}} 0' in metrics, metrics
    error = next(line for line in metrics.splitlines() if line.startswith("platform_replication_last_error_info"))
    assert any(word in error for word in words), error
    return error


def served_certificate(port: int, starttls: str | None = None) -> str:
    """The certificate the engine on ``port`` presents (openssl s_client, STARTTLS for mysql/postgres)."""
    argv = ["openssl", "s_client", "-connect", f"{PEER}:{port}", *(["-starttls", starttls] if starttls else [])]
    done = subprocess.run(argv, input="", capture_output=True, text=True, timeout=30, check=False)
    match = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", done.stdout, re.DOTALL)
    assert match, done
    return match.group(0)


def rotate_certificate(host: SshHost, plan: Plan, db: Database, pki: Pki, port: int, starttls: str | None) -> None:
    """A renewed server certificate (same CA) reaches the running engine without a restart."""
    rotated = real_engines.make_tls(pki.good.ca.parent, name="rotated")
    assert rotated.ca == pki.good.ca
    run = ok(write_tls(host, plan, db, rotated))
    assert f"{db.name}: reloaded TLS" in run.stdout, run
    assert served_certificate(port, starttls) == rotated.cert.read_text().strip()


def crash_postgres(instance: Instance) -> None:
    """SIGKILL to the postmaster and every process it started (what an OOM kill of the engine does)."""
    postmaster = int((instance.datadir / "postmaster.pid").read_text().split()[0])
    children = [
        int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit() and _parent(entry) == postmaster
    ]
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    instance.stop(kill=True)  # the postmaster is the instance's own process: killed and reaped
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in (postmaster, *children)), 30)


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def timed(predicate: Any, timeout: float = SYNC_WAIT_S) -> float:
    started = time.monotonic()
    assert wait_until(predicate, timeout, interval=0.1), f"not within {timeout} s"
    return time.monotonic() - started


# --- MariaDB -------------------------------------------------------------------------------------


def mysql_as_replication(primary: Instance, *tls: str) -> subprocess.CompletedProcess[str]:
    """The replication user's login from the peer, with the given TLS options (password on stdin)."""
    options = f"[client]\nuser={REPLICATION_USER}\npassword={repl_password('production-mysql')}\n"
    return subprocess.run(
        [
            "/usr/bin/mariadb",
            "--defaults-file=/dev/stdin",
            "--protocol=TCP",
            "-h",
            PEER,
            "-P",
            str(primary.port),
            *tls,
            "-N",
            "-B",
            "-e",
            "SELECT CURRENT_USER()",
        ],
        input=options,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def slave_status(replica: Instance) -> str:
    """SHOW SLAVE STATUS with its field names (Instance.query drops them)."""
    return subprocess.run(
        ["/usr/bin/mariadb", "--no-defaults", f"--socket={replica.socket}", "-uroot", "-E", "-e", "SHOW SLAVE STATUS"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def dump_thread(primary: Instance) -> str:
    return primary.query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")


def test_mysql_gtid_replication_over_verified_tls(host: SshHost, pki: Pki, tmp_path: Path, cleanup: list[Any]) -> None:
    skip_unless("mysql")
    alibaba, db = alibaba_plan(
        host, source_database("mysql", "production-mysql", "docker.io/library/mariadb:10.11", 3306)
    )
    tls = prepare_source(host, alibaba, db, pki)
    primary = real_engines.start_mysql(tmp_path / "primary", extra_args=replication_args(db, str(tls)))
    cleanup.append(primary)
    real_engines.attach(primary, db.name, host.standin_state)
    primary.query(
        "CREATE DATABASE app; CREATE TABLE app.items (id INT PRIMARY KEY, v VARCHAR(32));"
        "INSERT INTO app.items VALUES (1, 'before the replica');"
    )
    set_up_source(host, alibaba, db)
    grants = primary.query(f"SHOW GRANTS FOR '{REPLICATION_USER}'@'{PEER}'")
    assert grants.count("GRANT ") == 1, grants
    assert "GRANT REPLICATION SLAVE ON *.* TO" in grants, grants
    assert "REQUIRE SSL" in primary.query(f"SHOW CREATE USER '{REPLICATION_USER}'@'{PEER}'")
    # Plaintext is refused; TLS verified against the CA is accepted.
    plain = mysql_as_replication(primary, "--skip-ssl")
    assert plain.returncode != 0, plain
    assert "Access denied" in plain.stderr, plain
    verified = mysql_as_replication(primary, "--ssl", f"--ssl-ca={pki.good.ca}", "--ssl-verify-server-cert")
    assert verified.stdout.startswith(f"{REPLICATION_USER}@"), verified

    replica = real_engines.start_mysql(tmp_path / "replica", server_id=2)
    cleanup.append(replica)
    replica.query(
        "CREATE DATABASE tencent_own; CREATE TABLE tencent_own.t (id INT PRIMARY KEY);"
        "INSERT INTO tencent_own.t VALUES (7);"
    )
    tencent = tencent_plan(
        host, public_dir(cleanup, "platform-repl-"), replica_workload("mysql", "mysql", replica.port, db.name)
    )
    source = source_output("mysql", primary.port)

    # A database of its own: refused before anything changes, dumped first.
    refused = replicate(host, tencent, source, pki.ca)
    expect(refused, 8, "holds database(s) tencent_own", "replicaOf.discard: true for mysql")
    assert replica.query("SHOW SLAVE STATUS") == ""
    assert b"INSERT INTO `t` VALUES" in assert_dumped(tencent, "database(s) tencent_own", "databases.sql").read_bytes()

    # A wrong CA is refused before anything changes on the replica, its own data too.
    tencent = discarding(tencent)
    wrong = replicate(host, tencent, source, pki.wrong.ca.read_text())
    expect(wrong, 6, "refuses replication over TLS verified with the program's CA")
    assert replica.query("SHOW SLAVE STATUS") == ""
    assert replica.query("SELECT id FROM tencent_own.t") == "7"

    first = replicate(host, tencent, source, pki.ca)
    expect(first, 0, "replicates production-mysql from 127.0.0.1", "in sync", "mariadb syntax", "discarded")
    status = slave_status(replica)
    assert "Master_SSL_Verify_Server_Cert: Yes" in status, status
    assert "Using_Gtid: Slave_Pos" in status, status
    assert replica.query("SELECT v FROM app.items WHERE id = 1") == "before the replica"
    assert "tencent_own" not in replica.query("SHOW DATABASES")  # discarded, after its dump

    primary.query("INSERT INTO app.items VALUES (2, 'carried')")
    timed(lambda: replica.query("SELECT count(*) FROM app.items") == "2")

    # Running again changes nothing: the primary's dump thread for the replica is the same one.
    thread = dump_thread(primary)
    again = ok(replicate(host, tencent, source, pki.ca))
    assert "mysql: unchanged" in again.stdout, again
    assert dump_thread(primary) == thread

    install_health(host, tencent)
    metrics = assert_healthy(host, tencent, "mysql", "mysql")
    assert 'platform_replication_lag_seconds{replica="mysql",kind="mysql"} 0' in metrics
    # Both sides count app.items alike; the replica's labels name its source.
    counts = count_both(host, alibaba, tencent)
    assert_counted_alike(counts, "app.items")
    assert counts["replica", "app.items"][0]["source"] == "production-mysql"

    # A crash of the replica: writes go on, and it catches up when it is back.
    replica.stop(kill=True)
    primary.query(
        "INSERT INTO app.items WITH RECURSIVE n(i) AS (SELECT 3 UNION ALL SELECT i + 1 FROM n WHERE i < 502)"
        " SELECT i, 'while down' FROM n"
    )
    started = time.monotonic()
    replica.start()
    timed(lambda: replica.query("SELECT count(*) FROM app.items") == "502")
    CATCH_UP.append(("mariadb", first.seconds, time.monotonic() - started))

    # The engine itself verifies: with another CA in its file, it cannot connect, and health says why.
    Path(replica_ca_file("mysql", tencent.paths)).write_text(pki.wrong.ca.read_text())
    replica.query("STOP SLAVE; START SLAVE;")
    assert wait_until(lambda: "SSL connection error" in slave_status(replica), SYNC_WAIT_S), slave_status(replica)
    assert_unhealthy(host, tencent, "mysql", "mysql", "certificate", "SSL", "TLS")
    # The replica step puts the program's CA back and resumes.
    fixed = replicate(host, tencent, source, pki.ca)
    expect(fixed, 0, "CA written", "replication restarted", "in sync")
    assert_healthy(host, tencent, "mysql", "mysql")

    rotate_certificate(host, alibaba, db, pki, primary.port, "mysql")
    primary.query("INSERT INTO app.items VALUES (1000, 'after the renewal')")
    timed(lambda: replica.query("SELECT count(*) FROM app.items") == "503")

    # A row lost on the replica alone (written around replication): the counts differ, and the
    # consistency alert fires on them. Health still says healthy: only the counts see it.
    replica.query("SET sql_log_bin = 0; DELETE FROM app.items WHERE id = 1000")
    counts = count_both(host, alibaba, tencent)
    assert (counts["source", "app.items"][1], counts["replica", "app.items"][1]) == (503, 502)
    assert_healthy(host, tencent, "mysql", "mysql")
    rows_differ_fires(tmp_path, counts, "app.items")


# --- PostgreSQL ----------------------------------------------------------------------------------


def pg_settings(db: Database, tls: Path) -> dict[str, str]:
    """``replication_args`` (``-c name=value`` pairs) as postgresql.conf lines."""
    args = replication_args(db, str(tls))
    pairs = [args[i + 1].split("=", 1) for i in range(0, len(args), 2)]
    return {name: f"'{value}'" for name, value in pairs}


def start_postgres_source(
    host: SshHost, db: Database, tls: Path, base: Path, cleanup: list[Any], placed: Placement | None = None
) -> Instance:
    """The primary as its container runs it: the TLS directory through a read-only mount (as the
    container mounts it), ``podman exec <db>`` reaching it, the image's superuser (POSTGRES_USER)."""
    mount = public_dir(cleanup, "platform-tls-")
    subprocess.run(["mount", "--bind", "-o", "ro", str(tls), str(mount)], check=True, timeout=30)
    cleanup.append(("mount", mount))
    primary = real_engines.start_postgres(base, settings=pg_settings(db, mount), placed=placed)
    cleanup.append(primary)
    real_engines.attach(primary, db.name, host.standin_state)
    primary.query("CREATE ROLE future_user SUPERUSER LOGIN;")
    return primary


def psql_in(instance: Instance, database: str, sql: str) -> str:
    return instance.query(f"\\c {database}\n{sql}")


def test_postgres_logical_replication_over_verified_tls(
    host: SshHost, pki: Pki, tmp_path: Path, cleanup: list[Any]
) -> None:
    skip_unless("postgres")
    alibaba, db = alibaba_plan(
        host, source_database("postgres", "production-postgres", "docker.io/library/postgres:16", 5432)
    )
    tls = prepare_source(host, alibaba, db, pki, owner=real_engines.PG_USER)
    key = tls / "server.key"
    assert (key.stat().st_mode & 0o777, key.owner()) == (0o600, real_engines.PG_USER)
    primary = start_postgres_source(host, db, tls, tmp_path / "primary", cleanup)
    primary.query("CREATE DATABASE future_user OWNER future_user;")
    psql_in(
        primary,
        "future_user",
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'before');",
    )
    set_up_source(host, alibaba, db)
    hba = primary.query(
        "SELECT concat_ws(' ', type, array_to_string(user_name, ','), coalesce(address, '-'), auth_method)"
        " FROM pg_hba_file_rules ORDER BY line_number LIMIT 3"
    )
    assert hba.splitlines() == [
        f"hostssl {REPLICATION_USER} 127.0.0.1 scram-sha-256",
        f"host {REPLICATION_USER} all reject",
        f"local {REPLICATION_USER} - reject",
    ], hba
    assert psql_in(primary, "future_user", "SELECT puballtables FROM pg_publication") == "t"
    # Plaintext is refused for the replication role (pg_hba), a verified TLS login accepted.
    env = {"PGPASSWORD": repl_password(db.name), "PATH": "/usr/bin:/bin"}
    base = f"host={PEER} port={primary.port} dbname=future_user user={REPLICATION_USER}"
    plain = run_client(["psql", "-XAtc", "SELECT 1", f"{base} sslmode=disable"], env=env)
    assert "pg_hba.conf rejects" in plain.stderr, plain
    ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    verified = run_client(["psql", "-XAtc", ssl, f"{base} sslmode=verify-full sslrootcert={pki.good.ca}"], env=env)
    assert verified.stdout.strip() == "t", verified

    replica = real_engines.start_postgres(tmp_path / "replica")
    cleanup.append(replica)
    replica.query("CREATE DATABASE tencent_own;")
    tencent = tencent_plan(
        host, public_dir(cleanup, "platform-repl-"), replica_workload("postgres", "postgres", replica.port, db.name)
    )
    source = source_output("postgres", primary.port)

    wrong = replicate(host, tencent, source, pki.wrong.ca.read_text())
    expect(wrong, 6, "certificate verify failed")
    # An engine without rows in the replicated database: nothing to dump, its manifest says so.
    assert [manifest["held"] for _, manifest in dumps(tencent)] == [""]

    # Rows of its own in the replicated database (the run above made it): refused before anything
    # changes, dumped first.
    psql_in(
        replica, "future_user", "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (9, 'own');"
    )
    refused = replicate(host, tencent, source, pki.ca)
    expect(refused, 8, "holds rows in future_user: public.items", "replicaOf.discard: true for postgres")
    assert psql_in(replica, "future_user", "SELECT v FROM items") == "own"
    assert_dumped(tencent, "rows in future_user: public.items", "future_user.pgdump")

    first = replicate(host, discarding(tencent), source, pki.ca)
    expect(first, 0, "in sync", "its own data discarded: rows in future_user: public.items")
    assert psql_in(replica, "future_user", "SELECT v FROM items") == "before"
    assert "tencent_own" in replica.query("SELECT datname FROM pg_database")  # its other databases stay

    psql_in(primary, "future_user", "INSERT INTO items VALUES (2, 'carried')")
    timed(lambda: psql_in(replica, "future_user", "SELECT count(*) FROM items") == "2")

    sender = primary.query("SELECT pid FROM pg_stat_replication WHERE application_name = 'platform_replication'")
    again = ok(replicate(host, tencent, source, pki.ca))
    assert "postgres: unchanged" in again.stdout, again
    assert (
        primary.query("SELECT pid FROM pg_stat_replication WHERE application_name = 'platform_replication'") == sender
    )

    install_health(host, tencent)
    metrics = assert_healthy(host, tencent, "postgres", "postgres")
    assert 'platform_replication_lag_bytes{replica="postgres",kind="postgres"}' in metrics
    # The source counts every database its publication covers; the replica the one it follows.
    assert_counted_alike(count_both(host, alibaba, tencent), "future_user.public.items")

    crash_postgres(replica)
    assert wait_until(lambda: psql_in(primary, "future_user", "SELECT count(*) FROM pg_stat_replication") == "0", 30)
    psql_in(primary, "future_user", "INSERT INTO items SELECT g, 'while down' FROM generate_series(3, 502) g")
    started = time.monotonic()
    replica.start()
    timed(lambda: psql_in(replica, "future_user", "SELECT count(*) FROM items") == "502")
    CATCH_UP.append(("postgresql", first.seconds, time.monotonic() - started))

    Path(replica_ca_file("postgres", tencent.paths)).write_text(pki.wrong.ca.read_text())
    psql_in(replica, "future_user", "ALTER SUBSCRIPTION platform_replication DISABLE")
    psql_in(replica, "future_user", "ALTER SUBSCRIPTION platform_replication ENABLE")
    assert_unhealthy(host, tencent, "postgres", "postgres", "certificate verify failed")
    fixed = replicate(host, tencent, source, pki.ca)
    expect(fixed, 0, "CA written", "in sync")
    assert wait_until(lambda: health(host, tencent)[0].code == 0, SYNC_WAIT_S)
    assert_healthy(host, tencent, "postgres", "postgres")

    rotate_certificate(host, alibaba, db, pki, primary.port, "postgres")
    psql_in(primary, "future_user", "INSERT INTO items VALUES (1000, 'after the renewal')")
    timed(lambda: psql_in(replica, "future_user", "SELECT count(*) FROM items") == "503")

    # A table without a primary key gets no publication: UPDATE and DELETE on it would fail.
    primary.query("CREATE DATABASE legacy OWNER future_user;")
    psql_in(primary, "legacy", "CREATE TABLE events (at timestamptz, what text);")
    refused = host.step(
        source_step("alibaba-db", alibaba.layout, alibaba.firewall.peer_address, db, ""),
        source_stdin(repl_password(db.name)),
    )
    expect(refused, 6, "legacy (public.events)")
    assert psql_in(primary, "legacy", "SELECT count(*) FROM pg_publication") == "0"


# --- Redis ---------------------------------------------------------------------------------------


def start_redis_replica(base: Path, placed: Placement | None = None) -> Instance:
    """A native Redis started from its own config file (which CONFIG REWRITE keeps the settings in),
    on loopback (``placed``: the loopback of a rehearsal's namespace, on the plan's port)."""
    data, port = base / "data", placed.port if placed else free_port()
    data.mkdir(parents=True)
    config = base / "redis.conf"
    config.write_text(f'bind 127.0.0.1\nport {port}\ndir {data}\nsave ""\nappendonly no\n')
    argv = ["/usr/bin/redis-server", str(config)]
    netns = placed.netns if placed else None
    return Instance("redis", port, data, None, base / "redis.log", argv, netns=netns).start()


def test_redis_replication_over_verified_tls(host: SshHost, pki: Pki, tmp_path: Path, cleanup: list[Any]) -> None:
    skip_unless("redis")
    alibaba, db = alibaba_plan(host, source_database("redis", "production-redis", "docker.io/library/redis:7", 6379))
    tls = prepare_source(host, alibaba, db, pki)
    files = Tls(ca=tls / "ca.crt", cert=tls / "server.crt", key=tls / "server.key")
    root = password_for(db.name)
    primary = start_redis_source(tmp_path / "primary", Path(secret_file(db.name, alibaba.paths)), files, root)
    cleanup.append(primary)
    real_engines.attach(primary, db.name, host.standin_state, env={})
    primary.query(["SET", "before", "the replica"], password=root)
    set_up_source(host, alibaba, db)
    # No plaintext on the port at all.
    plain = run_client(["redis-cli", "-h", PEER, "-p", str(primary.port), "PING"])
    assert "PONG" not in plain.stdout, plain

    replica = start_redis_replica(tmp_path / "replica")
    cleanup.append(replica)
    replica.query(["SET", "tencent_own", "1"])
    tencent = tencent_plan(
        host, public_dir(cleanup, "platform-repl-"), replica_workload("redis", "redis", replica.port, db.name)
    )
    source = source_output("redis", primary.port)

    # Its own key: refused before anything changes, the dataset dumped first.
    refused = replicate(host, tencent, source, pki.ca)
    expect(refused, 8, "holds 1 key(s)", "replicaOf.discard: true for redis")
    assert "role:master" in replica.query(["INFO", "replication"])
    assert replica.query(["GET", "tencent_own"]) == "1"
    rdb = assert_dumped(tencent, "1 key(s)", "dump.rdb")
    assert b"tencent_own" in rdb.read_bytes()

    tencent = discarding(tencent)
    wrong = replicate(host, tencent, source, pki.wrong.ca.read_text())
    expect(wrong, 6, "certificate verify failed")
    assert "role:master" in replica.query(["INFO", "replication"])

    first = replicate(host, tencent, source, pki.ca)
    expect(first, 0, "replica of production-redis", "in sync", "settings kept in", "its own data discarded: 1 key(s)")
    assert replica.query(["GET", "before"]) == "the replica"
    assert replica.query(["EXISTS", "tencent_own"]) == "0"  # a Redis replica's own data is replaced

    primary.query(["SET", "carried", "yes"], password=root)
    timed(lambda: replica.query(["GET", "carried"]) == "yes")

    syncs = primary.query(["INFO", "stats"], password=root)
    counters = [line for line in syncs.splitlines() if line.startswith(("sync_full", "sync_partial_ok"))]
    again = ok(replicate(host, tencent, source, pki.ca))
    assert "redis: unchanged" in again.stdout, again
    syncs = primary.query(["INFO", "stats"], password=root)
    assert [line for line in syncs.splitlines() if line.startswith(("sync_full", "sync_partial_ok"))] == counters

    install_health(host, tencent)
    assert_healthy(host, tencent, "redis", "redis")
    counts = count_both(host, alibaba, tencent)
    assert_counted_alike(counts, "db0")
    assert counts["source", "db0"][1] == 2  # "before" and "carried" ("tencent_own" was discarded)

    replica.stop(kill=True)
    primary.query(["EVAL", "for i = 1, 500 do redis.call('SET', 'while-down-' .. i, i) end", "0"], password=root)
    started = time.monotonic()
    replica.start()
    timed(lambda: replica.query(["GET", "while-down-500"]) == "500")
    CATCH_UP.append(("redis", first.seconds, time.monotonic() - started))

    ca_file = replica_ca_file("redis", tencent.paths)
    Path(ca_file).write_text(pki.wrong.ca.read_text())
    replica.query(["CONFIG", "SET", "tls-ca-cert-file", ca_file])
    replica.query(["CLIENT", "KILL", "TYPE", "master"])
    assert wait_until(lambda: "master_link_status:down" in replica.query(["INFO", "replication"]), SYNC_WAIT_S)
    assert_unhealthy(host, tencent, "redis", "redis", "certificate verify failed")
    fixed = replicate(host, tencent, source, pki.ca)
    expect(fixed, 0, "CA written", "in sync")
    assert_healthy(host, tencent, "redis", "redis")

    rotate_certificate(host, alibaba, db, pki, primary.port, None)
    primary.query(["SET", "after", "the renewal"], password=root)
    timed(lambda: replica.query(["GET", "after"]) == "the renewal")
