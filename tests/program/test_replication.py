"""Replication under the mocks: the Alibaba sources and their credentials, the Tencent replicas.

The Tencent stack reads the Alibaba stack's outputs through a StackReference; here, as in
``python -m preflight``, that is the committed Alibaba stack file run through the same program
(preflight/references.py), so nothing about the Alibaba side is copied into the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi import RunError

from preflight.engine import StackOutputs, run_stack, unwrap
from tests.stacks import (
    SOURCE_STACK,
    commands,
    config_for,
    evaluate,
    inputs,
    preflight_cli,
    replica,
    stack_folder,
    step_parameters,
    with_replicas,
    without_replicas,
)

SOURCES = ("production-mysql", "production-postgres", "production-redis")
REPLICAS = ("mysql", "postgres", "redis")
SECRET_SIG = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")
GENERATED = "PLACEHOLDER-SECRET-generated-"


@pytest.fixture(scope="module")
def tencent_replicas():
    return evaluate("tencent", **with_replicas())


# --- Alibaba: the sources ------------------------------------------------------------------------------


def test_the_alibaba_stack_exports_where_and_how_to_replicate(alibaba):
    replication = unwrap(alibaba.outputs["replication"])
    assert replication["sourceAddress"] == "47.115.168.107"
    assert replication["caCert"].startswith("-----BEGIN CERTIFICATE-----")
    assert replication["sources"] == {
        "production-mysql": {"kind": "mysql", "port": 3306.0, "user": "replication", "database": None},
        "production-postgres": {"kind": "postgres", "port": 5432.0, "user": "replication", "database": "future_user"},
        "production-redis": {"kind": "redis", "port": 6379.0, "user": "replication", "database": None},
    }


def test_the_passwords_are_a_secret_output(alibaba):
    raw = alibaba.outputs["replicationPasswords"]
    assert raw[SECRET_SIG[0]] == SECRET_SIG[1]
    assert sorted(unwrap(raw)) == sorted(SOURCES)
    assert "PLACEHOLDER" not in str(unwrap(alibaba.outputs["replication"]))


def test_one_password_per_source_letters_and_digits_only(alibaba):
    passwords = alibaba.of_type("random:index/randomPassword:RandomPassword")
    assert sorted(p.name for p in passwords) == sorted(f"alibaba-repl-password-{name}" for name in SOURCES)
    for password in passwords:
        assert inputs(password) == {
            "length": 32.0,
            "special": False,
            "minLower": 1.0,
            "minUpper": 1.0,
            "minNumeric": 1.0,
        }
        assert "result" in password.additional_secret_outputs


def test_each_source_has_its_own_key_and_a_certificate_for_the_hosts_address(alibaba):
    requests = {r.name: inputs(r) for r in alibaba.of_type("tls:index/certRequest:CertRequest")}
    assert sorted(requests) == sorted(f"alibaba-replication-csr-{name}" for name in SOURCES)
    for request in requests.values():
        assert request["ipAddresses"] == ["47.115.168.107"]
    keys = [r.name for r in alibaba.of_type("tls:index/privateKey:PrivateKey") if "-replication-" in r.name]
    assert len(set(keys)) == 1 + len(SOURCES)


def test_source_commands_verify_the_peer_and_take_their_password_on_stdin_only(alibaba):
    for name in SOURCES:
        params = step_parameters(alibaba, f"alibaba-db-repl-{name}")
        assert params["TLS_VERIFY"] == "verify-full"
        assert params["CA_FILE"] == f"/etc/platform/secrets/tls/{name}/ca.crt"
        assert params["PEER"] == "101.33.251.158"
        assert params["REPL_USER"] == "replication"
        raw = alibaba.named(f"alibaba-db-repl-{name}").inputs
        assert raw["stdin"][SECRET_SIG[0]] == SECRET_SIG[1]
        assert raw["stdin"]["value"] == f"{GENERATED}alibaba-repl-password-{name}\n"
        assert raw["logging"] == "none"
    tls = step_parameters(alibaba, "alibaba-db-tls")
    assert (tls["TLS_VERIFY"], tls["CA_FILE"]) == ("verify-full", "ca.crt")
    assert tls["SOURCE_NAMES"] == " ".join(SOURCES)


def test_no_replication_without_replicable_databases():
    run = evaluate(
        "alibaba",
        databases=[
            {
                "kind": "weaviate",
                "name": "vectors",
                "image": "cr.weaviate.io/semitechnologies/weaviate:1.26.6",
                "ports": [{"port": 8080, "expose": "peer"}],
                "memoryMib": 192,
            }
        ],
    )
    # The only generated secret left is the metrics tunnel's key (monitoring, not replication).
    assert [r.name for r in run.resources if r.type.startswith(("tls:", "random:"))] == ["alibaba-metrics-key"]
    assert "replication" not in run.outputs
    assert not [name for name in commands(run) if "-repl-" in name or name.endswith("-tls")]


# --- Tencent: the replicas ----------------------------------------------------------------------------


def test_the_replicas_read_the_alibaba_stack_through_a_stack_reference(tencent_replicas):
    steps = commands(tencent_replicas)
    assert sorted(name for name in steps if "-replica-" in name) == sorted(f"tencent-svc-replica-{n}" for n in REPLICAS)
    for name in REPLICAS:
        command = tencent_replicas.named(f"tencent-svc-replica-{name}")
        assert any(d.endswith(f"pulumi:pulumi:StackReference::{SOURCE_STACK}") for d in command.dependencies)
        assert tencent_replicas.named("tencent-svc-bootstrap").urn in command.dependencies


def test_each_replica_follows_its_source_over_verified_tls(tencent_replicas):
    for name, source, port in zip(REPLICAS, SOURCES, (3306, 5432, 6379), strict=True):
        params = step_parameters(tencent_replicas, f"tencent-svc-replica-{name}")
        assert params["TLS_VERIFY"] == "verify-full"
        assert params["CA_FILE"] == f"/opt/platform/replication/{name}/ca.crt"
        assert (params["SOURCE_NAME"], params["SOURCE_HOST"], params["SOURCE_PORT"]) == (
            source,
            "47.115.168.107",
            str(port),
        )
        assert params["SOURCE_USER"] == "replication"
    assert step_parameters(tencent_replicas, "tencent-svc-replica-postgres")["DATABASE"] == "future_user"


def test_a_replicas_password_and_the_ca_come_from_the_alibaba_outputs_on_secret_stdin(tencent_replicas, alibaba):
    ca = unwrap(alibaba.outputs["replication"])["caCert"]
    for name, source in zip(REPLICAS, SOURCES, strict=True):
        raw = tencent_replicas.named(f"tencent-svc-replica-{name}").inputs
        assert raw["stdin"][SECRET_SIG[0]] == SECRET_SIG[1]
        assert raw["stdin"]["value"] == f"{GENERATED}alibaba-repl-password-{source}\n{ca.strip()}\n"
        assert raw["logging"] == "none"
        assert GENERATED not in raw["create"] + raw["update"]


def test_every_replication_command_renders_verify_full(alibaba, tencent_replicas):
    replication = [
        (run, name)
        for run in (alibaba, tencent_replicas)
        for name in commands(run)
        if any(part in name for part in ("-repl-", "-replica-")) or name.endswith("-db-tls")
    ]
    assert len(replication) == 1 + 3 + 3
    for run, name in replication:
        assert step_parameters(run, name)["TLS_VERIFY"] == "verify-full", name
        assert step_parameters(run, name)["CA_FILE"], name
    # The health check installs a program that carries its own parameters.
    health = step_parameters(tencent_replicas, "tencent-svc-replication-health")
    assert "TLS_VERIFY=verify-full" in health["SCRIPT_CONTENT"]


def test_the_health_check_comes_after_the_replicas(tencent_replicas):
    health = tencent_replicas.named("tencent-svc-replication-health")
    for name in REPLICAS:
        assert tencent_replicas.named(f"tencent-svc-replica-{name}").urn in health.dependencies
    assert "stdin" not in health.inputs


def test_the_default_plan_makes_the_three_engines_replicas_and_replicaof_null_keeps_them():
    """The seeds' replicas (000: "从库: 腾讯云"), on by default; ``replicaOf: null`` keeps an engine as it is."""
    default = commands(evaluate("tencent"))
    assert {name for name in default if "-replica-" in name} == {
        f"tencent-svc-replica-{name}" for name in ("mysql", "postgres", "redis")
    }
    kept = commands(evaluate("tencent", databaseStack=None, existing=without_replicas()))
    assert not [name for name in kept if "replica" in name]


@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_a_replica_of_a_source_the_alibaba_stack_does_not_offer_is_a_clear_error():
    # The Alibaba side narrowed to Redis is what the Tencent stack reads.
    narrowed = evaluate("alibaba", replication={"sources": ["production-redis"]})
    config = config_for("tencent", **with_replicas(existing=[replica("mysql", 3306, "production-mysql", 384)]))
    references = {SOURCE_STACK: StackOutputs(outputs=unwrap(narrowed.outputs), secret_names=("replicationPasswords",))}
    with pytest.raises(RunError, match=r"^platform:existing\[0\]\.replicaOf\.source: 'production-mysql' is not a"):
        run_stack(config.project, "tencent", config.config, set(config.secret_keys), references=references)


@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_a_port_that_disagrees_with_the_alibaba_stack_is_a_clear_error():
    existing = [replica("mysql", 3306, "production-mysql", 384, port=3307)]
    config = config_for("tencent", **with_replicas(existing=existing))
    alibaba = evaluate("alibaba")
    references = {SOURCE_STACK: StackOutputs(outputs=unwrap(alibaba.outputs), secret_names=("replicationPasswords",))}
    with pytest.raises(RunError, match=r"^platform:existing\[0\]\.replicaOf\.port: the plan says 3307"):
        run_stack(config.project, "tencent", config.config, set(config.secret_keys), references=references)


@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_an_output_the_referenced_stack_lacks_is_a_clear_error():
    config = config_for("tencent", **with_replicas())
    references = {SOURCE_STACK: StackOutputs(outputs={"publicIp": "47.115.168.107"})}
    with pytest.raises(RunError, match=r"sourceStack 'organization/platform/alibaba': the stack has no output 'replic"):
        run_stack(config.project, "tencent", config.config, set(config.secret_keys), references=references)


# --- python -m preflight ------------------------------------------------------------------------------


def test_preflight_previews_the_tencent_replicas_from_the_alibaba_stack_file(tmp_path: Path):
    root = stack_folder(tmp_path, "tencent", **with_replicas())
    result = preflight_cli("tencent", "--format", "json", root=root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tencent-svc-replica-mysql" in result.stdout
    assert f"{GENERATED}alibaba-repl-password" not in result.stdout  # secrets stay secret in the report


def test_preflight_names_a_missing_source_stack_file_in_one_line(tmp_path: Path):
    root = stack_folder(tmp_path, "tencent", **with_replicas(replication={"sourceStack": "organization/platform/prod"}))
    result = preflight_cli("tencent", root=root)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: stack tencent: platform:replication.sourceStack 'organization/platform/prod': no Pulumi.prod.yaml "
        "beside Pulumi.tencent.yaml to evaluate for it"
    ]


@pytest.mark.parametrize(
    ("stack", "changes", "fragments"),
    [
        pytest.param(
            "alibaba",
            {"backups": {"schedule": "nightly at 3"}},
            ("platform:backups.schedule", "'nightly at 3'", "*-*-* 03:00:00"),
            id="schedule-not-a-calendar-expression",
        ),
        pytest.param(
            "alibaba",
            {"backups": {"keepDaily": 0}},
            ("platform:backups.keepDaily", "(got 0)", "keep at least 1"),
            id="retention-of-zero",
        ),
        pytest.param(
            "tencent",
            with_replicas(existing=[replica("mysql", 7687, "production-neo4j", 384, kind="neo4j")]),
            ("platform:existing[mysql].replicaOf.kind", "'neo4j'", "off-host backup", "mysql, postgres and redis"),
            id="replica-of-neo4j",
        ),
        pytest.param(
            "tencent",
            with_replicas(existing=[replica("mysql", 3306, "production-mysql", 384, host="203.0.113.99")]),
            ("platform:existing[mysql].replicaOf.host", "'203.0.113.99'", "firewall.peerAddress 47.115.168.107"),
            id="replica-target-not-the-peer",
        ),
    ],
)
def test_bad_input_is_one_line_naming_key_value_and_what_is_valid(tmp_path: Path, stack, changes, fragments):
    result = preflight_cli(stack, root=stack_folder(tmp_path, stack, **changes))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: stack {stack}: ")
    for fragment in fragments:
        assert fragment in line
    assert result.stdout == ""
