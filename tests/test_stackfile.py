"""Reading a committed stack file: what a reviewer reads is what the engine gets, and no
plain secret passes, whatever field it hides in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plan import PlanError, check_secrets_present, load_plan
from preflight.stackfile import StackFileError, read_stack, read_stack_file, with_missing_secrets
from tests.stacks import ROOT, stack_values

COMMITTED = (ROOT / "Pulumi.alibaba.yaml").read_text()
SECURE = "{secure: v1:AAAABBBBCCCC}"


def stack_file(tmp_path: Path, extra: str, base: str = COMMITTED) -> Path:
    path = tmp_path / "Pulumi.alibaba.yaml"
    path.write_text(base + extra)
    return path


def read(path: Path):
    return read_stack_file(path, "platform", "alibaba")


def test_a_repeated_key_names_both_lines(tmp_path):
    path = stack_file(tmp_path, "  platform:cloud: tencent\n")
    with pytest.raises(StackFileError, match=r"key 'platform:cloud' repeats the one on line \d+; YAML would"):
        read(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("config:\n  a: &x [1, 2]\n  b: *x\n", "aliases"),
        ("config:\n  platform:host: {1: 2}\n", "key 1 is not a string"),
        ("config:\n  platform:paths: " + "[" * 40 + "]" * 40 + "\n", "nested deeper than 32"),
        ("config:\n  platform:host: {memoryMib: 1" + "0" * 5000 + "}\n", "cannot be read"),
    ],
)
def test_what_yaml_allows_but_a_stack_file_never_needs_is_refused(tmp_path, text, problem):
    with pytest.raises(StackFileError, match=problem):
        read(stack_file(tmp_path, "", base=text))


def test_one_secure_field_does_not_make_its_plain_sibling_secret(tmp_path):
    extra = f"  platform:dbPasswords:\n    production-mysql: {SECURE}\n    production-redis: PLANTED-redis-password\n"
    with pytest.raises(StackFileError) as refused:
        read(stack_file(tmp_path, extra))
    message = str(refused.value)
    assert message.startswith("platform:dbPasswords.production-redis is stored in plain text")
    assert "PLANTED" not in message


CREDENTIALS = ["alicloud:secretKey", "tencentcloud:secretKey", "tencentcloud:securityToken", "aws:token"]


@pytest.mark.parametrize("key", CREDENTIALS)
def test_provider_credentials_in_plain_text_are_refused_in_any_namespace(tmp_path, key):
    with pytest.raises(StackFileError, match=f"{key} is stored in plain text"):
        read(stack_file(tmp_path, f"  {key}: PLANTED-credential\n"))


def test_a_secure_provider_credential_passes_the_file_and_the_plan(tmp_path):
    stack = read(stack_file(tmp_path, f"  alicloud:secretKey: {SECURE}\n"))
    assert "alicloud:secretKey" in stack.secret_keys
    load_plan(stack.config, stack.secret_keys)


def test_a_plain_provider_credential_is_refused_by_the_program_too():
    config = {"platform:cloud": "alibaba", "tencentcloud:secretKey": "PLANTED"}
    with pytest.raises(PlanError, match="tencentcloud:secretKey is stored in plain text") as refused:
        load_plan(config, secret_keys=set())
    assert "PLANTED" not in str(refused.value)


def test_a_whole_object_secure_password_map_counts_as_set(tmp_path):
    stack = read(stack_file(tmp_path, f"  platform:dbPasswords: {SECURE}\n"))
    plan = load_plan(stack.config, stack.secret_keys)
    filled = with_missing_secrets(stack, tuple(db.name for db in plan.databases))
    check_secrets_present(plan, filled.config)  # raises when one is reported missing


def test_a_namespace_typo_is_an_error_with_a_suggestion():
    with pytest.raises(PlanError, match=r"unknown namespace 'platfrom'.*did you mean platform:cloud\?"):
        load_plan({"platfrom:cloud": "alibaba"})


@pytest.mark.parametrize(("section", "field"), [("host", "password"), ("firewall", "apiToken"), ("host", "hostkey")])
def test_an_unknown_field_is_named_but_its_value_is_not_shown(section, field):
    stack = read_stack(ROOT, "alibaba")
    block = {**stack_values("alibaba")[section], field: "PLANTED-value"}
    config = {**stack.config, f"platform:{section}": json.dumps(block)}
    with pytest.raises(PlanError) as refused:
        load_plan(config, stack.secret_keys)
    assert str(refused.value) == f"platform:{section}.{field}: unknown field; check the spelling against README.md"
