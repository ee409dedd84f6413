"""The offline preview CLI: what a user runs with no cloud account."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pulumi import RunError

from policies.facts import STACK
from preflight.engine import CloudMocks, RecordingMonitor, run_stack
from tests.stacks import ROOT, config_for, preflight_cli

preflight = preflight_cli


@pytest.fixture(scope="module")
def both_stacks_json():
    result = preflight("alibaba", "tencent", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_json_has_stack_resources_hosts_and_firewall(both_stacks_json):
    alibaba, tencent = both_stacks_json
    assert (alibaba["stack"], tencent["stack"]) == ("alibaba", "tencent")
    for preview in both_stacks_json:
        assert {"stack", "resources", "hosts", "firewall"} <= set(preview)
        assert all({"type", "name", "inputs"} <= set(r) for r in preview["resources"])
    (host,) = alibaba["hosts"]
    assert host["memory"] == {"limitMib": 1843, "usedMib": 1580, "osReserveMib": 256, "freeMib": 7}
    (host,) = tencent["hosts"]
    assert host["memory"] == {"limitMib": 3686, "usedMib": 3420, "osReserveMib": 256, "freeMib": 10}


def test_json_shows_secrets_as_secret_and_names_the_placeholders(both_stacks_json):
    alibaba = both_stacks_json[0]
    text = json.dumps(alibaba)
    assert "PLACEHOLDER-SECRET" not in text
    assert alibaba["placeholderSecrets"] == ["platform:dbPasswords", "platform:sshPrivateKey"]
    mysql = next(r for r in alibaba["resources"] if r["name"] == "alibaba-db-production-mysql")
    assert mysql["inputs"]["stdin"] == "[secret]"


def test_text_preview_prints_tree_plan_and_rules():
    result = preflight("tencent", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "tencent-svc-looma-crm (command:remote:Command)" in result.stdout
    assert "memory used 3420 + OS reserve 256 / limit 3686 /" in result.stdout
    assert "firewall rules (as registered)" in result.stdout
    assert "PLACEHOLDER-SECRET" not in result.stdout


def _stack_with(tmp_path: Path, stack: str, text: str) -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(text)
    return tmp_path


def test_any_stack_file_present_can_be_previewed(tmp_path):
    text = (ROOT / "Pulumi.alibaba.yaml").read_text().replace("memoryMib: 1843", "memoryMib: 3700")
    root = _stack_with(tmp_path, "bigger", text)
    result = preflight("bigger", "--format", "json", root=root)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["hosts"][0]["memory"]["limitMib"] == 3700


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("memoryMib: 1843", "memoryMib: -5"),
            "error: stack broken: platform:host.memoryMib: Input should be greater than 0",
        ),
        (("peerAddress: 101.33.251.158", "peerAddress: 101.33.251.0/24"), "platform:firewall.peerAddress"),
        (
            ("platform:cloud: alibaba", "platform:cloud: alibaba\n  platform:adminPassword: hunter2"),
            "platform:adminPassword is stored in plain text",
        ),
        (("config:", "config: ["), "Pulumi.broken.yaml: not valid YAML"),
    ],
)
def test_bad_config_exits_non_zero_with_one_line_and_no_traceback(tmp_path, edit, message):
    text = (ROOT / "Pulumi.alibaba.yaml").read_text().replace(*edit)
    result = preflight("broken", root=_stack_with(tmp_path, "broken", text))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_stack_names_the_stacks_there_are():
    result = preflight("staging")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: stack staging: stack 'staging': no Pulumi.staging.yaml here; stacks: alibaba, tencent"
    )


def test_bad_config_registers_no_resource():
    config = config_for("alibaba")
    monitor = RecordingMonitor(CloudMocks())
    bad = {**config.config, "platform:host": config.config["platform:host"].replace("1843", "0")}
    with pytest.raises(RunError, match=r"platform:host\.memoryMib"):
        run_stack(config.project, "alibaba", bad, set(config.secret_keys), monitor=monitor)
    assert {r.type for r in monitor.registrations} == {STACK}  # the stack itself, nothing else
