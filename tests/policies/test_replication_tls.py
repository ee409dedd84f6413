"""replication-over-tls: replication only over TLS that verifies the peer, and only between the two hosts.

Fixtures are stacks in the engine's shape: the plan as the program exports it (its
``replication`` sources on the Alibaba side, replicas on the Tencent side) and the replication
commands as provisioning renders them (``bash -c`` around the parameter block and the body).
Each failing fixture breaks one thing of a passing one; the shipped stacks pass.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from policies.facts import COMMAND, STEP
from preflight.engine import UNKNOWN
from tests.policies.shapes import (
    HOST,
    created,
    edit_inputs,
    edit_script,
    flagged,
    resource,
    run_of,
    run_program,
    script_step,
    shipped,
    step_parameter,
    violations,
    with_plan,
    without,
)
from tests.stacks import with_replicas

POLICY = "replication-over-tls"
PEER = "101.33.251.158"  # the Tencent host, as the alibaba plan names it
ALIBABA = "47.115.168.107"  # the Alibaba host, as the tencent plan names it
CA_FILE = "/etc/platform/secrets/tls/replication/ca.pem"
TLS = {"TLS_VERIFY": "verify-full", "CA_FILE": CA_FILE}

MYSQL_REPLICA = """\
mysql --ssl-ca="$CA_FILE" --ssl-verify-server-cert <<SQL
STOP REPLICA;
CHANGE REPLICATION SOURCE TO SOURCE_HOST='$SOURCE_HOST', SOURCE_PORT=$SOURCE_PORT, SOURCE_USER='replication',
  SOURCE_SSL=1, SOURCE_SSL_CA='$CA_FILE', SOURCE_SSL_VERIFY_SERVER_CERT=1, SOURCE_AUTO_POSITION=1;
START REPLICA;
SQL
"""
POSTGRES_REPLICA = """\
conninfo="host=$SOURCE_HOST port=$SOURCE_PORT user=replication sslmode=$TLS_VERIFY sslrootcert=$CA_FILE"
psql -c "CREATE SUBSCRIPTION platform CONNECTION '$conninfo' PUBLICATION platform"
"""
REDIS_REPLICA = """\
# tls-replication yes: the replica speaks TLS to the source and checks its certificate
redis-cli CONFIG SET tls-replication yes
redis-cli CONFIG SET tls-ca-cert-file "$CA_FILE"
redis-cli REPLICAOF "$SOURCE_HOST" "$SOURCE_PORT"
"""
MYSQL_SOURCE = """\
mysql <<SQL
CREATE USER IF NOT EXISTS 'replication'@'$PEER_ADDRESS' REQUIRE SSL;
GRANT REPLICATION SLAVE ON *.* TO 'replication'@'$PEER_ADDRESS';
SQL
"""
POSTGRES_SOURCE = """\
line="hostssl $DATABASE replication $PEER_CIDR scram-sha-256"
grep -qxF "$line" "$HBA_FILE" || printf '%s\\n' "$line" >>"$HBA_FILE"
"""
HEALTH = """\
mysql -e 'SHOW REPLICA STATUS\\G' | grep -E 'Seconds_Behind|Running'
redis-cli INFO replication
"""


def _port(port: int, expose: str) -> dict[str, Any]:
    return {"port": port, "protocol": "tcp", "expose": expose, "purpose": ""}


def _database(name: str, kind: str, port: int, expose: str = "peer") -> dict[str, Any]:
    return {
        "name": name,
        "role": f"database:{kind}",
        "memoryMib": 128,
        "family": None,
        "ports": [_port(port, expose)],
        "backup": {"mode": "scheduled"},
    }


def alibaba_plan() -> dict[str, Any]:
    databases = [
        _database("production-mysql", "mysql", 3306),
        _database("production-postgres", "postgres", 5432),
        _database("production-redis", "redis", 6379),
    ]
    return {
        "cloud": "alibaba",
        "peerCidr": f"{PEER}/32",
        "adminCidrs": ["203.0.113.0/24"],
        "workloads": databases,
        "replication": {
            "sources": [
                {
                    "name": db["name"],
                    "kind": db["role"].split(":")[1],
                    "port": db["ports"][0]["port"],
                    "peerCidr": f"{PEER}/32",
                }
                for db in databases
            ],
            "replicas": [],
        },
    }


def tencent_plan() -> dict[str, Any]:
    existing = [
        ("mysql", 3306, "production-mysql"),
        ("postgres", 5432, "production-postgres"),
        ("redis", 6379, "production-redis"),
    ]
    return {
        "cloud": "tencent",
        "peerCidr": f"{ALIBABA}/32",
        "adminCidrs": ["203.0.113.0/24"],
        "workloads": [
            {
                "name": name,
                "role": "existing:database",
                "memoryMib": 128,
                "family": None,
                "ports": [_port(port, "peer")],
            }
            for name, port, _ in existing
        ],
        "replication": {
            "sources": [],
            "replicas": [
                {"name": name, "kind": name, "source": source, "sourceAddress": ALIBABA, "port": port}
                for name, port, source in existing
            ],
        },
    }


def source_commands(**changes: Any) -> dict[str, Any]:
    bodies = {"production-mysql": MYSQL_SOURCE, "production-postgres": POSTGRES_SOURCE, "production-redis": "true\n"}
    params = {"PEER_ADDRESS": PEER, "PEER_CIDR": f"{PEER}/32", "HBA_FILE": "/x/pg_hba.conf", "DATABASE": "future_user"}
    commands = {
        db: script_step(f"alibaba-db-repl-{db}", {"NAME": db, **params, **TLS}, body) for db, body in bodies.items()
    }
    commands.update(changes)
    return commands


def replica_commands(**changes: Any) -> dict[str, Any]:
    bodies = {"mysql": MYSQL_REPLICA, "postgres": POSTGRES_REPLICA, "redis": REDIS_REPLICA}
    ports = {"mysql": 3306, "postgres": 5432, "redis": 6379}
    commands = {
        name: script_step(
            f"tencent-svc-replica-{name}",
            {"NAME": name, "SOURCE_HOST": ALIBABA, "SOURCE_PORT": ports[name], **TLS},
            body,
        )
        for name, body in bodies.items()
    }
    commands.update(changes)
    return commands


def alibaba(plan: dict[str, Any] | None = None, replaced: dict[str, Any] | None = None) -> Any:
    """The alibaba side; ``replaced`` swaps a source's command (None: leaves it out)."""
    plan = plan if plan is not None else alibaba_plan()
    found = [c for c in source_commands(**(replaced or {})).values() if c is not None]
    return run_of(resource(HOST, "alibaba-host", {"plan": plan}), *found, outputs={"plan": plan})


def tencent(plan: dict[str, Any] | None = None, *extra: Any, **commands: Any) -> Any:
    plan = plan if plan is not None else tencent_plan()
    found = [c for c in replica_commands(**commands).values() if c is not None]
    return run_of(resource(HOST, "tencent-host", {"plan": plan}), *found, *extra, outputs={"plan": plan})


def _replica(name: str, body: str, **params: Any) -> Any:
    rendered = {"NAME": name, "SOURCE_HOST": ALIBABA, "SOURCE_PORT": 3306, **TLS, **params}
    return script_step(f"tencent-svc-replica-{name}", {k: v for k, v in rendered.items() if v is not None}, body)


def _plan_with(plan: dict[str, Any], section: str, name: str, **changes: Any) -> dict[str, Any]:
    plan = copy.deepcopy(plan)
    for entry in plan["replication"][section]:
        if entry["name"] == name:
            entry.update(changes)
    return plan


def _exposed(expose: str) -> dict[str, Any]:
    plan = alibaba_plan()
    plan["workloads"][0]["ports"][0]["expose"] = expose
    return plan


@cache
def real_replicas():
    """The real tencent stack with its engines made replicas of the shipped alibaba stack's sources
    (the StackReference is served by the alibaba stack file run through the same program)."""
    return run_program("tencent", **with_replicas())


def _expose_public(plan: dict[str, Any]) -> None:
    for workload in plan["workloads"]:
        if workload["name"] == "production-mysql":
            workload["ports"][0]["expose"] = "public"


def _replica_from(address: str):
    def edit(plan: dict[str, Any]) -> None:
        plan["replication"]["replicas"][0]["sourceAddress"] = address

    return edit


@cache
def failing_real_stacks():
    """The real program's replication, broken one way at a time."""
    alibaba_run, tencent_run = shipped("alibaba"), real_replicas()
    return {
        "real_replica_verifying_the_ca_only": edit_inputs(
            tencent_run, "tencent-svc-replica-mysql-step", step_parameter("TLS_VERIFY", "verify-ca")
        ),
        "real_replica_with_sslmode_require": edit_script(
            tencent_run,
            "tencent-svc-replica-postgres",
            lambda script: script.replace("sslmode=${TLS_VERIFY}", "sslmode=require"),
        ),
        "real_replica_without_server_verification": edit_script(
            tencent_run,
            "tencent-svc-replica-mysql",
            lambda script: script.replace("MASTER_SSL_VERIFY_SERVER_CERT=1", "MASTER_SSL_VERIFY_SERVER_CERT=0"),
        ),
        "real_replica_from_another_host": with_plan(tencent_run, _replica_from("198.51.100.9")),
        "real_source_without_a_ca_file": edit_inputs(
            alibaba_run, "alibaba-db-repl-production-mysql-step", step_parameter("CA_FILE", "")
        ),
        "real_source_exposed_to_the_world": with_plan(alibaba_run, _expose_public),
        "real_source_without_its_command": without(alibaba_run, "alibaba-db-repl-production-redis"),
    }


@cache
def passing_stacks():
    return {
        "shipped_alibaba": shipped("alibaba"),
        "shipped_tencent": shipped("tencent"),
        "real_replicas_of_the_shipped_alibaba_stack": real_replicas(),
        # A created host waits for its pinned SSH key: no command runs on it yet, the cloud side is there.
        "created_alibaba_waiting_for_its_host_key": created("alibaba"),
        "created_tencent_waiting_for_its_host_key": created("tencent"),
        "sources_over_tls": alibaba(),
        "replicas_over_tls": tencent(),
        "sslmode_from_the_rendered_parameter": tencent(postgres=_replica("postgres", POSTGRES_REPLICA)),
        "sslmode_verify_full_literal": tencent(
            postgres=_replica(
                "postgres", "psql -c \"CREATE SUBSCRIPTION s CONNECTION 'sslmode=verify-full' PUBLICATION p\"\n"
            )
        ),
        "health_check_is_not_a_replication_command": tencent(
            None, script_step("tencent-svc-replication-health", {"STATE_DIR": "/var/lib/platform-state"}, HEALTH)
        ),
        "promotion_is_not_a_replication_command": tencent(
            None, script_step("tencent-svc-promote-redis", {"NAME": "redis"}, "redis-cli REPLICAOF NO ONE\n")
        ),
        "replication_in_a_comment_only": tencent(
            None, script_step("tencent-svc-notes", {}, "# CHANGE REPLICATION SOURCE TO is run by the replica step\n")
        ),
        "source_address_as_a_host_route": tencent(
            _plan_with(tencent_plan(), "replicas", "redis", sourceAddress=f"{ALIBABA}/32")
        ),
        "no_replication_in_the_plan": run_of(
            resource(HOST, "h", {}), outputs={"plan": {"cloud": "alibaba", "workloads": []}}
        ),
    }


@cache
def failing_stacks():
    return {
        "replica_without_tls_verify": tencent(mysql=_replica("mysql", MYSQL_REPLICA, TLS_VERIFY=None)),
        "replica_verifying_the_ca_only": tencent(mysql=_replica("mysql", MYSQL_REPLICA, TLS_VERIFY="verify-ca")),
        "replica_without_a_ca_file": tencent(mysql=_replica("mysql", MYSQL_REPLICA, CA_FILE="")),
        "source_without_tls_parameters": alibaba(
            replaced={
                "production-mysql": script_step(
                    "alibaba-db-repl-production-mysql", {"NAME": "production-mysql", "PEER_ADDRESS": PEER}, MYSQL_SOURCE
                )
            }
        ),
        "sslmode_require": tencent(
            postgres=_replica("postgres", POSTGRES_REPLICA.replace("sslmode=$TLS_VERIFY", "sslmode=require"))
        ),
        "sslmode_from_a_parameter_that_disables_it": tencent(
            postgres=_replica("postgres", POSTGRES_REPLICA.replace("$TLS_VERIFY", "$SSLMODE"), SSLMODE="disable")
        ),
        "master_ssl_off": tencent(
            mysql=_replica("mysql", "mysql -e \"CHANGE MASTER TO MASTER_HOST='$SOURCE_HOST', MASTER_SSL=0\"\n")
        ),
        "source_ssl_verification_off": tencent(
            mysql=_replica(
                "mysql", MYSQL_REPLICA.replace("SOURCE_SSL_VERIFY_SERVER_CERT=1", "SOURCE_SSL_VERIFY_SERVER_CERT=0")
            )
        ),
        "redis_tls_replication_off": tencent(
            redis=_replica("redis", REDIS_REPLICA.replace("tls-replication yes", "tls-replication no"))
        ),
        "pg_hba_plaintext_entry": alibaba(
            replaced={
                "production-postgres": script_step(
                    "alibaba-db-repl-production-postgres",
                    {
                        "NAME": "production-postgres",
                        "PEER_CIDR": f"{PEER}/32",
                        "HBA_FILE": "/x",
                        "DATABASE": "d",
                        **TLS,
                    },
                    POSTGRES_SOURCE.replace("hostssl", "host"),
                )
            }
        ),
        "mysql_user_without_tls": alibaba(
            replaced={
                "production-mysql": script_step(
                    "alibaba-db-repl-production-mysql",
                    {"NAME": "production-mysql", "PEER_ADDRESS": PEER, **TLS},
                    MYSQL_SOURCE.replace("REQUIRE SSL", "REQUIRE NONE"),
                )
            }
        ),
        "unnamed_command_setting_up_replication": tencent(
            None,
            script_step("tencent-svc-setup", {"SOURCE_HOST": ALIBABA}, 'redis-cli REPLICAOF "$SOURCE_HOST" 6379\n'),
        ),
        "source_port_public": alibaba(_exposed("public")),
        "source_port_to_the_admins": alibaba(_exposed("admins")),
        "source_accepting_another_peer": alibaba(
            _plan_with(alibaba_plan(), "sources", "production-redis", peerCidr="0.0.0.0/0")
        ),
        "source_without_its_command": alibaba(replaced={"production-redis": None}),
        "source_of_an_engine_that_cannot_replicate": alibaba(
            _plan_with(alibaba_plan(), "sources", "production-redis", kind="neo4j")
        ),
        "replica_of_another_host": tencent(
            _plan_with(tencent_plan(), "replicas", "mysql", sourceAddress="198.51.100.9")
        ),
        "replica_without_its_command": tencent(redis=None),
        **failing_real_stacks(),
    }


def messages(run: Any) -> list[str]:
    return [v.message for v in violations(run, POLICY)]


def test_replication_over_tls_passes_and_fails_the_named_fixtures():
    fixtures = {**passing_stacks(), **failing_stacks()}
    assert flagged(fixtures, POLICY) == set(failing_stacks())


def test_the_shipped_stacks_replicate_over_verified_tls_only():
    alibaba_run, tencent_run = shipped("alibaba"), shipped("tencent")
    sources = alibaba_run.outputs["plan"]["replication"]["sources"]
    assert {s["kind"] for s in sources} == {"mysql", "postgres", "redis"}
    assert {r.name for r in alibaba_run.resources if "-repl-" in r.name} >= {
        f"alibaba-db-repl-{s['name']}" for s in sources
    }
    assert messages(alibaba_run) == []
    assert messages(tencent_run) == []


def test_the_real_replicas_render_verify_full_and_the_ca():
    from tests.stacks import step_parameters

    run = real_replicas()
    replicas = {r.name: step_parameters(run, r.name) for r in run.of_type(COMMAND) if "-replica-" in r.name}
    assert sorted(replicas) == [f"tencent-svc-replica-{name}" for name in ("mysql", "postgres", "redis")]
    assert all(p["TLS_VERIFY"] == "verify-full" and p["CA_FILE"] for p in replicas.values())
    assert {p["SOURCE_HOST"] for p in replicas.values()} == {"47.115.168.107"}
    assert messages(run) == []


def test_the_real_program_broken_one_way_at_a_time_is_refused_for_that_reason():
    found = {name: messages(run) for name, run in failing_real_stacks().items()}
    mysql = "replication command tencent-svc-replica-mysql: create/update"
    # The replica script is one for the three engines: its PostgreSQL branch reads the same parameter.
    assert found["real_replica_verifying_the_ca_only"] == [
        "replication command tencent-svc-replica-mysql: renders TLS_VERIFY=verify-ca, not verify-full",
        f"{mysql} uses sslmode=verify-ca: only verify-full verifies the peer's certificate",
    ]
    assert found["real_replica_with_sslmode_require"] == [
        "replication command tencent-svc-replica-postgres: create/update uses sslmode=require: only verify-full "
        "verifies the peer's certificate"
    ]
    assert found["real_replica_without_server_verification"] == [
        f"{mysql} writes MASTER_SSL_VERIFY_SERVER_CERT=0: replication would run without TLS or without verifying "
        "the peer"
    ]
    assert found["real_replica_from_another_host"] == [
        "tencent-host: replica mysql replicates from 198.51.100.9, which is not the plan's peer (47.115.168.107/32): "
        "replication runs between the two hosts only"
    ]
    assert found["real_source_without_a_ca_file"] == [
        "replication command alibaba-db-repl-production-mysql: renders no CA_FILE: the peer's "
        "certificate cannot be verified"
    ]
    assert found["real_source_exposed_to_the_world"] == [
        "alibaba-host: replication source production-mysql exposes port 3306 to public; a replication port is "
        "exposed to the peer only (expose: peer)"
    ]
    assert found["real_source_without_its_command"] == [
        "alibaba-host: replication source production-redis has no command *-repl-production-redis that sets it up "
        "over TLS"
    ]


def test_messages_name_the_command_and_what_turns_tls_off():
    found = {name: messages(run) for name, run in failing_stacks().items()}
    mysql, redis = "replication command tencent-svc-replica-mysql", "replication command tencent-svc-replica-redis"
    assert found["replica_without_tls_verify"] == [f"{mysql}: does not render TLS_VERIFY=verify-full"]
    assert found["replica_verifying_the_ca_only"] == [f"{mysql}: renders TLS_VERIFY=verify-ca, not verify-full"]
    assert found["replica_without_a_ca_file"] == [
        f"{mysql}: renders no CA_FILE: the peer's certificate cannot be verified"
    ]
    assert found["sslmode_from_a_parameter_that_disables_it"] == [
        "replication command tencent-svc-replica-postgres: create/update uses sslmode=disable: only verify-full "
        "verifies the peer's certificate"
    ]
    assert found["redis_tls_replication_off"] == [
        f"{redis}: create/update writes tls-replication no: replication would run without TLS or without verifying "
        "the peer"
    ]
    assert found["unnamed_command_setting_up_replication"] == [
        "replication command tencent-svc-setup: does not render TLS_VERIFY=verify-full",
        "replication command tencent-svc-setup: renders no CA_FILE: the peer's certificate cannot be verified",
    ]
    assert found["source_port_public"] == [
        "alibaba-host: replication source production-mysql exposes port 3306 to public; a replication port is "
        "exposed to the peer only (expose: peer)"
    ]
    assert found["source_accepting_another_peer"] == [
        f"alibaba-host: replication source production-redis accepts replicas from 0.0.0.0/0, not the plan's peer "
        f"{PEER}/32"
    ]
    assert found["source_without_its_command"] == [
        "alibaba-host: replication source production-redis has no command *-repl-production-redis that sets it up "
        "over TLS"
    ]
    assert found["replica_of_another_host"] == [
        f"tencent-host: replica mysql replicates from 198.51.100.9, which is not the plan's peer ({ALIBABA}/32): "
        "replication runs between the two hosts only"
    ]


def test_a_command_unknown_during_preview_is_not_read_and_does_not_stop_the_policy():
    """A replica's script built from the StackReference may be unknown during preview, and so its
    step's parameters."""
    name = "tencent-svc-replica-mysql"
    record = {"scripts": [], "parameters": UNKNOWN, "stops": [], "removes": []}
    unknown = (
        resource(STEP, f"{name}-step", record, outputs=record),
        resource(COMMAND, name, {"create": UNKNOWN, "update": UNKNOWN}),
    )
    assert messages(tencent(mysql=unknown)) == []
    assert messages(tencent(mysql=unknown[1])) == [
        f"replication command {name}: has no step record (platform:provisioning:Step): its TLS parameters cannot be "
        "read"
    ]
    assert messages(
        tencent(_plan_with(tencent_plan(), "replicas", "redis", sourceAddress="198.51.100.9"), mysql=unknown)
    ) == [
        "tencent-host: replica redis replicates from 198.51.100.9, which is not the plan's peer (47.115.168.107/32): "
        "replication runs between the two hosts only"
    ]
