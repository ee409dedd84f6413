"""The CI a user gets: pinned actions, least permissions, the gate without secrets, guarded deploys.

`make lint` validates the workflows against GitHub's schema (check-jsonschema) and audits them
(zizmor); these tests pin down what this project needs of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.policies.shapes import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True)  # YAML 1.1 reads the key `on` as true
    return document


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version_named(path: Path):
    uses = re.findall(r"uses:\s*(\S+)(.*)", path.read_text())
    assert uses
    for target, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", target), target
        assert re.search(r"# v\d+\.\d+\.\d+", comment), f"{target}: name the version the SHA is"


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy.yml"])
def test_workflows_grant_nothing_by_default(name):
    document = load(name)
    assert document["permissions"] == {}
    assert all("permissions" in job for job in document["jobs"].values())


def test_the_pull_request_gate_runs_without_secrets_and_its_comment_job_runs_no_code():
    document = load("pull-request.yml")
    assert set(document["on"]) == {"pull_request"}  # never pull_request_target: forks get no secrets
    gate, comment = document["jobs"]["gate"], document["jobs"]["comment"]
    assert "secrets." not in yaml.safe_dump(gate)
    assert gate["permissions"] == {"contents": "read"}
    assert any("python -m preflight --format markdown" in step.get("run", "") for step in gate["steps"])
    assert any("bash .ci/run" in step.get("run", "") for step in gate["steps"])
    assert comment["permissions"] == {"pull-requests": "write"}
    assert not any("uses" in step for step in comment["steps"])  # no checkout: the PR's code never runs there


def test_previews_run_per_stack_with_the_policy_pack_where_secrets_exist():
    preview = load("pull-request.yml")["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["alibaba", "tencent"]
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    (pulumi,) = [step for step in preview["steps"] if step.get("uses", "").startswith("pulumi/actions@")]
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["policyPacks"] == "policies"
    assert pulumi["with"]["comment-on-pr"] is True


def test_deploys_run_per_stack_behind_its_environment_one_at_a_time():
    document = load("deploy.yml")
    assert document["on"] == {"push": {"branches": ["main"]}}
    up = document["jobs"]["up"]
    assert up["needs"] == "gate"
    assert up["strategy"]["matrix"]["stack"] == ["alibaba", "tencent"]
    assert up["environment"] == "${{ matrix.stack }}"
    assert up["concurrency"] == {"group": "pulumi-up-${{ matrix.stack }}", "cancel-in-progress": False}
    (pulumi,) = [step for step in up["steps"] if step.get("uses", "").startswith("pulumi/actions@")]
    assert (pulumi["with"]["command"], pulumi["with"]["policyPacks"]) == ("up", "policies")
