"""``preflight --from``: the engine's steps from an earlier state to this program, and their hazards."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

import program
from components.provisioning import render
from plan import DEFAULT_DATABASES
from policies.facts import ALIBABA_INSTANCE, ALIBABA_RULE, COMMAND, DATABASES
from preflight import diff
from preflight.engine import Registration, StackRun
from tests.stacks import ROOT, evaluate, exactly, preflight_cli

SIGNATURES = diff.script_signatures(diff.SCRIPTS)


def without_redis() -> list[dict[str, Any]]:
    return [dict(db) for db in DEFAULT_DATABASES if db["name"] != "production-redis"]


# ---------------------------------------------------------------------------------------
# The real program
# ---------------------------------------------------------------------------------------


def test_an_unchanged_stack_is_the_same_everywhere_and_runs_nothing(alibaba):
    found = diff.steps(alibaba, evaluate("alibaba"))
    assert {s.op for s in found.steps} == {"same"}
    assert len(found.steps) == len(alibaba.resources)
    assert [s for s in found.steps if s.runs] == []
    assert found.hazards == ()


def test_one_databases_memory_updates_only_its_own_command(alibaba):
    databases = [dict(db) for db in DEFAULT_DATABASES]
    databases[0]["memoryMib"] = 256  # production-mysql
    found = diff.steps(alibaba, evaluate("alibaba", databases=databases))
    changed = {s.name: s for s in found.changes()}
    assert {s.op for s in changed.values()} == {"update"}
    custom = [name for name, s in changed.items() if s.new is not None and s.new.custom]
    assert custom == ["alibaba-db-production-mysql"]
    assert all(s.runs == () for name, s in changed.items() if name not in custom)  # components: state only
    mysql = changed["alibaba-db-production-mysql"]
    assert [r.phase for r in mysql.runs] == ["update"]
    assert mysql.new is not None
    assert mysql.runs[0].command == mysql.new.inputs["update"]
    assert diff.summary(mysql, SIGNATURES) == ["#1 update: db_container.sh (changed: UNIT_CONTENT)"]
    assert found.hazards == ()
    comment = diff.markdown([dataclasses.replace(found, source="origin/main", scripts=SIGNATURES)])
    assert comment.splitlines()[0] == "### `alibaba`: what `pulumi up` would do, from `origin/main` (no hazards)"
    assert (
        "| update | `alibaba-db-production-mysql` (command:remote:Command) | #1 update: db_container.sh "
        "(changed: UNIT_CONTENT) |" in comment
    )
    assert "Components whose props changed (nothing runs):" in comment


def test_a_retired_database_is_retired_and_its_command_leaves_without_running(alibaba):
    new = evaluate(
        "alibaba", databases=without_redis(), retired={"databases": [{"name": "production-redis", "purge": False}]}
    )
    found = diff.steps(alibaba, new)
    retire = found.by_name("alibaba-db-retire-production-redis")
    assert retire.op == "retire"
    assert [(r.phase, diff.scripts_in(r.command, SIGNATURES)) for r in retire.runs] == [("create", ["db_retire.sh"])]
    command = found.by_name("alibaba-db-production-redis")
    assert (command.op, command.runs, command.notes) == ("delete", (), ("retained: nothing runs",))
    assert found.hazards == ()


def test_a_database_dropped_from_the_plan_without_retiring_it_is_a_hazard(alibaba):
    found = diff.steps(alibaba, evaluate("alibaba", databases=without_redis()))
    assert found.by_name("alibaba-db-production-redis").op == "delete"
    assert found.hazards == (
        "production-redis (database:redis) left the plan but is not under platform:retired: it keeps running on "
        "the host unmanaged; list it under platform:retired.databases",
    )


def test_renaming_the_provisioning_component_with_an_alias_deletes_nothing(alibaba, monkeypatch):
    # The state as the component's former name left it: every URN under alibaba-databases.
    def former(urn: str) -> str:
        return urn.replace("::alibaba-db", "::alibaba-databases")

    old = StackRun(
        alibaba.project,
        alibaba.stack,
        [
            _with(r, urn=former(r.urn), parent=former(r.parent), name=r.name.replace("alibaba-db", "alibaba-databases"))
            for r in alibaba.resources
        ],
        {},
    )
    monkeypatch.setitem(program.FORMER_NAMES, "alibaba-db", ("alibaba-databases",))
    found = diff.steps(old, evaluate("alibaba"))
    assert {s.op for s in found.steps} == {"same"}
    assert (
        "renamed: was alibaba-databases-production-mysql (matched by alias)"
        in found.by_name("alibaba-db-production-mysql").notes
    )


# ---------------------------------------------------------------------------------------
# The engine's rules, over small synthetic runs
# ---------------------------------------------------------------------------------------


def command(name: str, create: str = "echo create", **options: Any) -> Registration:
    inputs: dict[str, Any] = {"create": create, "update": create}
    for key in ("delete", "triggers"):
        if key in options:
            inputs[key] = options.pop(key)
    return registration(name, COMMAND, inputs, replace_on_changes=["triggers[*]"], **options)


def registration(name: str, type_: str, inputs: dict[str, Any], **options: Any) -> Registration:
    fields: dict[str, Any] = {
        "type": type_,
        "name": name,
        "urn": f"urn:pulumi:test::platform::{type_}::{name}",
        "custom": True,
        "parent": "",
        "inputs": inputs,
        "protect": False,
        "retain_on_delete": False,
        "import_id": "",
        "ignore_changes": [],
        "dependencies": [],
        "property_dependencies": {},
        "additional_secret_outputs": [],
    }
    return Registration(**{**fields, **options})


def stack(*resources: Registration) -> StackRun:
    return StackRun("platform", "test", list(resources), {})


def _with(resource: Registration, **changes: Any) -> Registration:
    return Registration(**{**resource.__dict__, **changes})


def runs(step: diff.Step) -> list[tuple[int, str, str]]:
    return [(r.order, r.phase, r.command) for r in step.runs]


def test_a_changed_trigger_replaces_creating_the_new_then_running_the_old_delete():
    old = command("app", "install v1", delete="remove v1", triggers=["a"])
    new = command("app", "install v2", delete="remove v2", triggers=["b"])
    (step,) = diff.steps(stack(old), stack(new)).steps
    assert step.op == "replace"
    assert runs(step) == [(1, "create-replacement", "install v2"), (2, "delete-replaced", "remove v1")]


def test_a_changed_script_without_triggers_is_an_update_running_the_update():
    (step,) = diff.steps(stack(command("app", "install v1")), stack(command("app", "install v2"))).steps
    assert (step.op, runs(step)) == ("update", [(1, "update", "install v2")])


def test_dropping_every_trigger_still_replaces():
    # pulumi-command's provider marks triggers replace-on-change in its schema: the key going
    # away is a replace too, not only a changed element (which the SDK's triggers[*] covers).
    old = command("app", delete="remove", triggers=["a"])
    (step,) = diff.steps(stack(old), stack(command("app"))).steps
    assert step.op == "replace"


def test_delete_before_replace_runs_the_old_delete_first():
    old = command("app", "install v1", delete="remove v1", triggers=["a"])
    new = command("app", "install v2", delete="remove v2", triggers=["b"], delete_before_replace=True)
    (step,) = diff.steps(stack(old), stack(new)).steps
    assert runs(step) == [(1, "delete-replaced", "remove v1"), (2, "create-replacement", "install v2")]


def test_a_retained_command_runs_no_delete_when_replaced_or_removed():
    old = command("app", delete="remove", triggers=["a"], retain_on_delete=True)
    (replaced,) = diff.steps(stack(old), stack(command("app", triggers=["b"]))).steps
    assert [r.phase for r in replaced.runs] == ["create-replacement"]
    (deleted,) = diff.steps(stack(old), stack()).steps
    assert (deleted.op, deleted.runs, deleted.notes) == ("delete", (), ("retained: nothing runs",))


def test_deletes_come_last_in_reverse_registration_order_with_the_replaced():
    old = stack(
        command("a", delete="remove a", triggers=["1"]),
        command("b", delete="remove b"),
        command("c", delete="remove c"),
    )
    new = stack(command("a", triggers=["2"]), command("d"))
    found = diff.steps(old, new)
    assert [(s.name, s.op) for s in found.steps] == [
        ("a", "replace"),
        ("d", "create"),
        ("c", "delete"),
        ("b", "delete"),
    ]
    sequence = sorted((r.order, s.name, r.phase) for s in found.steps for r in s.runs)
    assert sequence == [
        (1, "a", "create-replacement"),
        (2, "d", "create"),
        (3, "c", "delete"),
        (4, "b", "delete"),
        (5, "a", "delete-replaced"),
    ]


def test_a_stopping_delete_is_a_hazard():
    old = command("db", delete="systemctl stop db.service\nrm -rf /var/lib/db", triggers=["1"])
    found = diff.steps(stack(old), stack(command("db", triggers=["2"])))
    assert found.hazards == (
        "replace of db (command:remote:Command) runs its old delete, which stops or removes a workload "
        "(line 1: systemctl stop db.service)",
    )


def test_removing_a_protected_resource_is_a_hazard():
    component = registration("db", DATABASES, {}, custom=False, protect=True)
    found = diff.steps(stack(component), stack())
    assert found.by_name("db").op == "delete"
    assert found.hazards == (
        "delete of db (platform:provisioning:Databases): it is protected, the engine refuses to delete it and "
        "`pulumi up` fails",
    )


def test_replacing_or_deleting_an_instance_is_a_hazard():
    instance = registration("host", ALIBABA_INSTANCE, {"imageId": "a"}, replace_on_changes=["imageId"])
    replaced = diff.steps(stack(instance), stack(_with(instance, inputs={"imageId": "b"})))
    assert replaced.by_name("host").op == "replace"
    assert replaced.hazards == ("replace of host (alicloud:ecs/instance:Instance): it holds data",)
    assert diff.steps(stack(instance), stack()).hazards == (
        "delete of host (alicloud:ecs/instance:Instance): it holds data",
    )


def test_a_field_the_provider_updates_in_place_is_an_update():
    rule = registration("rule", ALIBABA_RULE, {"description": "a"})
    (step,) = diff.steps(stack(rule), stack(_with(rule, inputs={"description": "b"}))).steps
    assert step.op == "update"
    assert "updated in place (terraform-provider-alicloud v1.289.0)" in step.notes


def test_a_resource_type_the_table_does_not_know_is_an_update_the_provider_decides():
    disk = registration("disk", "alicloud:ecs/ecsDisk:EcsDisk", {"size": 40})
    (step,) = diff.steps(stack(disk), stack(_with(disk, inputs={"size": 50}))).steps
    assert step.op == "update"
    assert "the provider decides: it may replace on a field it forces" in step.notes


def test_ignored_changes_do_not_count():
    instance = registration("host", ALIBABA_INSTANCE, {"imageId": "a", "tags": {"x": "1", "y": "1"}})
    changed = _with(instance, inputs={"imageId": "b", "tags": {"x": "2", "y": "1"}})
    assert diff.steps(stack(instance), stack(_with(changed, ignore_changes=["*"]))).steps[0].op == "same"
    ignoring = _with(changed, ignore_changes=["imageId", "tags.x"])
    assert diff.steps(stack(instance), stack(ignoring)).steps[0].op == "same"
    (step,) = diff.steps(stack(instance), stack(_with(changed, ignore_changes=["imageId"]))).steps
    assert (step.op, step.changed) == ("update", ("tags",))


def test_secrets_compare_by_value_and_never_show():
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "hunter2"}
    old = command("db")
    new = _with(old, inputs={**old.inputs, "stdin": secret})
    assert diff.steps(stack(new), stack(new)).steps[0].op == "same"
    found = diff.steps(stack(old), stack(new))
    assert found.steps[0].op == "update"
    assert "hunter2" not in json.dumps(diff.as_json(found))


def test_an_alias_matches_the_old_urn():
    old = command("old-name")
    new = _with(command("new-name"), aliases=[old.urn])
    (step,) = diff.steps(stack(old), stack(new)).steps
    assert (step.op, step.notes) == ("same", ("renamed: was old-name (matched by alias)",))


def test_changed_parameters_names_only_what_changed():
    old = "bash -c " + repr_sh(render([], {"A": 1, "B": "x y", "C": 3}) + "echo\n")
    new = "bash -c " + repr_sh(render([], {"A": 1, "B": "x z", "D": 4}) + "echo\n")
    assert diff.changed_parameters(old, new) == ["B", "C", "D"]


def repr_sh(text: str) -> str:
    return shlex.quote(text)


# ---------------------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------------------


preflight = partial(preflight_cli, timeout=300)  # --from a revision evaluates two programs


def project_copy(tmp_path: Path) -> Path:
    """The program and its stack files, outside any git repository."""
    root = tmp_path / "project"
    root.mkdir()
    for name in (
        "Pulumi.yaml",
        "Pulumi.alibaba.yaml",
        "Pulumi.tencent.yaml",
        "__main__.py",
        "program.py",
        "plan_values.py",
    ):
        shutil.copy(ROOT / name, root / name)
    for package in ("plan", "components", "policies"):  # the plan reads its facts from the pack's facts.py
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    return root


def with_config(path: Path, **platform: Any) -> None:
    """The stack file with these ``platform:*`` keys set (a list of workloads is the whole list: ``exactly``)."""
    document = yaml.safe_load(path.read_text())
    platform = exactly(document["config"].get("platform:cloud"), platform)
    plain = json.loads(json.dumps(platform))  # the seeds' enums as the strings YAML holds
    document["config"].update({f"platform:{k}": v for k, v in plain.items()})
    path.write_text(yaml.safe_dump(document))


NO_GIT_ABOVE = "GIT_CEILING_DIRECTORIES"


def test_from_a_stack_file_prints_the_steps_and_exits_1_on_a_hazard(tmp_path):
    root = project_copy(tmp_path)
    with_config(root / "Pulumi.alibaba.yaml", databases=without_redis())
    result = preflight("alibaba", "--from", str(ROOT / "Pulumi.alibaba.yaml"), "--format", "json", root=root)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"stack", "from", "steps", "hazards", "notes"}
    assert (document["stack"], document["from"]) == ("alibaba", str(ROOT / "Pulumi.alibaba.yaml"))
    ops = {s["name"]: s["op"] for s in document["steps"]}
    assert ops["alibaba-db-production-redis"] == "delete"
    assert ops["alibaba-db-production-mysql"] == "same"
    assert all(set(s) == {"name", "type", "op", "runs", "notes"} for s in document["steps"])
    assert [h.split(" left the plan")[0] for h in document["hazards"]] == ["production-redis (database:redis)"]
    assert "PLACEHOLDER-SECRET" not in result.stdout


def test_from_a_git_revision_evaluates_that_revisions_code_and_stack_file(tmp_path):
    root = project_copy(tmp_path)
    git = ["git", "-C", str(root), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "--no-gpg-sign", "-m", "base"], check=True)
    databases = [dict(db) for db in DEFAULT_DATABASES]
    databases[1]["memoryMib"] = 160  # production-postgres
    with_config(root / "Pulumi.alibaba.yaml", databases=databases)
    shutil.copy(ROOT / "Pulumi.tencent.yaml", root / "Pulumi.staging.yaml")  # not in the revision
    result = preflight("alibaba", "staging", "--from", "HEAD", "--format", "json", root=root)
    assert result.returncode == 0, result.stderr
    alibaba, staging = json.loads(result.stdout)
    changed = {s["name"]: s for s in alibaba["steps"] if s["op"] != "same"}
    commands = {name: s for name, s in changed.items() if s["type"] == COMMAND}
    assert list(commands) == ["alibaba-db-production-postgres"]
    assert [r["phase"] for r in commands["alibaba-db-production-postgres"]["runs"]] == ["update"]
    assert alibaba["hazards"] == []
    assert {s["op"] for s in staging["steps"]} == {"create"}
    assert staging["notes"] == ["HEAD has no Pulumi.staging.yaml: the old state is empty, every resource is a create"]


def _other_project_file(tmp_path: Path) -> Path:
    path = tmp_path / "Pulumi.other.yaml"
    path.write_text("config:\n  shop:cloud: alibaba\n")
    return path


def _other_project_revision(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "Pulumi.yaml").write_text("name: shop\n")
    git = ["git", "-C", str(root), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "--no-gpg-sign", "-m", "shop"], check=True)
    shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copy(ROOT / "Pulumi.alibaba.yaml", root / "Pulumi.alibaba.yaml")
    return root


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-such-revision", "error: --from no-such-revision-xyz: no such file or git revision"),
        ("not-in-git", "is not inside a git repository to read it as a revision"),
        (
            "other-project-file",
            "not a stack file of project 'platform': it has no platform:cloud; its keys are under shop:",
        ),
        ("other-project-revision", "error: --from HEAD: revision HEAD is project 'shop' (Pulumi.yaml), not 'platform'"),
        ("sarif", "error: --from prints text, json or markdown, not sarif"),
        ("which-stack", "a stack file holds one stack's config; name the stack it is for"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, case, message):
    env = {NO_GIT_ABOVE: str(tmp_path)}
    args: tuple[str, ...]
    root = ROOT
    if case == "no-such-revision":
        args = ("alibaba", "--from", "no-such-revision-xyz")
    elif case == "not-in-git":
        root = tmp_path / "plain"
        root.mkdir()
        shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
        shutil.copy(ROOT / "Pulumi.alibaba.yaml", root / "Pulumi.alibaba.yaml")
        args = ("alibaba", "--from", "HEAD")
    elif case == "other-project-file":
        args = ("alibaba", "--from", str(_other_project_file(tmp_path)))
    elif case == "other-project-revision":
        root = _other_project_revision(tmp_path)
        args = ("alibaba", "--from", "HEAD")
    elif case == "sarif":
        args = ("alibaba", "--from", "HEAD", "--format", "sarif")
    else:
        args = ("--from", str(_other_project_file(tmp_path)))
    result = preflight(*args, root=root, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# What a host runs today: the last commit before the data plane (issue 9).
BEFORE_DATA_PLANE = "1f795be"
# The engines the data plane reconfigures, each with a new unit (one restart): the replication
# sources serve TLS, Elasticsearch gets a snapshot path, Weaviate its backup module.
RECONFIGURED = {"mysql", "postgres", "redis", "elasticsearch", "weaviate"}


def _command_rows(text: str) -> dict[str, str]:
    """Each command row of the text table (its wrapped lines joined), by name (a name the table
    folded onto more lines joined back)."""
    rows: list[tuple[list[str], list[str]]] = []
    current = None
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) < 4:
            current = None
        elif cells[2] == COMMAND:
            current = ([cells[3]], [line])
            rows.append(current)
        elif current is not None and not cells[1]:
            current[0].append(cells[3])
            current[1].append(line)
        else:
            current = None
    return {"".join(name): " ".join(lines) for name, lines in rows}


def test_the_first_up_after_the_data_plane_restarts_only_the_engines_it_reconfigures():
    """Upgrading from the previous version replaces and deletes nothing: five engines get a new
    unit, Redis's ACL gains the replication and exporter users (its stdin), the rest is new commands."""
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{BEFORE_DATA_PLANE}^{{commit}}"], check=False)
    if known.returncode != 0:
        pytest.skip(f"commit {BEFORE_DATA_PLANE} is not in this clone's history (a shallow checkout)")
    result = preflight("alibaba", "tencent", "--from", BEFORE_DATA_PLANE, env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("no hazards") == 2
    assert "│ replace │" not in result.stdout
    assert "│ delete │" not in result.stdout
    rows = _command_rows(result.stdout)
    assert {name for name, row in rows.items() if "UNIT_CONTENT" in row and name.startswith("alibaba-")} == {
        f"alibaba-db-production-{kind}" for kind in RECONFIGURED
    }
    # Redis's auth file gains the replication user and the exporter's: its stdin.
    assert {name for name, row in rows.items() if "stdin" in row} == {"alibaba-db-production-redis"}
    assert {name for name, row in rows.items() if "│ create │" in row} == {
        name
        for name in rows
        if name.startswith(("alibaba-db-backup-", "alibaba-db-repl-", "alibaba-db-exporter-", "alibaba-db-clients-"))
    } | {
        "alibaba-db-tls",
        "alibaba-db-restore-drill",
        "tencent-svc-proxy",
        "alibaba-db-monitoring",
        "tencent-svc-monitoring",
        "alibaba-db-certificate-check",
        "tencent-svc-certificate-check",
        "alibaba-db-heartbeat",
        "tencent-svc-heartbeat",
        "alibaba-db-metrics-login",
        # Replication on by default: the Tencent engines' replica steps and their health check.
        *(f"tencent-svc-replica-{name}" for name in ("mysql", "postgres", "redis")),
        "tencent-svc-replication-health",
        # And each side's row counts, for the consistency alert.
        "alibaba-db-replication-counts",
        "tencent-svc-replication-counts",
    }
