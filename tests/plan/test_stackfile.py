"""Reading a committed stack file: what a reviewer reads is what the engine gets, and no
plain secret passes, whatever field it hides in."""

from __future__ import annotations

import json
import re
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
    message = str(refused.value)
    assert message.startswith(f"platform:{section}.{field}: unknown field; ")
    assert "PLANTED" not in message


# What the Pulumi CLI hands the program for each plain scalar: gopkg.in/yaml.v3's resolution, then
# Go's JSON (sdk/go/common/resource/config/object.go). YAML 1.1 (PyYAML's default) would read
# `on` as true and `30:43` as 1843: the gate would check another plan than the one deployed.
CLI_READS = [
    ("on", "on"),
    ("off", "off"),
    ("yes", "yes"),
    ("y", "y"),
    ("true", "true"),
    ("False", "false"),
    ("30:43", "30:43"),
    ("1:2:3", "1:2:3"),
    ("0o17", "15"),
    ("017", "15"),
    ("018", "18"),
    ("0x1F", "31"),
    ("-0x1F", "-31"),
    ("0b101", "5"),
    ("1_000", "1000"),
    ("+17", "17"),
    ("2.0", "2"),
    ("1.5", "1.5"),
    ("1e3", "1000"),
    (".5", "0.5"),
    ("~", ""),
    ("null", ""),
    ("inf", "inf"),
    ("_1", "_1"),
    ("1" + "0" * 30, "1e+30"),  # beyond uint64: Go's ParseFloat reads it, its JSON writes an exponent
]


@pytest.mark.parametrize(("written", "seen"), CLI_READS, ids=[w[:12] for w, _ in CLI_READS])
def test_a_top_level_scalar_reads_as_the_cli_reads_it(tmp_path, written, seen):
    config = read(stack_file(tmp_path, "", base=f"config:\n  platform:value: {written}\n")).config
    assert config["platform:value"] == seen


def test_nested_values_reach_the_program_as_the_clis_json_gives_them(tmp_path):
    text = "config:\n  platform:host: {flag: on, count: 2.0, octal: 017, name: 30:43, none: null, yes: no}\n"
    config = read(stack_file(tmp_path, "", base=text)).config
    assert json.loads(config["platform:host"]) == {
        "flag": "on",
        "count": 2,
        "octal": 15,
        "name": "30:43",
        "none": None,
        "yes": "no",
    }


def test_a_number_beyond_every_range_stays_text_as_yaml_v3_keeps_it(tmp_path):
    text = "config:\n  platform:host: {memoryMib: 1" + "0" * 5000 + "}\n"
    (value,) = json.loads(read(stack_file(tmp_path, "", base=text)).config["platform:host"]).values()
    assert value == "1" + "0" * 5000


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("2024-01-02", "holds a date, which the Pulumi CLI hands the program as text such as '2024-01-02 00:00:00"),
        (".inf", "holds .inf or .nan, which the Pulumi CLI refuses"),
        ("{a: .nan}", "holds .inf or .nan"),
    ],
)
def test_what_the_cli_would_turn_into_other_text_or_refuse_is_one_line(tmp_path, written, fragment):
    with pytest.raises(StackFileError, match=re.escape(fragment)):
        read(stack_file(tmp_path, "", base=f"config:\n  platform:value: {written}\n"))


def test_an_on_in_a_plan_is_the_string_the_cli_reads_not_a_boolean():
    """`enabled: on` is the string "on" to the CLI, so the plan refuses it as the real run would."""
    values = {"platform:monitoring": json.dumps({"enabled": "on"})}
    config = {**read_stack(ROOT, "alibaba").config, **values}
    with pytest.raises(PlanError, match=r"platform:monitoring\.enabled: Input should be a valid boolean"):
        load_plan(config, read_stack(ROOT, "alibaba").secret_keys)


def test_a_merge_key_is_one_line_naming_it(tmp_path):
    """PyYAML's own error for '<<' names a constructor tag; the line says what to do instead."""
    path = stack_file(tmp_path, "  platform:backups:\n    <<: {keepDaily: 3}\n")
    line = path.read_text().splitlines().index("    <<: {keepDaily: 3}") + 1
    with pytest.raises(StackFileError) as refused:
        read(path)
    assert str(refused.value) == (
        f"{path.name}: line {line}: the merge key '<<' is not allowed in a stack file; write the keys out, as a "
        "reviewer reads them"
    )
