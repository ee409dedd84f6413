"""A green gate means a working `pulumi up`: the offline preview and `--from` predict the real run.

- `--from` knows what the providers replace (ForceNew) and which in-place changes stop the instance
  (preflight/providers.py), so a changed group id, peer, zone, CIDR, instance type or disk shows as
  the real engine would run it, with its hazard;
- the program refuses what the real engine refuses (two resources with one name) and a real run
  refuses the shipped EXAMPLE values, which the offline preview lists instead;
- a one-entry workload list patches the defaults, it never drops them;
- the same input prints the same bytes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi import RunError

from policies.facts import ALIBABA_RULE, COMMAND, COPY_TO_REMOTE, TENCENT_RULE_SET
from preflight import diff, providers
from preflight.engine import CloudMocks, DuplicateUrnError, RecordingMonitor, run_stack
from tests.stacks import CREATED_HOST, ROOT, SOURCE_STACK, as_deployed, config_for, evaluate, preflight_cli

RULE = ALIBABA_RULE
RULE_SET = TENCENT_RULE_SET


def created(stack: str, **host: Any) -> dict[str, Any]:
    """A created host's plan changes (no adopted group), with ``host`` fields changed."""
    return {"host": {**CREATED_HOST[stack], **host}, "firewall": {"securityGroupId": None}}


def custom_changes(found: diff.Diff) -> dict[str, str]:
    return {s.name: s.op for s in found.changes() if s.new is None or s.new.custom}


# ---------------------------------------------------------------------------------------
# --from and the providers
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["alibaba", "tencent"])
@pytest.mark.parametrize("mode", ["adopt", "create"])
def test_every_resource_type_the_program_registers_has_its_providers_rules(stack: str, mode: str):
    run = evaluate(stack, **(created(stack) if mode == "create" else {}))
    types = {r.type for r in run.resources if r.custom}
    assert types - set(providers.RULES) == set()


def test_a_changed_alibaba_group_id_replaces_every_rule():
    before = evaluate("alibaba")
    after = evaluate("alibaba", firewall={"securityGroupId": "sg-wz9other000000001"})
    ops = Counter(s.op for s in diff.steps(before, after).steps if s.type == RULE)
    assert ops == Counter({"replace": len(before.of_type(RULE))})
    step = next(s for s in diff.steps(before, after).steps if s.type == RULE)
    assert any(note.startswith("the provider replaces it on a change to securityGroupId (") for note in step.notes)


def test_a_changed_tencent_group_id_replaces_the_protected_rule_set_and_is_a_hazard():
    found = diff.steps(evaluate("tencent"), evaluate("tencent", firewall={"securityGroupId": "sg-zz999999"}))
    assert custom_changes(found) == {"tencent-fw-rules": "replace"}
    assert found.hazards == (
        f"replace of tencent-fw-rules ({RULE_SET}): it is protected, the engine refuses to replace it and "
        "`pulumi up` fails",
    )


def test_a_changed_peer_address_creates_and_deletes_the_alibaba_rules_that_name_it():
    found = diff.steps(evaluate("alibaba"), evaluate("alibaba", firewall={"peerAddress": "101.33.251.159"}))
    peer_rules = {s.name: s.op for s in found.changes() if s.type == RULE}
    assert set(peer_rules.values()) == {"create", "delete"}
    assert sum(op == "create" for op in peer_rules.values()) == sum(op == "delete" for op in peer_rules.values())
    assert all("101-33-251-159" in name for name, op in peer_rules.items() if op == "create")


def test_a_rule_whose_priority_changes_is_replaced_not_updated():
    from tests.preflight.test_diff import _with, registration, stack

    rule = registration("rule", RULE, {"priority": 1, "description": "a"})
    (step,) = diff.steps(stack(rule), stack(_with(rule, inputs={"priority": 2, "description": "a"}))).steps
    assert step.op == "replace"


@pytest.mark.parametrize(
    ("stack", "change", "replaced"),
    [
        ("alibaba", {"zone": "cn-shenzhen-b"}, {"alibaba-net-vswitch"}),
        ("tencent", {"zone": "ap-guangzhou-4"}, {"tencent-net-subnet"}),
        ("alibaba", {"network": {"vpcCidr": "10.20.0.0/16", "subnetCidr": "10.20.1.0/24"}}, {"alibaba-net-vswitch"}),
        ("tencent", {"network": {"vpcCidr": "10.20.0.0/16", "subnetCidr": "10.20.1.0/24"}},
         {"tencent-net-vpc", "tencent-net-subnet"}),
    ],
)  # fmt: skip
def test_a_changed_zone_or_cidr_replaces_the_network_under_the_running_instance(stack, change, replaced):
    network = change.pop("network", None)
    before = evaluate(stack, **created(stack))
    after = evaluate(stack, **created(stack, **change), **({"network": network} if network else {}))
    found = diff.steps(before, after)
    assert {name for name, op in custom_changes(found).items() if op == "replace"} == replaced
    assert len(found.hazards) == len(replaced)
    assert all("the instance lives in it" in hazard for hazard in found.hazards)
    assert custom_changes(found).get(f"{stack}-host-instance", "same") == "same"  # its zone and subnet are ignored


@pytest.mark.parametrize(
    ("stack", "instance_type", "effect"),
    [("alibaba", "ecs.g7.large", "stops the instance (StopInstance"), ("tencent", "S5.LARGE8", "force-stops")],
)
def test_a_new_instance_type_is_an_update_that_stops_the_host(stack, instance_type, effect):
    found = diff.steps(evaluate(stack, **created(stack)), evaluate(stack, **created(stack, instanceType=instance_type)))
    assert custom_changes(found) == {f"{stack}-host-instance": "update"}
    (hazard,) = found.hazards
    assert hazard.startswith(f"update of {stack}-host-instance (")
    assert f"instanceType {effect}" in hazard


@pytest.mark.parametrize(
    ("stack", "disk_gb", "hazard"),
    [
        ("alibaba", 80, None),  # resized online
        ("alibaba", 30, "systemDiskSize fails at apply"),
        ("tencent", 80, "systemDiskSize force-stops the instance"),
        ("tencent", 40, "systemDiskSize fails at apply"),
    ],
)
def test_a_new_system_disk_size_stops_or_fails_as_the_cloud_does(stack, disk_gb, hazard):
    found = diff.steps(evaluate(stack, **created(stack)), evaluate(stack, **created(stack, diskGb=disk_gb)))
    assert custom_changes(found) == {f"{stack}-host-instance": "update"}
    if hazard is None:
        assert found.hazards == ()
    else:
        (line,) = found.hazards
        assert hazard in line


def _git_project(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "project"
    shutil.copytree(
        ROOT,
        root,
        ignore=shutil.ignore_patterns(".git", ".venv", ".make", "tests", "__pycache__", ".*_cache", "artifacts"),
    )
    git = ["git", "-C", str(root), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], check=True, timeout=60)
    return root, git


def test_an_unchanged_stack_with_an_upload_from_a_git_revision_is_all_same(tmp_path: Path):
    """The upload's asset is the path as the plan writes it, compared by content as the engine does:
    a checkout in another directory (git archive's) is no change."""
    root, git = _git_project(tmp_path)
    (root / "artifacts").mkdir()
    (root / "artifacts/looma-crm-2.0.0.tar.gz").write_bytes(b"a release CI built\n")
    document = (root / "Pulumi.tencent.yaml").read_text()
    document = document.replace(
        "        artifact: https://releases.example.com/looma-crm/looma-crm-1.0.0.tar.gz  # EXAMPLE\n"
        '        sha256: "0000000000000000000000000000000000000000000000000000000000000000"  # EXAMPLE\n',
        "        upload: artifacts/looma-crm-2.0.0.tar.gz\n",
    ).replace(
        "      release:\n        version: 1.0.0\n        upload:",
        "      release:\n        version: 2.0.0\n        upload:",
    )
    assert "upload: artifacts/looma-crm-2.0.0.tar.gz" in document
    (root / "Pulumi.tencent.yaml").write_text(document)
    (root / ".gitignore").write_text("artifacts/\n")
    subprocess.run([*git, "add", "."], check=True, timeout=60)
    subprocess.run([*git, "commit", "-q", "--no-gpg-sign", "-m", "deployed"], check=True, timeout=60)
    # The copy's own program: an upload is relative to the program's directory, as under the CLI.
    result = subprocess.run(
        [sys.executable, "-m", "preflight", "tencent", "--from", "HEAD", "--format", "json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert "tencent-svc-looma-crm-upload" in {s["name"] for s in document["steps"]}
    assert {s["op"] for s in document["steps"]} == {"same"}
    assert document["hazards"] == []


# ---------------------------------------------------------------------------------------
# What the real engine refuses, and what a real run refuses
# ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_pulumi_runtime")
@pytest.mark.parametrize("name", ["proxy", "monitoring", "exporter-cache"])
def test_a_workload_named_like_a_platform_command_is_refused_at_the_plan_edge(tmp_path: Path, name: str):
    from tests.stacks import cache_database, stack_folder

    root = stack_folder(tmp_path, "alibaba", databases=[cache_database(name=name)])
    result = preflight_cli("alibaba", root=root)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: stack alibaba: platform:databases[{name}]: name '{name}' ")


@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_two_resources_with_one_name_fail_as_the_engine_fails(monkeypatch: pytest.MonkeyPatch):
    """The plan refuses the names it knows; the recorder refuses any other duplicate the way the
    engine does (Duplicate resource URN), so no future collision passes the gate."""
    import program

    original = program.main

    def twice(*, offline: bool = False) -> None:
        original(offline=offline)
        pulumi.ComponentResource("platform:test:Twin", "twin")
        pulumi.ComponentResource("platform:test:Twin", "twin")

    monkeypatch.setattr(program, "main", twice)
    config = config_for("alibaba")
    with pytest.raises(DuplicateUrnError, match=r"^Duplicate resource URN 'urn:pulumi:alibaba::platform::"):
        run_stack(
            config.project, "alibaba", config.config, set(config.secret_keys), monitor=RecordingMonitor(CloudMocks())
        )


@pytest.mark.usefixtures("fresh_pulumi_runtime")
@pytest.mark.parametrize(
    ("stack", "first"),
    [
        ("alibaba", "platform:host.instanceId: 'i-wz9example0000000001' is an example value; replace it with your own"),
        ("tencent", "platform:host.instanceId: 'ins-example1' is an example value; replace it with your own"),
    ],
)
def test_the_shipped_stack_run_as_the_cli_runs_it_stops_at_its_example_values_in_one_line(stack, first):
    config = config_for(stack)
    with pytest.raises(RunError) as refused:
        run_stack(config.project, stack, config.config, set(config.secret_keys), offline=False)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(first)
    assert "platform:firewall.adminCidrs[0]" in message  # the admin range nobody has, named too


@pytest.mark.usefixtures("fresh_pulumi_runtime")
@pytest.mark.parametrize("stack", ["alibaba", "tencent"])
def test_with_the_example_values_replaced_the_shipped_stack_runs_as_the_cli_runs_it(stack):
    references = None
    if stack == "tencent":  # the CLI reads the Alibaba stack's outputs from the backend: it deployed first
        source = config_for("alibaba", **as_deployed("alibaba"))
        deployed = run_stack(source.project, "alibaba", source.config, set(source.secret_keys), offline=False)
        references = {SOURCE_STACK: deployed.as_reference()}
    config = config_for(stack, **as_deployed(stack))
    run = run_stack(config.project, stack, config.config, set(config.secret_keys), offline=False, references=references)
    assert run.of_type(COMMAND)
    assert not run.of_type(COPY_TO_REMOTE)  # the releases are fetched by URL: nothing local


def test_the_offline_preview_lists_the_example_values_and_passes():
    result = preflight_cli("tencent", "--format", "json")
    assert result.returncode == 0, result.stderr
    keys = [entry["key"] for entry in json.loads(result.stdout)["toReplace"]]
    assert keys[:4] == [
        "platform:host.instanceId",
        "platform:host.hostKey",
        "platform:firewall.adminCidrs[0]",
        "platform:firewall.securityGroupId",
    ]
    assert "platform:services[zervigo].release.artifact" in keys


# ---------------------------------------------------------------------------------------
# Lists that patch
# ---------------------------------------------------------------------------------------


def test_a_one_entry_databases_list_raises_one_limit_and_keeps_the_other_five(tmp_path: Path):
    from tests.preflight.test_diff import project_copy

    root = project_copy(tmp_path)
    path = root / "Pulumi.alibaba.yaml"
    path.write_text(path.read_text() + "  platform:databases:\n    - name: production-mysql\n      memoryMib: 200\n")
    result = preflight_cli("alibaba", "--plan", root=root)
    assert result.returncode == 0, result.stderr
    import yaml

    databases = yaml.safe_load(result.stdout)["config"]["platform:databases"]
    assert [(d["name"], d["memoryMib"]) for d in databases] == [
        ("production-mysql", 200),
        ("production-postgres", 128),
        ("production-redis", 64),
        ("production-neo4j", 544),
        ("production-elasticsearch", 312),
        ("production-weaviate", 160),
    ]
    changed = preflight_cli("alibaba", "--from", str(ROOT / "Pulumi.alibaba.yaml"), "--format", "json", root=root)
    steps = {s["name"]: s["op"] for s in json.loads(changed.stdout)["steps"]}
    assert changed.returncode == 0, changed.stderr  # no hazard: nothing left the plan
    assert {name for name, op in steps.items() if op != "same"} >= {"alibaba-db-production-mysql"}
    assert "delete" not in steps.values()
    assert all(steps[f"alibaba-db-production-{kind}"] == "same" for kind in ("postgres", "redis", "neo4j"))


# ---------------------------------------------------------------------------------------
# The same input, the same bytes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["text", "json", "markdown", "sarif"])
def test_two_runs_print_the_same_bytes(output: str):
    runs = [
        preflight_cli("alibaba", "tencent", "--format", output, env={"PYTHONHASHSEED": seed, "COLUMNS": "100"})
        for seed in ("1", "2")
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stdout


@pytest.mark.parametrize("columns", [60, 100, 160])
def test_text_fits_the_terminal_and_never_splits_a_name(columns: int):
    """rich's own width (COLUMNS when there is no terminal): tables fit, or fall back to one block per
    row; every workload and rule description is printed whole on one line."""
    result = preflight_cli("alibaba", "tencent", env={"COLUMNS": str(columns)})
    assert result.returncode == 0, result.stderr
    table_lines = [line for line in result.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert all(len(line) <= columns for line in table_lines)
    for name in ("shared-service", "ai-service-1", "production-elasticsearch", "blackbox-exporter", "alertmanager"):
        assert any(name in line for line in result.stdout.splitlines()), name
