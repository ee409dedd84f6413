"""What the engine does on the second `up`: the options every command and component registers.

pulumi-command's SDK merges ``replaceOnChanges: ["triggers[*]"]`` into every command, and a
replace runs the new create and then the OLD delete. So no command has triggers or a delete;
every command is retained when it leaves the program; a plan change only changes the text an
update runs. ``tests/preflight/test_diff.py`` derives the engine's steps from these options.
"""

from __future__ import annotations

import pytest

import program
from plan import DEFAULT_DATABASES
from policies.facts import COMMAND, STEP
from preflight import diff
from preflight.engine import CloudMocks, RecordingMonitor, fake_pem
from tests.stacks import CREATED_HOST, commands, evaluate, inputs, with_clients

PROVISIONING = {"alibaba": "alibaba-db", "tencent": "tencent-svc"}


@pytest.fixture(scope="module", params=["alibaba", "tencent", "created-alibaba", "created-tencent"])
def run(request):
    stack, _, created = request.param.partition("-")
    if created:
        stack = created
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPOL2Qw8YbPq6ZS8h+qov6mI9FYu6tdSyEDEXvVWJtYg"
        return evaluate(stack, host={**CREATED_HOST[stack], "hostKey": key}, firewall={"securityGroupId": None})
    return evaluate(stack)


def test_no_command_can_be_replaced_or_removed_by_the_engine(run):
    found = run.of_type(COMMAND)
    assert len(found) >= 6
    for command in found:
        assert "triggers" not in command.inputs, command.name
        assert "delete" not in command.inputs, command.name
        assert command.inputs["update"] == command.inputs["create"], command.name
        assert command.retain_on_delete, command.name
        assert not command.delete_before_replace, command.name
        assert not command.protect, command.name


def test_the_provisioning_component_is_protected(run):
    (component,) = [r for r in run.resources if r.type.startswith("platform:provisioning:") and r.type != STEP]
    assert component.protect
    # Its step records run nothing and hold no data: they may come and go with their commands.
    assert [r.name for r in run.of_type(STEP) if r.protect] == []


def test_a_created_host_without_its_key_registers_no_provisioning():
    run = evaluate("alibaba", host=CREATED_HOST["alibaba"], firewall={"securityGroupId": None})
    assert run.of_type(COMMAND) == []
    assert [r for r in run.resources if r.type.startswith("platform:provisioning:")] == []


def test_one_databases_memory_change_changes_only_its_own_command_text():
    before = commands(evaluate("alibaba"))
    databases = [dict(db) for db in DEFAULT_DATABASES]
    databases[0]["memoryMib"] = 256  # production-mysql
    after = commands(evaluate("alibaba", databases=databases))
    assert set(after) == set(before)
    # Its container only: a backup's configuration carries the limit for Neo4j alone (its dump
    # runs in a sibling container while the database is stopped).
    assert {name for name in before if before[name] != after[name]} == {"alibaba-db-production-mysql"}


# --- the backup bucket, the replication CA and passwords on the second `up` ----------------------------


@pytest.fixture(scope="module")
def alibaba():
    return evaluate("alibaba")


def test_a_retention_change_updates_the_bucket_in_place(alibaba):
    found = diff.steps(alibaba, evaluate("alibaba", backups={"keepDaily": 14, "keepWeekly": 8}))
    bucket = found.by_name("alibaba-backups-bucket")
    assert (bucket.op, bucket.changed) == ("update", ("lifecycleRules",))
    assert found.hazards == ()


def test_a_bucket_rename_is_a_replace_the_protection_refuses(alibaba):
    found = diff.steps(alibaba, evaluate("alibaba", backups={"offHost": {"bucket": "another-backups"}}))
    bucket = found.by_name("alibaba-backups-bucket")
    assert bucket.op == "replace"
    assert "the provider replaces it on a change to bucket (terraform-provider-alicloud v1.289.0)" in bucket.notes
    assert any("alibaba-backups-bucket" in h and "protected" in h for h in found.hazards)
    assert any("alibaba-backups-bucket" in h and "holds data" in h for h in found.hazards)


def test_an_ordinary_plan_change_replaces_no_key_certificate_or_password(alibaba):
    databases = [dict(db) for db in DEFAULT_DATABASES]
    databases[1]["memoryMib"] = 160  # production-postgres
    found = diff.steps(alibaba, evaluate("alibaba", databases=databases, backups={"keepDaily": 3}))
    assert not [s.name for s in found.steps if s.op in ("replace", "delete")]
    generated = [s for s in found.steps if s.type.startswith(("tls:", "random:"))]
    # CA key and cert; per source key, CSR, cert; passwords; the metrics tunnel's key
    assert len(generated) == 1 + 1 + 3 * 3 + 3 + 1
    assert {s.op for s in generated} == {"same"}


class RenewedCertificates(CloudMocks):
    """As after pulumi-tls replaced the server certificates (due for renewal): new PEM, same inputs."""

    def new_resource(self, args):
        resource_id, state = super().new_resource(args)
        if args.typ == "tls:index/locallySignedCert:LocallySignedCert":
            state["certPem"] = fake_pem("CERTIFICATE", f"{args.name} (renewed)")
        return resource_id, state


def test_a_renewed_certificate_is_an_update_of_the_tls_command_never_a_replace(alibaba):
    renewed = evaluate("alibaba", monitor=RecordingMonitor(RenewedCertificates()))
    found = diff.steps(alibaba, renewed)
    tls = found.by_name("alibaba-db-tls")
    assert (tls.op, tls.changed) == ("update", ("stdin",))
    assert [run.phase for run in tls.runs] == ["update"]
    assert {s.name for s in found.changes() if s.new is not None and s.new.custom} == {"alibaba-db-tls"}


def test_certificates_are_renewed_ahead_of_expiry(alibaba):
    (ca,) = alibaba.of_type("tls:index/selfSignedCert:SelfSignedCert")
    ca_inputs = inputs(ca)
    assert ca_inputs["isCaCertificate"] is True
    assert ca_inputs["allowedUses"] == ["cert_signing", "crl_signing"]
    assert ca_inputs["validityPeriodHours"] > ca_inputs["earlyRenewalHours"] > 0
    for cert in alibaba.of_type("tls:index/locallySignedCert:LocallySignedCert"):
        props = inputs(cert)
        assert props["validityPeriodHours"] == 24 * 365
        assert props["earlyRenewalHours"] == 30 * 24
        assert "server_auth" in props["allowedUses"]
    for key in alibaba.of_type("tls:index/privateKey:PrivateKey"):
        expected = (
            {"algorithm": "ED25519"}
            if key.name == "alibaba-metrics-key"
            else {"algorithm": "ECDSA", "ecdsaCurve": "P256"}
        )
        assert inputs(key) == expected


def test_a_renamed_component_carries_its_old_name_to_every_child(monkeypatch):
    old = evaluate("alibaba")
    monkeypatch.setitem(program.FORMER_NAMES, "alibaba-db", ("alibaba-databases",))
    renamed = evaluate("alibaba")
    component = renamed.named("alibaba-db")
    assert component.aliases == [old.named("alibaba-db").urn.replace("::alibaba-db", "::alibaba-databases")]
    mysql = renamed.named("alibaba-db-production-mysql")
    assert any(alias.endswith("::alibaba-databases-production-mysql") for alias in mysql.aliases)
    assert all(r.aliases == [] for r in old.resources)


def test_a_new_client_creates_its_password_and_updates_the_steps_that_make_its_user(alibaba):
    """Adding a client: its password is created; the MySQL clients step and the Redis container step
    (its auth file holds the users) are updates; nothing is replaced or deleted, no other secret moves."""
    both = evaluate("alibaba", **with_clients(production_mysql=["looma-crm", "zervigo"], production_redis=["zervigo"]))
    found = diff.steps(alibaba, both)
    assert not [s.name for s in found.steps if s.op in ("replace", "delete")]
    created = {s.name for s in found.steps if s.op == "create" and s.type.startswith("random:")}
    assert created == {
        "alibaba-client-password-production-mysql-looma-crm",
        "alibaba-client-password-production-mysql-zervigo",
        "alibaba-client-password-production-redis-zervigo",
    }
    mysql = found.by_name("alibaba-db-clients-production-mysql")
    assert (mysql.op, set(mysql.changed)) == ("update", {"create", "update", "stdin"})  # CLIENTS, the passwords
    assert found.by_name("alibaba-db-production-redis").op == "update"
    assert found.by_name("alibaba-db-production-mysql").op == "same"  # MySQL's users are SQL, not its unit

    # A client leaving: its password goes (state only), the step that drops its login is an update.
    fewer = evaluate("alibaba", **with_clients(production_mysql=["looma-crm"], production_redis=["zervigo"]))
    left = diff.steps(both, fewer)
    deleted = [s for s in left.steps if s.op in ("replace", "delete")]
    assert [(s.name, s.type.split(":")[0]) for s in deleted] == [
        ("alibaba-client-password-production-mysql-zervigo", "random")
    ]
    assert left.by_name("alibaba-db-clients-production-mysql").op == "update"
    assert {s.op for s in left.steps if s.type.startswith(("tls:", "random:")) and s not in deleted} == {"same"}
