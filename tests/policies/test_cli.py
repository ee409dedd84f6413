"""``python -m preflight`` with the pack: verdicts by level, exit status, JSON, markdown, SARIF."""

from __future__ import annotations

import copy
import json

import pytest

from preflight.__main__ import main
from preflight.engine import StackRun, run_stack
from preflight.policy_report import COMMENT_MARKER
from tests.policies.shapes import ROOT

FIXTURES = ROOT / "tests" / "policies" / "fixtures"


_RUNS: dict[str, StackRun] = {}


def _remembered(project, stack, config, secret_keys, monitor=None):
    """The real run_stack, once per stack and config: these tests are about what is printed."""
    key = json.dumps([project, stack, config, sorted(secret_keys)], sort_keys=True)
    if key not in _RUNS:
        _RUNS[key] = run_stack(project, stack, config, secret_keys, monitor=monitor)
    return copy.deepcopy(_RUNS[key])


@pytest.fixture
def cli(capsys, monkeypatch):
    monkeypatch.setattr("preflight.__main__.run_stack", _remembered)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_make_preview_passes_the_shipped_stacks_with_their_headroom_warnings(cli):
    code, out, _ = cli()
    assert code == 0
    assert out.count("policy pack platform-guardrails 1.0.0: 0 mandatory, 1 advisory") == 2
    assert "alibaba-host (alibaba): usable 1843 MiB; workloads 1580 MiB + OS reserve 256 MiB = 1836 MiB -> fits" in out
    assert "tencent-host (tencent): usable 3686 MiB; workloads 3420 MiB + OS reserve 256 MiB = 3676 MiB -> fits" in out
    assert out.count("[memory-headroom] tencent-host (tencent): used 3420 MiB") == 1


def test_a_mandatory_violation_fails_the_gate_and_shows_the_shortfall(cli):
    code, out, _ = cli("services-on-alibaba", "--root", str(FIXTURES))
    assert code == 1
    assert "-> refused: short by 1893 MiB" in out
    assert "mandatory violations\n  [memory-budget] services-on-alibaba-host (alibaba): used 3480 MiB" in out


def test_json_adds_violations_and_capacity(cli):
    code, out, _ = cli("services-on-alibaba", "--root", str(FIXTURES), "--format", "json")
    document = json.loads(out)
    assert code == 1
    (violation,) = document["violations"]
    assert set(violation) == {"policy", "level", "urn", "message"}
    assert (violation["policy"], violation["level"]) == ("memory-budget", "mandatory")
    assert violation["urn"] == (
        "urn:pulumi:services-on-alibaba::platform::pulumi:pulumi:Stack$platform:compute:Host::services-on-alibaba-host"
    )
    (capacity,) = document["capacity"]
    assert (capacity["fits"], capacity["freeMib"], capacity["osReserveMib"]) == (False, -1893, 256)


def test_markdown_is_a_pull_request_comment_ci_can_find_again(cli):
    code, out, _ = cli("--format", "markdown")
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == [COMMENT_MARKER, "## Policy gate: ✅ passed"]
    assert "| `alibaba` | 104 | 0 | 1 |" in lines
    assert "| `tencent` | 35 | 0 | 1 |" in lines
    verdict = "✅ fits: buffer 10 MiB (0.3% of usable, below the 10% headroom)"
    assert f"| tencent-host | tencent | 3686 | 3420 | 256 | {verdict} |" in lines
    code, out, _ = cli("services-on-alibaba", "--root", str(FIXTURES), "--format", "markdown")
    assert (code, out.splitlines()[1]) == (1, "## Policy gate: ❌ 1 mandatory violation")
    assert "❌ refused: short by 1893 MiB" in out


def test_sarif_is_2_1_0_with_a_rule_per_policy_and_a_result_per_violation(cli):
    code, out, _ = cli("services-on-alibaba", "--root", str(FIXTURES), "--format", "sarif")
    document = json.loads(out)
    assert (code, document["version"]) == (1, "2.1.0")
    (run,) = document["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert len(rules) == 16
    assert rules[0]["defaultConfiguration"] == {"level": "error"}
    assert rules[1]["defaultConfiguration"] == {"level": "warning"}
    (result,) = run["results"]
    assert (result["ruleId"], result["level"], rules[result["ruleIndex"]]["id"]) == (
        "memory-budget",
        "error",
        "memory-budget",
    )
    location = result["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "Pulumi.services-on-alibaba.yaml"
    assert location["logicalLocations"][0]["fullyQualifiedName"].endswith("::services-on-alibaba-host")


def test_a_policy_pack_config_file_is_honoured(cli, tmp_path):
    config = tmp_path / "policy-config.json"
    ranges = {
        "ai": {"first": 8100, "last": 8119},
        "shared": {"first": 8120, "last": 8139},
        "zervigo-future": {"first": 8200, "last": 8299},
        "looma-crm": {"first": 8750, "last": 8799},
    }
    config.write_text(json.dumps({"port-plan": {"families": ranges}, "memory-headroom": "disabled"}))
    code, out, _ = cli("tencent", "--policy-pack-config", str(config))
    assert code == 1
    assert "1 mandatory, 0 advisory" in out
    assert "[port-plan] tencent-host: service looma-crm: port 8700 is outside its family looma-crm's range" in out


def test_a_bad_policy_pack_config_stops_before_any_stack_with_one_line(cli, tmp_path):
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({"memory-budget": {"osReserveMib": "lots"}}))
    code, out, err = cli("--policy-pack-config", str(config))
    assert (code, out) == (2, "")
    assert err == "error: policy pack config: memory-budget: osReserveMib: 'lots' is not of type 'integer'\n"
