"""The CI's own scripts, run: `tools/notify.py` against a webhook on loopback, and the workflows' shell
steps (the deploy notification, the drift check, the drift issue) with stand-ins for `pulumi` and `gh`.

The webhook is a real HTTP server on 127.0.0.1 (an ephemeral port) started here; every process and
every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.loopback import serving

ROOT = Path(__file__).resolve().parents[1]
NOTIFY = ROOT / "tools" / "notify.py"
WORKFLOWS = ROOT / ".github" / "workflows"
TOKEN_PATH = "/robot/send?access_token=SECRET-TOKEN-123"  # what a leak of the URL would show
PROCESS_TIMEOUT = 30


@dataclass
class Received:
    method: str
    path: str
    content_type: str
    body: bytes


@dataclass
class Webhook:
    """What the server answers, what it received, and a latch that holds answers back."""

    url: str = ""
    status: int = 200
    answer: bytes = b"ok"
    hold: threading.Event | None = None
    received: list[Received] = field(default_factory=list)

    def bodies(self) -> list[object]:
        return [json.loads(request.body) for request in self.received]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    state = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            state.received.append(Received(self.command, self.path, self.headers.get("Content-Type", ""), body))
            if state.hold is not None:
                state.hold.wait(timeout=PROCESS_TIMEOUT)
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            # The timeout test's client has given up by now: its pipe is closed, which is the point.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(state.answer)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the tests read what was received, not the server's log

    with serving(Handler) as port:
        state.url = f"http://127.0.0.1:{port}{TOKEN_PATH}"
        try:
            yield state
        finally:  # before the server stops: a held answer ends first
            if state.hold is not None:
                state.hold.set()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without proxies (loopback must be reached directly) or a webhook of the caller's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and key != "PLATFORM_NOTIFY_WEBHOOK"
    }
    return {**env, **extra}


def notify(*args: str, url: str | None, timeout: float = PROCESS_TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = clean_env(**({"PLATFORM_NOTIFY_WEBHOOK": url} if url is not None else {}))
    return subprocess.run(
        [sys.executable, str(NOTIFY), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def assert_no_leak(result: subprocess.CompletedProcess[str]) -> None:
    assert "SECRET-TOKEN-123" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


RUN = "https://github.com/example/platform/actions/runs/42"


def test_slack_gets_its_text_payload(webhook: Webhook):
    result = notify(
        "--format", "slack", "--status", "failure", "--stack", "alibaba", "--summary", "up: failure", "--run-url", RUN,
        url=webhook.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (request,) = webhook.received
    assert (request.method, request.path) == ("POST", TOKEN_PATH)
    assert request.content_type.startswith("application/json")
    assert json.loads(request.body) == {"text": f"platform deploy: failure (alibaba)\nup: failure\n{RUN}"}
    assert_no_leak(result)


def test_dingtalk_gets_its_markdown_payload_and_errcode_zero_is_success(webhook: Webhook):
    webhook.answer = b'{"errcode":0,"errmsg":"ok"}'
    result = notify(
        "--format", "dingtalk", "--status", "success", "--summary", "gate: success, alibaba: success", "--run-url", RUN,
        url=webhook.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert webhook.bodies() == [
        {
            "msgtype": "markdown",
            "markdown": {
                "title": "platform deploy: success",
                "text": f"#### platform deploy: success\n\ngate: success, alibaba: success\n\n[the run]({RUN})",
            },
        }
    ]
    assert_no_leak(result)


def test_a_dingtalk_refusal_with_http_200_is_a_failure(webhook: Webhook):
    webhook.answer = b'{"errcode":310000,"errmsg":"keywords not in content"}'
    result = notify("--format", "dingtalk", "--status", "success", url=webhook.url)
    assert result.returncode == 1
    assert len(webhook.received) == 1
    assert result.stderr.splitlines() == [
        "notify.py: DingTalk refused the message: errcode 310000 (keywords not in content)"
    ]
    assert_no_leak(result)


def test_an_http_error_is_a_failure_without_the_url(webhook: Webhook):
    webhook.status, webhook.answer = 404, b"no_service"
    result = notify("--format", "slack", "--status", "success", url=webhook.url)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["notify.py: the webhook answered HTTP 404 Not Found: no_service"]
    assert_no_leak(result)


def test_a_webhook_that_does_not_answer_times_out(webhook: Webhook):
    webhook.hold = threading.Event()
    result = notify("--format", "slack", "--status", "success", "--timeout", "1", url=webhook.url, timeout=15)
    webhook.hold.set()
    assert result.returncode == 1
    assert result.stderr.startswith("notify.py: could not reach the webhook:")
    assert "timed out" in result.stderr
    assert_no_leak(result)


def test_a_bad_format_is_one_line_naming_it_and_the_valid_ones(webhook: Webhook):
    result = notify("--format", "teams", "--status", "success", url=webhook.url)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["notify.py: unknown --format 'teams'; valid formats: slack, dingtalk"]
    assert result.stdout == ""
    assert webhook.received == []
    assert_no_leak(result)


@pytest.mark.parametrize("url", [None, "", "  "])
def test_without_a_webhook_the_notification_is_skipped_in_one_line(url: str | None):
    result = notify("--format", "slack", "--status", "success", url=url)
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["notify.py: PLATFORM_NOTIFY_WEBHOOK is not set; skipping the notification"]
    assert result.stderr == ""


def test_the_url_is_not_taken_from_argv(webhook: Webhook):
    result = notify("--format", "slack", "--status", "success", "--url", webhook.url, url=None)
    assert result.returncode == 2
    assert webhook.received == []


def test_a_webhook_that_is_not_http_is_refused_without_showing_it():
    result = notify("--format", "slack", "--status", "success", url="file:///etc/SECRET-TOKEN-123")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["notify.py: PLATFORM_NOTIFY_WEBHOOK is not an http(s) URL"]
    assert_no_leak(result)


# --- The workflows' shell steps, run as the runner would (bash, the step's env) ---


def step(workflow: str, job: str, predicate) -> dict:
    jobs = yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"]
    (found,) = [candidate for candidate in jobs[job]["steps"] if predicate(candidate)]
    return found


def run_step(script: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # What GitHub runs for `shell: bash` (and, with bash on PATH, for no shell at all but pipefail).
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/usr/bin/env bash\n{body}")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    (directory / "python3").symlink_to(sys.executable)  # the step calls python3 from PATH
    return directory


@pytest.mark.parametrize(
    ("results", "status"),
    [
        (("success", "success", "success"), "success"),
        (("success", "failure", "skipped"), "failure"),
        (("failure", "skipped", "skipped"), "failure"),
        (("success", "skipped", "success"), "success"),
        (("success", "success", "cancelled"), "cancelled"),
    ],
)
def test_the_deploy_notification_reports_the_run(webhook: Webhook, bin_dir: Path, results, status):
    send = step("deploy.yml", "notify", lambda candidate: "run" in candidate)
    gate, alibaba, tencent = results
    env = clean_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        PLATFORM_NOTIFY_WEBHOOK=webhook.url,
        FORMAT="slack",
        GATE=gate,
        ALIBABA=alibaba,
        TENCENT=tencent,
        RUN_URL=RUN,
    )
    result = run_step(send["run"], env)
    assert result.returncode == 0, result.stderr
    assert webhook.bodies() == [
        {"text": f"platform deploy: {status}\ngate: {gate}, alibaba: {alibaba}, tencent: {tencent}\n{RUN}"}
    ]


def test_a_run_that_deployed_nothing_sends_nothing(webhook: Webhook, bin_dir: Path):
    send = step("deploy.yml", "notify", lambda candidate: "run" in candidate)
    env = clean_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        PLATFORM_NOTIFY_WEBHOOK=webhook.url,
        FORMAT="slack",
        GATE="success",
        ALIBABA="skipped",
        TENCENT="skipped",
        RUN_URL=RUN,
    )
    result = run_step(send["run"], env)
    assert result.returncode == 0, result.stderr
    assert webhook.received == []


PULUMI_STAND_IN = """\
echo "pulumi $*" >> "$CALLS"
case "$1" in
  preview) outcome=$PREVIEW ;;
  refresh) outcome=$REFRESH ;;
  *) exit 99 ;;
esac
case "$outcome" in
  clean) echo "Resources: 12 unchanged" ;;
  drift)
    echo "  ~ security group rule"
    echo "error: no changes were expected but changes were proposed" >&2
    exit 255 ;;
  error) echo "error: getting stack configuration: 401 Unauthorized" >&2; exit 255 ;;
esac
"""


@pytest.mark.parametrize(
    ("preview", "refresh", "code", "verdicts"),
    [
        ("clean", "clean", 0, "preview=clean refresh=clean"),
        ("drift", "clean", 1, "preview=drift refresh=clean"),
        ("clean", "drift", 1, "preview=clean refresh=drift"),
        ("error", "clean", 1, "preview=error refresh=clean"),
    ],
)
def test_the_drift_check_tells_drift_from_a_failed_check(
    tmp_path: Path, bin_dir: Path, preview, refresh, code, verdicts
):
    check = step("drift.yml", "check", lambda candidate: candidate.get("id") == "check")
    assert check["shell"] == "bash"
    stand_in(bin_dir, "pulumi", PULUMI_STAND_IN)
    output, summary, calls = tmp_path / "output", tmp_path / "summary", tmp_path / "calls"
    env = clean_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        STACK="tencent",
        PREVIEW=preview,
        REFRESH=refresh,
        CALLS=str(calls),
        RUNNER_TEMP=str(tmp_path),
        GITHUB_OUTPUT=str(output),
        GITHUB_STEP_SUMMARY=str(summary),
    )
    result = run_step(check["run"], env)
    assert result.returncode == code, result.stdout + result.stderr
    assert output.read_text() == f"tencent={verdicts}\n"
    assert calls.read_text().splitlines() == [
        "pulumi preview --stack tencent --expect-no-changes --diff --non-interactive",
        "pulumi refresh --stack tencent --preview-only --expect-no-changes --diff --non-interactive",
    ]
    if "drift" in verdicts:
        assert "::error::tencent has drifted" in result.stdout
    elif "error" in verdicts:
        assert "::error::the drift check of tencent could not run" in result.stdout


GH_STAND_IN = """\
echo "gh $*" >> "$CALLS"
if [ "$1 $2" = "issue list" ]; then printf '%s\\n' "$OPEN_ISSUE"; fi
if [ "$1 $2" = "issue comment" ] || [ "$1 $2" = "issue create" ]; then
  while [ $# -gt 0 ]; do
    if [ "$1" = --body-file ]; then cp "$2" "$BODY"; fi
    shift
  done
fi
"""


@pytest.mark.parametrize(("open_issue", "verb"), [("", "create"), ("17", "comment")])
def test_the_drift_report_opens_an_issue_or_comments_on_the_open_one(tmp_path: Path, bin_dir: Path, open_issue, verb):
    report = step("drift.yml", "report", lambda candidate: "run" in candidate)
    stand_in(bin_dir, "gh", GH_STAND_IN)
    calls, body = tmp_path / "calls", tmp_path / "body"
    env = clean_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        GH_TOKEN="token",
        GH_REPO="example/platform",
        ALIBABA="preview=clean refresh=drift",
        TENCENT="preview=clean refresh=clean",
        RUN_URL=RUN,
        RUNNER_TEMP=str(tmp_path),
        CALLS=str(calls),
        BODY=str(body),
        OPEN_ISSUE=open_issue,
    )
    result = run_step(report["run"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    assert lines[0].startswith("gh label create drift ")
    assert lines[1] == "gh issue list --label drift --state open --limit 1 --json number --jq .[0].number // empty"
    if verb == "comment":
        assert lines[2:] == [f"gh issue comment 17 --body-file {tmp_path}/drift.md"]
    else:
        assert lines[2:] == [
            "gh issue create --title Drift: the stacks differ from main or from the clouds --label drift "
            f"--body-file {tmp_path}/drift.md"
        ]
    text = body.read_text()
    assert "- alibaba: preview=clean refresh=drift" in text
    assert "- tencent: preview=clean refresh=clean" in text
    assert RUN in text


# --- The deploy's own gate (tools/deploy_gate.sh): preflight --from the deployed revision ---

GATE = ROOT / "tools" / "deploy_gate.sh"
PULUMI_TAGS = """\
# `pulumi stack tag get|set NAME [VALUE] --stack STACK`, tags kept in $TAGS/<stack>.
case "$1 $2 $3" in
  "stack tag get") file="$TAGS/$6"; if [ -s "$file" ]; then cat "$file"; exit 0; fi
                   echo "error: stack tag '$4' not found for stack '$6'" >&2; exit 1 ;;
  "stack tag set") mkdir -p "$TAGS"; printf '%s\\n' "$5" > "$TAGS/$7" ;;
  *) exit 99 ;;
esac
"""


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A checkout with two commits: the deployed one, and a change that drops production-redis from
    the plan without retiring it (a hazard: it would keep running unmanaged)."""
    root = tmp_path_factory.mktemp("repo") / "project"
    shutil.copytree(
        ROOT, root, ignore=shutil.ignore_patterns(".git", ".venv", ".make", "tests", "__pycache__", ".*_cache")
    )
    git = ["git", "-C", str(root), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], check=True, timeout=60)
    subprocess.run([*git, "add", "."], check=True, timeout=60)
    subprocess.run([*git, "commit", "-q", "--no-gpg-sign", "-m", "deployed"], check=True, timeout=60)
    first = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    path = root / "Pulumi.alibaba.yaml"
    path.write_text(path.read_text() + "  platform:omit:\n    databases: [production-redis]\n")
    subprocess.run([*git, "commit", "-q", "--no-gpg-sign", "-am", "drop redis"], check=True, timeout=60)
    second = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    return {"root": root, "first": first, "second": second}


def run_gate(
    deployed: dict[str, Any], tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in(bin_dir, "pulumi", PULUMI_TAGS)
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    result = subprocess.run(
        ["bash", str(GATE), *args],
        cwd=deployed["root"],
        capture_output=True,
        text=True,
        env=clean_env(
            PATH=f"{bin_dir}:{os.environ['PATH']}",
            PYTHON=sys.executable,
            TAGS=str(tmp_path / "tags"),
            GITHUB_STEP_SUMMARY=str(summary),
            GITHUB_OUTPUT=str(outputs),
            GITHUB_SHA=str(deployed["second"]),
            **env,
        ),
        timeout=300,
        check=False,
    )
    return result, _text_of(summary), _text_of(outputs)


def _text_of(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_the_deploy_gate_refuses_a_hazard_from_the_recorded_revision(deployed, tmp_path: Path):
    (tmp_path / "tags").mkdir()
    (tmp_path / "tags/alibaba").write_text(f"{deployed['first']}\n")
    result, summary, outputs = run_gate(deployed, tmp_path, "check", "alibaba")
    assert result.returncode == 1, result.stderr
    assert f"from {deployed['first']} (the revision recorded by its last successful deploy" in summary
    assert "production-redis (database:redis) left the plan but is not under platform:retired" in summary
    assert "hazards=1" in outputs
    assert result.stdout.strip().splitlines()[-1].startswith("::error::alibaba: preflight --from")


def test_an_acknowledged_hazard_deploys_and_says_so(deployed, tmp_path: Path):
    (tmp_path / "tags").mkdir()
    (tmp_path / "tags/alibaba").write_text(f"{deployed['first']}\n")
    result, _, outputs = run_gate(deployed, tmp_path, "check", "alibaba", ACKNOWLEDGED="true")
    assert result.returncode == 0, result.stderr
    assert "::warning::alibaba:" in result.stdout
    assert "acknowledge_hazards" in result.stdout
    assert "hazards=1" in outputs


def test_without_a_recorded_deploy_the_parent_commit_stands_in_and_the_summary_says_so(deployed, tmp_path: Path):
    result, summary, outputs = run_gate(deployed, tmp_path, "check", "alibaba")
    assert result.returncode == 1  # the parent is the deployed commit here: the same hazard
    assert "HEAD's parent (no deploy of this stack is recorded yet)" in summary
    result, summary, outputs = run_gate(deployed, tmp_path, "check", "alibaba", BEFORE=str(deployed["second"]))
    assert result.returncode == 0, result.stderr  # from the revision itself: nothing changes
    assert "the revision before this push" in summary
    assert "hazards=0" in outputs


def test_a_successful_deploy_records_its_revision(deployed, tmp_path: Path):
    result, _, _ = run_gate(deployed, tmp_path, "record", "tencent")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tags/tencent").read_text().strip() == deployed["second"]


@pytest.mark.parametrize(
    ("status", "says"),
    [("1", "exited 1: a mandatory policy is violated"), ("2", "exited 2: a stack's config cannot be evaluated")],
)
def test_the_pull_request_gate_names_a_violation_and_an_unreadable_stack_differently(status: str, says: str):
    refuse = step(
        "pull-request.yml",
        "gate",
        lambda c: c.get("name") == "Refuse mandatory policy violations and unreadable stacks",
    )
    result = run_step(refuse["run"], clean_env(STATUS=status))
    assert result.returncode == 1
    assert says in result.stdout


def test_the_gate_comment_keeps_its_marker_and_shows_an_unreadable_stack_as_its_line(tmp_path: Path):
    """With exit 2 the markdown still starts with the marker CI finds its comment by, and the bad
    stack is a row with its one line next to the stacks that could be evaluated."""
    for name in ("Pulumi.yaml", "Pulumi.alibaba.yaml", "Pulumi.tencent.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    broken = (ROOT / "Pulumi.alibaba.yaml").read_text().replace("memoryMib: 1843", "memoryMib: -5")
    (tmp_path / "Pulumi.broken.yaml").write_text(broken)
    result = subprocess.run(
        [sys.executable, "-m", "preflight", "--format", "markdown", "--root", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[0] == "<!-- platform-policy-gate -->"
    assert lines[1] == "## Policy gate: ❌ 1 stack cannot be evaluated (bad config)"
    assert "| `alibaba` |" in result.stdout
    assert "| `tencent` |" in result.stdout
    assert any(
        line.startswith("| `broken` | ❌ cannot be evaluated: error: stack broken: platform:host.memoryMib")
        for line in lines
    )
    (error,) = result.stderr.splitlines()
    assert error.startswith("error: stack broken: platform:host.memoryMib")
