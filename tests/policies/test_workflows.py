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


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy.yml", "drift.yml"])
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


def matrix_stacks(job: dict) -> list[str]:
    return [leg["stack"] for leg in job["strategy"]["matrix"]["include"]]


def test_previews_run_per_stack_with_the_policy_pack_where_secrets_exist():
    preview = load("pull-request.yml")["jobs"]["preview"]
    assert matrix_stacks(preview) == ["alibaba", "tencent"]
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    (pulumi,) = [step for step in preview["steps"] if step.get("uses", "").startswith("pulumi/actions@")]
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["policyPacks"] == "policies"
    assert pulumi["with"]["comment-on-pr"] is True


# --- Deploys from the admins' network, alibaba before tencent, manual runs, drift, notifications ---

RUNNER = ["self-hosted", "${{ vars.PLATFORM_RUNNER_LABEL || 'platform-deploy' }}"]
STACKS = ("alibaba", "tencent")


def pulumi_step(job: dict) -> dict:
    """The step that runs a Pulumi command (a job may also install the CLI alone, with no ``with``)."""
    (step,) = [step for step in job["steps"] if step.get("uses", "").startswith("pulumi/actions@") and "with" in step]
    return step


def run_scripts(document: dict) -> list[str]:
    return [step["run"] for job in document["jobs"].values() for step in job.get("steps", []) if "run" in step]


def test_deploys_run_on_the_self_hosted_runner_and_nothing_else_does():
    deploy, drift = load("deploy.yml"), load("drift.yml")
    for job in (deploy["jobs"]["up-alibaba"], deploy["jobs"]["up-tencent"], drift["jobs"]["check"]):
        assert job["runs-on"] == RUNNER
    # The tests, the notification and the issue need no SSH: GitHub's runners.
    for job in (deploy["jobs"]["gate"], deploy["jobs"]["notify"], drift["jobs"]["report"]):
        assert job["runs-on"] == "ubuntu-24.04"
    # A pull request's code (a fork's included) never reaches the runner inside the admins' network.
    assert "self-hosted" not in (WORKFLOWS / "pull-request.yml").read_text()
    assert {job["runs-on"] for job in load("pull-request.yml")["jobs"].values()} == {"ubuntu-24.04"}


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_no_workflow_opens_the_ssh_rule(path: Path):
    text = path.read_text()
    assert "0.0.0.0/0" not in text
    assert "::/0" not in text
    assert not any("adminCidrs" in script or "pulumi config set" in script for script in run_scripts(load(path.name)))


def test_alibaba_deploys_first_then_tencent_each_behind_its_environment_one_at_a_time():
    jobs = load("deploy.yml")["jobs"]
    assert jobs["up-alibaba"]["needs"] == "gate"
    assert jobs["up-tencent"]["needs"] == ["gate", "up-alibaba"]
    for stack in STACKS:
        up = jobs[f"up-{stack}"]
        assert "strategy" not in up  # a matrix runs its legs side by side
        assert up["environment"] == stack
        assert up["concurrency"] == {"group": f"pulumi-up-{stack}", "cancel-in-progress": False}
        pulumi = pulumi_step(up)
        assert pulumi["with"] == {"command": "up", "stack-name": stack, "policyPacks": "policies"}
        assert pulumi["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"


def test_manual_runs_choose_the_stacks_through_an_input_that_no_script_interpolates():
    document = load("deploy.yml")
    assert document["on"]["push"] == {"branches": ["main"]}
    stacks = document["on"]["workflow_dispatch"]["inputs"]["stacks"]
    assert (stacks["type"], stacks["options"], stacks["default"]) == ("choice", ["all", "alibaba", "tencent"], "all")
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for script in run_scripts(load(path.name)):
            assert "${{" not in script, f"{path.name}: pass expressions to run: through env"


# The `if:` conditions are GitHub expressions; this evaluates the subset the workflows use, with
# GitHub's semantics (&& and || return an operand, == compares strings case-insensitively, an `if`
# without a status function means `success() && ...`), so the tests check what a run would do.

TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||[!().,])|(?P<name>[A-Za-z_][\w-]*))")
STATUS_FUNCTIONS = ("success(", "failure(", "cancelled(", "always(")


def tokens(expression: str) -> list[tuple[str, str]]:
    found, position, expression = [], 0, expression.strip()
    while position < len(expression):
        match = TOKEN.match(expression, position)
        assert match, f"cannot read {expression[position:]!r}"
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


def loose(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def evaluate(expression: str, context: dict, needs_results: list[str], cancelled: bool = False) -> object:
    inner = expression.strip()
    if inner.startswith("${{") and inner.endswith("}}"):
        inner = inner[3:-2]
    if not any(function in inner for function in STATUS_FUNCTIONS):
        inner = f"success() && ({inner})"
    stream = tokens(inner)
    position = 0

    def peek() -> tuple[str, str] | None:
        return stream[position] if position < len(stream) else None

    def take(value: str | None = None) -> tuple[str, str]:
        nonlocal position
        token = stream[position]
        assert value is None or token[1] == value, f"expected {value!r}, found {token[1]!r}"
        position += 1
        return token

    def either() -> object:
        value = both()
        while peek() == ("op", "||"):
            take()
            right = both()
            value = value if value else right
        return value

    def both() -> object:
        value = equality()
        while peek() == ("op", "&&"):
            take()
            right = equality()
            value = right if value else value
        return value

    def equality() -> object:
        value = unary()
        if peek() in (("op", "=="), ("op", "!=")):
            operator = take()[1]
            right = unary()
            same = loose(value) == loose(right)
            return same if operator == "==" else not same
        return value

    def unary() -> object:
        if peek() == ("op", "!"):
            take()
            return not unary()
        return primary()

    def call(name: str, arguments: list[object]) -> object:
        functions = {
            "success": lambda: not cancelled and all(result == "success" for result in needs_results),
            "failure": lambda: any(result == "failure" for result in needs_results),
            "cancelled": lambda: cancelled,
            "always": lambda: True,
            "contains": lambda: str(loose(arguments[1])) in str(loose(arguments[0] or "")),
        }
        return functions[name]()

    def primary() -> object:
        kind, text = take()
        if text == "(":
            value = either()
            take(")")
            return value
        if kind == "string":
            return text[1:-1].replace("''", "'")
        assert kind == "name", text
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if peek() == ("op", "("):
            take()
            arguments: list[object] = []
            while peek() != ("op", ")"):
                arguments.append(either())
                if peek() == ("op", ","):
                    take()
            take(")")
            return call(text, arguments)
        value: object = context.get(text)
        while peek() == ("op", "."):
            take()
            value = value.get(take()[1]) if isinstance(value, dict) else None
        return value

    result = either()
    assert position == len(stream), f"unread: {stream[position:]}"
    return result


def simulate_deploy(event: str, stacks: str = "", ref: str = "refs/heads/main", fails: tuple[str, ...] = ()) -> dict:
    """Each deploy job's result when the jobs named in `fails` fail whenever they run."""
    jobs = load("deploy.yml")["jobs"]
    results: dict[str, str] = {}
    for name, job in jobs.items():  # in the file's order, which is the needs order
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        context = {
            "github": {"event_name": event, "ref": ref},
            "inputs": {"stacks": stacks} if event == "workflow_dispatch" else {},
            "needs": {need: {"result": results[need]} for need in needs},
        }
        runs = evaluate(job.get("if", "true"), context, [results[need] for need in needs])
        results[name] = ("failure" if name in fails else "success") if runs else "skipped"
    return results


@pytest.mark.parametrize(
    ("event", "stacks", "ref", "fails", "alibaba", "tencent"),
    [
        ("push", "", "refs/heads/main", (), "success", "success"),
        ("push", "", "refs/heads/main", ("up-alibaba",), "failure", "skipped"),
        ("push", "", "refs/heads/main", ("gate",), "skipped", "skipped"),
        ("workflow_dispatch", "all", "refs/heads/main", (), "success", "success"),
        ("workflow_dispatch", "all", "refs/heads/main", ("up-alibaba",), "failure", "skipped"),
        ("workflow_dispatch", "alibaba", "refs/heads/main", (), "success", "skipped"),
        ("workflow_dispatch", "tencent", "refs/heads/main", (), "skipped", "success"),
        ("workflow_dispatch", "tencent", "refs/heads/main", ("gate",), "skipped", "skipped"),
        ("workflow_dispatch", "all", "refs/heads/some-branch", (), "skipped", "skipped"),
    ],
)
def test_which_stacks_a_run_deploys(event, stacks, ref, fails, alibaba, tencent):
    results = simulate_deploy(event, stacks, ref, fails)
    assert (results["up-alibaba"], results["up-tencent"]) == (alibaba, tencent)
    assert results["notify"] != "skipped"  # success, failure and skips alike are reported


def test_the_expression_reader_is_strict_enough_to_catch_a_wrong_condition():
    needs = {"gate": {"result": "success"}, "up-alibaba": {"result": "failure"}}
    context = {"github": {"event_name": "push", "ref": "refs/heads/main"}, "inputs": {}, "needs": needs}
    # What a plain `needs: up-alibaba` with `if: always()` would do: deploy tencent after a failure.
    assert evaluate("${{ always() }}", context, ["success", "failure"]) is True
    assert evaluate("needs.gate.result == 'SUCCESS'", context, ["success"]) is True
    assert evaluate("needs.up-alibaba.result == 'success'", context, ["success", "failure"]) is False
    assert evaluate("github.event_name == 'push' || inputs.stacks", context, ["success"]) is True
    assert evaluate("inputs.stacks || 'all'", context, []) == "all"


def test_the_notification_follows_the_up_jobs_whatever_they_did():
    notify = load("deploy.yml")["jobs"]["notify"]
    assert notify["needs"] == ["gate", "up-alibaba", "up-tencent"]
    assert notify["if"] == "${{ always() }}"
    assert notify["permissions"] == {"contents": "read"}
    (send,) = [step for step in notify["steps"] if "run" in step]
    assert "python3 tools/notify.py" in send["run"]
    assert send["env"]["PLATFORM_NOTIFY_WEBHOOK"] == "${{ secrets.PLATFORM_NOTIFY_WEBHOOK }}"
    assert send["env"]["FORMAT"] == "${{ vars.PLATFORM_NOTIFY_FORMAT || 'slack' }}"
    assert "PLATFORM_NOTIFY_WEBHOOK" not in send["run"]  # notify.py reads it from the environment, never argv


def test_the_drift_check_runs_daily_per_stack_and_only_its_report_may_write_issues():
    document = load("drift.yml")
    assert set(document["on"]) == {"schedule", "workflow_dispatch"}
    (schedule,) = document["on"]["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month, weekday) == ("*", "*", "*")  # every day,
    assert minute.isdigit()  # once
    assert hour.isdigit()
    check, report = document["jobs"]["check"], document["jobs"]["report"]
    assert matrix_stacks(check) == list(STACKS)
    assert check["environment"] == "drift-${{ matrix.stack }}"
    assert check["permissions"] == {"contents": "read", "id-token": "write"}
    # The CLI, from pulumi/actions at the SHA the deploys use, with no command of its own.
    (install,) = [step for step in check["steps"] if step.get("uses", "").startswith("pulumi/actions@")]
    assert install["uses"] == pulumi_step(load("deploy.yml")["jobs"]["up-alibaba"])["uses"]
    assert "with" not in install
    (script,) = [step["run"] for step in check["steps"] if step.get("id") == "check"]
    assert 'pulumi preview --stack "$STACK" --expect-no-changes' in script
    assert 'pulumi refresh --stack "$STACK" --preview-only --expect-no-changes' in script
    assert "--yes" not in script  # a check never writes the state
    assert "pulumi up" not in script
    assert report["needs"] == "check"
    assert report["permissions"] == {"issues": "write"}
    (open_issue,) = report["steps"]
    assert open_issue["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert "--label drift" in open_issue["run"]


@pytest.mark.parametrize(
    ("alibaba", "tencent", "reported"),
    [
        ("preview=clean refresh=clean", "preview=clean refresh=clean", False),
        ("preview=drift refresh=clean", "preview=clean refresh=clean", True),
        ("preview=clean refresh=clean", "preview=clean refresh=drift", True),
        ("preview=error refresh=error", "", False),  # could not check: the run fails, no issue
        ("", "", False),
    ],
)
def test_the_drift_issue_is_written_only_when_a_check_found_drift(alibaba, tencent, reported):
    report = load("drift.yml")["jobs"]["report"]
    context = {"needs": {"check": {"result": "failure", "outputs": {"alibaba": alibaba, "tencent": tencent}}}}
    assert bool(evaluate(report["if"], context, ["failure"])) is reported


def test_each_up_runs_behind_the_lifecycle_gate_of_its_deployed_revision_and_records_it():
    document = load("deploy.yml")
    acknowledge = document["on"]["workflow_dispatch"]["inputs"]["acknowledge_hazards"]
    assert (acknowledge["type"], acknowledge["default"]) == ("boolean", False)
    for stack in STACKS:
        job = document["jobs"][f"up-{stack}"]
        steps = job["steps"]
        checkout = steps[0]
        assert checkout["with"]["fetch-depth"] == 0  # the deployed revision must be in the clone
        names = [step.get("run", step.get("uses", "")) for step in steps]
        gate = names.index(f"bash tools/deploy_gate.sh check {stack}")
        up = next(i for i, step in enumerate(steps) if step.get("with", {}).get("command") == "up")
        record = names.index(f"bash tools/deploy_gate.sh record {stack}")
        assert gate < up < record
        assert steps[gate]["env"]["ACKNOWLEDGED"] == "${{ inputs.acknowledge_hazards || false }}"
        assert job["outputs"]["hazards"] == "${{ steps.gate.outputs.hazards }}"
    notify = document["jobs"]["notify"]["steps"][-1]
    assert notify["env"]["ACKNOWLEDGED"] == "${{ inputs.acknowledge_hazards || false }}"
    assert "hazards acknowledged by $ACTOR" in notify["run"]


def test_the_tests_run_as_root_on_github_so_the_ssh_and_engine_layers_run_there():
    for workflow in ("pull-request.yml", "deploy.yml"):
        gate = load(workflow)["jobs"]["gate"]
        (test,) = [step for step in gate["steps"] if step.get("name") == "make test"]
        assert test["run"] == "sudo bash .ci/run"


def test_the_sarif_upload_may_fail_without_failing_the_deploy():
    (upload,) = [
        step
        for step in load("deploy.yml")["jobs"]["gate"]["steps"]
        if step.get("uses", "").startswith("github/codeql-action/upload-sarif@")
    ]
    assert upload["continue-on-error"] is True


# --- Secrets: each job holding them names its environment, one stack and one cloud ---

# The secrets a job that runs Pulumi may read from its environment (the cloud's under the same
# names in every environment: which cloud is the environment's business).
STACK_SECRETS = {"PULUMI_ACCESS_TOKEN", "CLOUD_ACCESS_KEY_ID", "CLOUD_ACCESS_KEY_SECRET"}
CREDENTIALS = "python3 tools/cloud_credentials.py"
SECRET_OR_VARIABLE = re.compile(r"\$\{\{[^}]*?\b(secrets|vars)\.([A-Z0-9_]+)")


def jobs_with_secrets() -> list[tuple[str, str, dict]]:
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in load(path.name)["jobs"].items():
            if "secrets." in yaml.safe_dump(job):
                found.append((path.name, name, job))
    return found


def job_stacks(job: dict) -> list[tuple[str, str]]:
    """(stack, cloud) for each leg of a job that runs Pulumi."""
    if "strategy" in job:
        return [(leg["stack"], leg["cloud"]) for leg in job["strategy"]["matrix"]["include"]]
    (step,) = [step for step in job["steps"] if step.get("run", "").startswith(CREDENTIALS)]
    return [(job["environment"], step["env"]["CLOUD"])]


def stack_cloud(stack: str) -> str:
    return yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["platform:cloud"]


def test_no_workflow_names_a_clouds_static_key_or_reads_both_clouds():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        text = path.read_text()
        for name in ("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY", "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"):
            assert name not in text, f"{path.name}: {name} (the environment's CLOUD_* hold one cloud's keys)"


def test_every_job_that_holds_stack_secrets_runs_in_an_environment_for_one_stack_and_its_cloud():
    pulumi_jobs = [(workflow, name, job) for workflow, name, job in jobs_with_secrets() if name != "notify"]
    assert {(workflow, name) for workflow, name, _ in pulumi_jobs} == {
        ("pull-request.yml", "preview"),
        ("deploy.yml", "up-alibaba"),
        ("deploy.yml", "up-tencent"),
        ("drift.yml", "check"),
    }
    for workflow, name, job in pulumi_jobs:
        where = f"{workflow}: {name}"
        secrets = {match[1] for match in SECRET_OR_VARIABLE.findall(yaml.safe_dump(job)) if match[0] == "secrets"}
        assert secrets <= STACK_SECRETS, where
        assert "environment" in job, where
        # The cloud each leg's credentials are for is the cloud its stack file deploys to.
        for stack, cloud in job_stacks(job):
            assert cloud == stack_cloud(stack), f"{where}: {stack} runs on {stack_cloud(stack)}"
        # The OIDC exchange needs the job's token; the keys come before the step that runs Pulumi.
        assert job["permissions"]["id-token"] == "write", where
        steps = job["steps"]
        (credentials,) = [i for i, step in enumerate(steps) if step.get("run", "").startswith(CREDENTIALS)]
        pulumi = [
            i for i, step in enumerate(steps) if "pulumi " in step.get("run", "") or "command" in step.get("with", {})
        ]
        assert pulumi, where
        assert credentials < min(pulumi), where
        assert steps[credentials]["env"] == {
            "CLOUD": steps[credentials]["env"]["CLOUD"],
            "CLOUD_ROLE_ARN": "${{ vars.CLOUD_ROLE_ARN }}",
            "CLOUD_OIDC_PROVIDER": "${{ vars.CLOUD_OIDC_PROVIDER }}",
            "CLOUD_OIDC_AUDIENCE": "${{ vars.CLOUD_OIDC_AUDIENCE }}",
            "CLOUD_ACCESS_KEY_ID": "${{ secrets.CLOUD_ACCESS_KEY_ID }}",
            "CLOUD_ACCESS_KEY_SECRET": "${{ secrets.CLOUD_ACCESS_KEY_SECRET }}",
        }, where
        # The cloud keys reach no other step; the Pulumi token only the steps that call Pulumi.
        for step in steps[:credentials] + steps[credentials + 1 :]:
            assert "CLOUD_ACCESS_KEY" not in yaml.safe_dump(step), where


def test_the_environments_separate_a_branchs_preview_from_main_s_drift_check_and_deploys():
    preview = load("pull-request.yml")["jobs"]["preview"]
    drift = load("drift.yml")["jobs"]["check"]
    deploy = load("deploy.yml")["jobs"]
    assert preview["environment"] == "preview-${{ matrix.stack }}"
    assert drift["environment"] == "drift-${{ matrix.stack }}"
    assert [deploy[f"up-{stack}"]["environment"] for stack in STACKS] == list(STACKS)


def readme_table(heading: str) -> list[list[str]]:
    """The rows of the first table under a README heading, as cells without their backticks."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n{heading}\n", 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # past the header and its rule


def test_the_readme_lists_every_secret_and_variable_the_workflows_read_and_where_each_lives():
    rows = {row[0]: row for row in readme_table("### Secrets and variables")}
    used: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in load(path.name)["jobs"].values():
            environment = job.get("environment", "repository")
            environments = (
                {environment.replace("${{ matrix.stack }}", stack) for stack, _ in job_stacks(job)}
                if "${{" in environment
                else {environment}
            )
            # `runs-on` is read before the job enters its environment: repository variables only.
            for kind, key in SECRET_OR_VARIABLE.findall(yaml.safe_dump(job.get("runs-on"))):
                kinds[key] = "secret" if kind == "secrets" else "variable"
                used.setdefault(key, set()).add("repository")
            rest = {field: value for field, value in job.items() if field != "runs-on"}
            for kind, key in SECRET_OR_VARIABLE.findall(yaml.safe_dump(rest)):
                kinds[key] = "secret" if kind == "secrets" else "variable"
                used.setdefault(key, set()).update(environments)
    assert set(rows) == set(used), "README: one row per secret and variable the workflows read, no other"
    for key, environments in used.items():
        kind, where = rows[key][1], rows[key][2]
        assert kind == kinds[key], key
        for environment in environments:
            stem = environment.split("-", 1)[0] + "-*" if "-" in environment else environment
            assert environment in where or stem in where, f"README row {key} does not name {environment}"
