"""secret-hygiene: no secret in a command line, a log or plain-text state; SSH by key, host key pinned."""

from __future__ import annotations

import copy
from functools import cache

from preflight.engine import unwrap
from tests.policies.shapes import COMMAND, edit_inputs, flagged, resource, secret, shipped, violations, with_resources

MYSQL = "alibaba-db-production-mysql"


def _append(text: str):
    def edit(inputs):
        inputs["create"] += f"\n{text}\n"

    return edit


def _set(key: str, value):
    def edit(inputs):
        inputs[key] = value

    return edit


def _connection(edit_connection):
    def edit(inputs):
        edit_connection(inputs["connection"]["value"])  # the whole connection is secret (it holds the key)

    return edit


def _without_secret_outputs():
    run = shipped("alibaba")
    run.named(MYSQL).additional_secret_outputs = ["connection"]
    return run


def _swap_key_for_password(connection):
    del connection["privateKey"]
    connection["password"] = "hunter2-but-longer"


# Only the header of a key block, joined at run time so the repository's own secret scan
# (shared/hooks/before-stop) keeps finding real keys only.
KEY_BLOCK_HEADER = "-----BEGIN OPENSSH " + "PRIVATE KEY-----"


@cache
def passing_resources():
    alibaba = shipped("alibaba")
    reads_its_secret = resource(
        COMMAND,
        "reads-a-secret-file",
        {
            "create": 'MYSQL_PWD="$(cat /etc/platform/secrets/mysql.env)" mysql -uroot -p"$MYSQL_PWD" -e "select 1"\n'
            "SECRET_FILE=/etc/platform/secrets/redis.conf\nredis-cli --pass-file /run/x ping",
            "connection": secret(
                {"host": "47.115.168.107", "user": "root", "privateKey": "k", "hostKey": "ssh-ed25519 A"}
            ),
            "logging": "stdoutAndStderr",
        },
    )
    return {
        "shipped_alibaba": alibaba,
        "shipped_tencent": shipped("tencent"),
        "command_with_secret_references_only": with_resources(alibaba, reads_its_secret),
    }


@cache
def failing_resources():
    alibaba = shipped("alibaba")
    return {
        "mysql_password_in_the_command": edit_inputs(
            alibaba, MYSQL, _append("mysql -uroot -pS3cretPassw0rd -e 'select 1'")
        ),
        "password_assigned_in_the_command": edit_inputs(alibaba, MYSQL, _append("MYSQL_ROOT_PASSWORD=S3cretPassw0rd")),
        # The shipped units' Secret=<name>,type=env,target=... is a reference; a bare value is not.
        "password_as_a_quadlet_secret_value": edit_inputs(alibaba, MYSQL, _append("Secret=S3cretPassw0rd")),
        "private_key_in_the_command": edit_inputs(alibaba, MYSQL, _append(KEY_BLOCK_HEADER)),
        "alibaba_access_key_in_the_command": edit_inputs(alibaba, MYSQL, _append("export KEY=LTAI5tAbCdEfGhIjKlMnOp")),
        "secret_command_logs_its_output": edit_inputs(alibaba, MYSQL, _set("logging", "stdoutAndStderr")),
        "secret_command_passes_output_on": edit_inputs(alibaba, MYSQL, _set("addPreviousOutputInEnv", True)),
        "secret_command_without_secret_outputs": _without_secret_outputs(),
        "connection_with_a_password": edit_inputs(alibaba, MYSQL, _connection(_swap_key_for_password)),
        "connection_without_a_host_key": edit_inputs(alibaba, MYSQL, _connection(lambda c: c.pop("hostKey"))),
    }


def test_secret_hygiene_passes_and_fails_the_named_fixtures():
    fixtures = {**passing_resources(), **failing_resources()}
    assert flagged(fixtures, "secret-hygiene") == set(failing_resources())


def test_messages_name_the_finding_and_never_the_value():
    found = {name: [v.message for v in violations(run, "secret-hygiene")] for name, run in failing_resources().items()}
    assert found["mysql_password_in_the_command"] == [
        "create: a mysql -p<password> argument; pass secrets on stdin from `pulumi config --secret`"
    ]
    assert found["password_assigned_in_the_command"] == [
        "create: a literal assigned to MYSQL_ROOT_PASSWORD; pass secrets on stdin from `pulumi config --secret`"
    ]
    assert found["alibaba_access_key_in_the_command"] == [
        "create: an Alibaba Cloud AccessKey id; pass secrets on stdin from `pulumi config --secret`"
    ]
    assert found["secret_command_logs_its_output"] == [
        "carries secrets on stdin/environment but logging is 'stdoutAndStderr'; set logging: none"
    ]
    assert found["secret_command_without_secret_outputs"] == [
        "carries secrets but stderr and stdout are not in additionalSecretOutputs, so whatever it prints lands in "
        "state in plain text"
    ]
    assert found["connection_with_a_password"] == [
        "connection authenticates with a password; use privateKey (a secret config value)",
        "connection has no privateKey: SSH must authenticate with the admins' key",
    ]
    everything = " ".join(m for messages in found.values() for m in messages)
    for value in ("S3cretPassw0rd", "hunter2", "LTAI5tAbCdEfGhIjKlMnOp", "PLACEHOLDER-SECRET"):
        assert value not in everything


def test_the_shipped_secret_commands_are_the_ones_checked_for_logging():
    # The database, TLS, replication and exporter-user commands carry passwords or keys on stdin;
    # the bootstrap, the backups and the (database host's) monitoring carry none and may log.
    run = copy.deepcopy(shipped("alibaba"))
    for registration in run.of_type(COMMAND):
        registration.inputs["logging"] = "stdoutAndStderr"
    found = {v.urn.rsplit("::", 1)[-1] for v in violations(run, "secret-hygiene")}
    # A clients step of a database without clients, and a heartbeat without its URL, have an empty
    # stdin: nothing to guard.
    assert found == {r.name for r in run.of_type(COMMAND) if unwrap(r.inputs.get("stdin"))}
    assert {r.name for r in run.of_type(COMMAND) if "stdin" in r.inputs} - found == {
        "alibaba-db-clients-production-mysql",
        "alibaba-db-clients-production-postgres",
        "alibaba-db-heartbeat",
    }
    databases = {w["name"] for w in run.outputs["plan"]["workloads"] if w["role"].startswith("database:")}
    sources = {source["name"] for source in run.outputs["plan"]["replication"]["sources"]}
    assert found == {
        "alibaba-db-tls",
        *(f"alibaba-db-{db}" for db in databases),
        *(f"alibaba-db-repl-{db}" for db in sources),
        *(f"alibaba-db-exporter-{db}" for db in sources),  # the exporters' passwords; the same engines
    }
