"""What the engine does on the second `up`: the options every command and component registers.

pulumi-command's SDK merges ``replaceOnChanges: ["triggers[*]"]`` into every command, and a
replace runs the new create and then the OLD delete. So no command has triggers or a delete;
every command is retained when it leaves the program; a plan change only changes the text an
update runs. ``tests/test_preflight_diff.py`` derives the engine's steps from these options.
"""

from __future__ import annotations

import pytest

import program
from plan import DEFAULT_DATABASES
from tests.stacks import CREATED_HOST, commands, evaluate

COMMAND = "command:remote:Command"
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
    (component,) = [r for r in run.resources if r.type.startswith("platform:provisioning:")]
    assert component.protect


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
    assert {name for name in before if before[name] != after[name]} == {"alibaba-db-production-mysql"}


def test_a_renamed_component_carries_its_old_name_to_every_child(monkeypatch):
    old = evaluate("alibaba")
    monkeypatch.setitem(program.FORMER_NAMES, "alibaba-db", ("alibaba-databases",))
    renamed = evaluate("alibaba")
    component = renamed.named("alibaba-db")
    assert component.aliases == [old.named("alibaba-db").urn.replace("::alibaba-db", "::alibaba-databases")]
    mysql = renamed.named("alibaba-db-production-mysql")
    assert any(alias.endswith("::alibaba-databases-production-mysql") for alias in mysql.aliases)
    assert all(r.aliases == [] for r in old.resources)
