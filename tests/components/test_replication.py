"""The replication steps and the replication sources' units, as rendered from a plan (no host).

What runs on a host is proven in tests/provisioning/test_replication.py with real engines; here:
the exact settings each engine is given, the parameters each step renders, what reaches stdin,
and that the pack's text checks find nothing to object to in any of them.
"""

from __future__ import annotations

import hashlib
import shlex
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pulumi_policy import PolicyResource

from components.engines import (
    TLS_MOUNT,
    quadlet_unit,
    replication_args,
    secret_content,
    server_id,
    tls_engine,
)
from components.provisioning import as_command
from components.replication import (
    PUBLICATION,
    SUBSCRIPTION,
    TLS_VERIFY,
    health_params,
    health_step,
    health_units,
    replica_ca_file,
    replica_params,
    replica_stdin,
    replica_step,
    source_params,
    source_stdin,
    source_step,
    tls_dir,
    tls_params,
    tls_stdin,
    tls_step,
)
from plan import REPLICATION_USER, Database, Plan
from policies._scan import data_removals, secret_literals
from policies.data_protection import removal_problems
from policies.facts import COMMAND
from policies.replication_tls import command_problems, is_replication_command, plaintext_findings
from tests.stacks import plan_of

PEER_OF_ALIBABA = "203.0.113.20"


@pytest.fixture(scope="module")
def replicas_plan() -> Plan:
    existing = [
        {"name": "mysql", "memoryMib": 384, "database": True, "ports": [{"port": 3306, "expose": "peer"}],
         "replicaOf": {"source": "production-mysql", "kind": "mysql"}},
        {"name": "postgres", "memoryMib": 256, "database": True, "ports": [{"port": 5432, "expose": "peer"}],
         "replicaOf": {"source": "production-postgres", "kind": "postgres"}},
        {"name": "redis", "memoryMib": 128, "database": True, "ports": [{"port": 6379, "expose": "peer"}],
         "replicaOf": {"source": "production-redis", "kind": "redis"}},
    ]  # fmt: skip
    return plan_of(
        "tencent",
        existing=existing,
        databaseStack=None,
        replication={"sourceStack": "org/platform/alibaba"},
        proxy=None,
    )


def database(plan: Plan, kind: str) -> Database:
    return next(db for db in plan.databases if db.kind == kind)


def mariadb(plan: Plan) -> Database:
    return database(plan, "mysql").model_copy(update={"image": "docker.io/library/mariadb:10.11"})


def source_of(plan: Plan, kind: str, port: int) -> dict[str, Any]:
    """The Alibaba stack's output for a source, as the Tencent program reads it."""
    return {
        "kind": kind,
        "port": port,
        "user": REPLICATION_USER,
        "database": "future_user",
        "sourceAddress": plan.firewall.peer_address,
    }


def exec_words(unit: str) -> list[str]:
    line = next(line for line in unit.splitlines() if line.startswith("Exec="))
    return shlex.split(line.removeprefix("Exec="))


# --- the sources' units -----------------------------------------------------------------------------


def test_mysql_source_unit_turns_on_gtids_binlog_and_tls(alibaba_plan: Plan) -> None:
    db = database(alibaba_plan, "mysql")
    unit = quadlet_unit(db, alibaba_plan.paths, tls_dir(db.name, alibaba_plan.paths))
    assert f"Volume={alibaba_plan.paths.secrets}/tls/{db.name}:{TLS_MOUNT}:ro,Z" in unit.splitlines()
    assert exec_words(unit)[-8:] == [
        f"--server-id={server_id(db.name)}",
        "--log-bin=binlog",
        "--binlog-format=ROW",
        "--gtid-mode=ON",
        "--enforce-gtid-consistency=ON",
        f"--ssl-ca={TLS_MOUNT}/ca.crt",
        f"--ssl-cert={TLS_MOUNT}/server.crt",
        f"--ssl-key={TLS_MOUNT}/server.key",
    ]


def test_mariadb_source_has_no_mysql_only_gtid_flags(alibaba_plan: Plan) -> None:
    args = replication_args(mariadb(alibaba_plan), "/tls")
    assert not any(arg.startswith(("--gtid-mode", "--enforce-gtid")) for arg in args)
    assert "--log-bin=binlog" in args
    assert "--ssl-key=/tls/server.key" in args


def test_postgres_source_unit_sets_logical_wal_and_ssl(alibaba_plan: Plan) -> None:
    db = database(alibaba_plan, "postgres")
    words = exec_words(quadlet_unit(db, alibaba_plan.paths, tls_dir(db.name, alibaba_plan.paths)))
    assert words[-8:] == [
        "-c",
        "wal_level=logical",
        "-c",
        "ssl=on",
        "-c",
        f"ssl_cert_file={TLS_MOUNT}/server.crt",
        "-c",
        f"ssl_key_file={TLS_MOUNT}/server.key",
    ]


def test_redis_source_serves_tls_only_and_checks_health_over_tls(alibaba_plan: Plan) -> None:
    db = database(alibaba_plan, "redis")
    unit = quadlet_unit(db, alibaba_plan.paths, tls_dir(db.name, alibaba_plan.paths))
    words = exec_words(unit)
    assert words.count("--port") == 1
    assert words[words.index("--port") + 1] == "0"
    assert words[words.index("--tls-port") + 1] == "6379"
    assert words[words.index("--tls-auth-clients") + 1] == "no"
    assert words[words.index("--tls-ca-cert-file") + 1] == f"{TLS_MOUNT}/ca.crt"
    assert "HealthCmd=redis-cli --tls --insecure -h 127.0.0.1 ping" in unit.splitlines()


@pytest.mark.parametrize("kind", ["mysql", "postgres", "redis"])
def test_a_unit_without_tls_dir_is_unchanged(alibaba_plan: Plan, kind: str) -> None:
    db = database(alibaba_plan, kind)
    unit = quadlet_unit(db, alibaba_plan.paths)
    assert TLS_MOUNT not in unit
    assert "ssl" not in unit
    assert "tls" not in unit
    assert quadlet_unit(db, alibaba_plan.paths, None) == unit


@pytest.mark.parametrize("kind", ["neo4j", "elasticsearch", "weaviate"])
def test_engines_without_cross_cloud_replication_get_no_tls_settings(alibaba_plan: Plan, kind: str) -> None:
    with pytest.raises(ValueError, match="no cross-cloud replication"):
        tls_engine(database(alibaba_plan, kind))


def test_server_ids_are_stable_distinct_and_never_the_default() -> None:
    ids = {name: server_id(name) for name in ("production-mysql", "mysql", "cache", "a")}
    assert ids == {name: server_id(name) for name in ids}
    assert len(set(ids.values())) == len(ids)
    assert all(2 <= value < 2**32 for value in ids.values())


def test_redis_auth_file_defines_the_replication_user_by_hash_only(alibaba_plan: Plan) -> None:
    db = database(alibaba_plan, "redis")
    password = "Repl1cationPassw0rdFromRandom"
    content = secret_content(db, "root-pw", password)
    digest = hashlib.sha256(password.encode()).hexdigest()
    assert content == f"requirepass root-pw\nuser {REPLICATION_USER} reset on #{digest} +psync +replconf +ping\n"
    assert password not in content
    assert secret_content(db, "root-pw") == "requirepass root-pw\n"


# --- the steps --------------------------------------------------------------------------------------


def test_tls_stdin_sections_and_refused_header() -> None:
    text = tls_stdin("CA\n", {"b": ("CERT-B", "KEY-B"), "a": ("CERT-A", "KEY-A")})
    assert text == "== ca\nCA\n== cert a\nCERT-A\n== key a\nKEY-A\n== cert b\nCERT-B\n== key b\nKEY-B\n"
    with pytest.raises(ValueError, match="== "):
        tls_stdin("== ca\n", {})


def test_tls_step_lists_every_source(alibaba_plan: Plan) -> None:
    step = tls_step("alibaba-db", alibaba_plan.layout, alibaba_plan.replication_sources, "stdin")
    assert (step.name, step.label, step.handles_secrets, step.stdin) == (
        "alibaba-db-tls",
        "platform-replication-tls",
        True,
        "stdin",
    )
    params = tls_params(alibaba_plan.paths, alibaba_plan.replication_sources)
    assert params["SOURCE_NAMES"] == "production-mysql production-postgres production-redis"
    assert params["SOURCE_KINDS"] == "mysql postgres redis"
    assert params["TLS_ROOT"] == f"{alibaba_plan.paths.secrets}/tls"
    assert params["IMAGE_ENGINE_OWNER"] == "999:999"


@pytest.mark.parametrize("kind", ["mysql", "postgres", "redis"])
def test_source_step_renders_the_peer_and_verified_tls(alibaba_plan: Plan, kind: str) -> None:
    db = database(alibaba_plan, kind)
    step = source_step("alibaba-db", alibaba_plan.layout, alibaba_plan.firewall.peer_address, db, "pw")
    assert (step.name, step.label, step.handles_secrets) == (
        f"alibaba-db-repl-{db.name}",
        f"platform-repl-{db.name}",
        True,
    )
    params = step.parameters
    assert params == {
        key: str(value)
        for key, value in source_params(alibaba_plan.paths, alibaba_plan.firewall.peer_address, db).items()
    }
    assert params["PEER"] == alibaba_plan.firewall.peer_address
    assert params["REPL_USER"] == REPLICATION_USER
    assert params["TLS_VERIFY"] == TLS_VERIFY
    assert params["CA_FILE"] == f"{tls_dir(db.name, alibaba_plan.paths)}/ca.crt"
    assert params["PUBLICATION"] == PUBLICATION


def test_source_stdin_is_the_password_line() -> None:
    assert source_stdin("abc") == "abc\n"


@pytest.mark.parametrize(
    ("name", "kind", "port"), [("mysql", "mysql", 3306), ("postgres", "postgres", 5432), ("redis", "redis", 6379)]
)
def test_replica_step_renders_its_source_and_local_engine(replicas_plan: Plan, name: str, kind: str, port: int) -> None:
    workload = next(w for w in replicas_plan.replicas if w.name == name)
    source = source_of(replicas_plan, kind, port + 1)
    step = replica_step(
        "tencent-svc", replicas_plan.layout, replicas_plan.firewall.peer_address, workload, source, "stdin"
    )
    assert (step.name, step.label, step.handles_secrets) == (
        f"tencent-svc-replica-{name}",
        f"platform-replica-{name}",
        True,
    )
    params = step.parameters
    assert params == {
        key: str(value)
        for key, value in replica_params(
            replicas_plan.paths, replicas_plan.firewall.peer_address, workload, source
        ).items()
    }
    assert params["SOURCE_HOST"] == replicas_plan.firewall.peer_address
    assert (params["PORT"], params["SOURCE_PORT"]) == (str(port), str(port + 1))
    assert params["TLS_VERIFY"] == TLS_VERIFY
    assert (
        params["CA_FILE"]
        == replica_ca_file(name, replicas_plan.paths)
        == f"{replicas_plan.paths.root}/replication/{name}/ca.crt"
    )
    assert params["SOURCE_SERVER_ID"] == str(server_id(f"production-{name}"))
    assert params["DATABASE"] == ("future_user" if kind == "postgres" else "-")
    assert params["SUBSCRIPTION"] == SUBSCRIPTION
    assert params["LOCAL_SECRET_FILE"] == f"{replicas_plan.paths.secrets}/{name}.secret"


def test_replica_of_anything_but_the_peer_is_refused(replicas_plan: Plan) -> None:
    workload = replicas_plan.replicas[0]
    with pytest.raises(ValueError, match="not the peer"):
        replica_params(
            replicas_plan.paths,
            replicas_plan.firewall.peer_address,
            workload,
            {**source_of(replicas_plan, "mysql", 3306), "sourceAddress": "198.51.100.7"},
        )
    with pytest.raises(ValueError, match=r"replicaOf\.kind mysql"):
        replica_params(
            replicas_plan.paths, replicas_plan.firewall.peer_address, workload, source_of(replicas_plan, "redis", 6379)
        )


def test_replica_stdin_is_password_then_ca() -> None:
    assert replica_stdin("pw", "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n") == (
        "pw\n-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"
    )
    with pytest.raises(ValueError, match="one line"):
        replica_stdin("p\nw", "CA")


def test_health_step_installs_the_check_with_a_minute_timer(replicas_plan: Plan) -> None:
    step = health_step("tencent-svc", replicas_plan.layout, replicas_plan.replicas)
    assert (step.name, step.label, step.handles_secrets, step.stdin) == (
        "tencent-svc-replication-health",
        "platform-replication-health",
        False,
        None,
    )
    params = step.parameters
    assert params["SCRIPT_FILE"] == f"{replicas_plan.paths.root}/bin/platform-replication-health"
    assert params["METRICS_FILE"] == f"{replicas_plan.paths.state}/metrics/replication.prom"
    service, timer = health_units(replicas_plan.paths)
    assert (params["SERVICE_CONTENT"], params["TIMER_CONTENT"]) == (service, timer)
    assert "Type=oneshot" in service
    assert f"ExecStart={params['SCRIPT_FILE']}" in service
    assert "OnUnitActiveSec=1min" in timer
    assert "WantedBy=timers.target" in timer
    assert health_params(replicas_plan.paths, replicas_plan.replicas)["REPLICA_KINDS"] == "mysql postgres redis"
    assert health_params(replicas_plan.paths, replicas_plan.replicas)["REPLICA_DATABASES"] == "- future_user -"
    assert "REPLICA_NAMES='mysql postgres redis'" in params["SCRIPT_CONTENT"]


# --- what the pack reads in them ----------------------------------------------------------------------


def all_steps(alibaba_plan: Plan, replicas_plan: Plan) -> list[Any]:
    ports = {"mysql": 3306, "postgres": 5432, "redis": 6379}
    return [
        tls_step("alibaba-db", alibaba_plan.layout, alibaba_plan.replication_sources, ""),
        *(
            source_step("alibaba-db", alibaba_plan.layout, alibaba_plan.firewall.peer_address, db, "")
            for db in alibaba_plan.replication_sources
        ),
        *(
            replica_step(
                "tencent-svc",
                replicas_plan.layout,
                replicas_plan.firewall.peer_address,
                w,
                source_of(replicas_plan, w.name, ports[w.name]),
                "",
            )
            for w in replicas_plan.replicas
        ),
        health_step("tencent-svc", replicas_plan.layout, replicas_plan.replicas),
    ]


def test_the_pack_finds_no_plaintext_secret_or_unsafe_removal(alibaba_plan: Plan, replicas_plan: Plan) -> None:
    for step in all_steps(alibaba_plan, replicas_plan):
        text = as_command(step.script, step.label, step.sudo)
        assert plaintext_findings(step.script, step.parameters) == [], step.name
        assert secret_literals(text) == [], step.name
        assert data_removals(text) == [], step.name
        assert removal_problems(step.record()) == [], step.name


def test_the_replication_policy_passes_every_step(alibaba_plan: Plan, replicas_plan: Plan) -> None:
    """replication-over-tls reads the commands' text: source and replica steps are replication commands
    (by name and statements) and render what it asks for; the TLS and health steps are not."""
    for step in all_steps(alibaba_plan, replicas_plan):
        text = as_command(step.script, step.label, step.sudo)
        command = SimpleNamespace(resource_type=COMMAND, name=step.name, props={"create": text, "update": text})
        replicating = step.name.startswith(("alibaba-db-repl-", "tencent-svc-replica-"))
        assert is_replication_command(cast(PolicyResource, command)) == replicating, step.name
        if replicating:
            assert command_problems(cast(PolicyResource, command), step.parameters) == [], step.name
    replica = all_steps(alibaba_plan, replicas_plan)[4]
    assert "CHANGE MASTER TO" in replica.script
    assert "CHANGE REPLICATION SOURCE TO" in replica.script
    assert "MASTER_SSL_VERIFY_SERVER_CERT=1" in replica.script
    assert "SOURCE_SSL_VERIFY_SERVER_CERT=1" in replica.script
