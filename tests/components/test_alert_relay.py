"""`components/scripts/alert_relay.py`, run: the relay as a real process on loopback, between a caller
posting Alertmanager's webhook payload and a stand-in for DingTalk's robot that this test serves on
127.0.0.1 and that records what it receives.

Every process and every wait is bounded; the relay is stopped in its fixture's `finally`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from components.scripts import alert_relay
from tests.loopback import serving

RELAY = Path(alert_relay.__file__)
TOKEN = "TOKEN-5f1e2d"  # what a leak of the URL would show
ROTATED_TOKEN = "ROTATED-TOKEN-9a8b"
SECRET = "SEC-signing-secret-77c3"
WAIT = 15  # seconds any one wait may take

FIRING = {
    "version": "4",
    "status": "firing",
    "receiver": "platform",
    "groupLabels": {"alertname": "HostMemoryLow"},
    "commonLabels": {"alertname": "HostMemoryLow", "severity": "warning"},
    "commonAnnotations": {},
    "externalURL": "http://127.0.0.1:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HostMemoryLow", "instance": "db-1:9100"},
            "annotations": {"summary": "db-1 has 4% memory available"},
            "startsAt": "2024-05-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
        },
        {
            "status": "firing",
            "labels": {"alertname": "HostMemoryLow", "instance": "app-1:9100"},
            "annotations": {"summary": "app-1 has 7% memory available"},
            "startsAt": "2024-05-01T10:02:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
        },
    ],
}


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any]


@dataclass
class DingTalk:
    """The stand-in robot: what it answers and what it received."""

    port: int = 0
    errcode: int = 0
    received: list[Received] = field(default_factory=list)

    def url(self, token: str = TOKEN) -> str:
        return f"http://127.0.0.1:{self.port}/robot/send?access_token={token}"


@dataclass
class Relay:
    port: int
    url_file: Path
    stderr_file: Path
    process: subprocess.Popen[bytes]

    def stderr(self) -> str:
        return self.stderr_file.read_text()


@pytest.fixture
def dingtalk() -> Iterator[DingTalk]:
    state = DingTalk()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            path, _, query = self.path.partition("?")
            state.received.append(Received(path, urllib.parse.parse_qs(query), body))
            answer = json.dumps({"errcode": state.errcode, "errmsg": "ok" if state.errcode == 0 else "refused"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, format: str, *args: object) -> None:
            pass  # the tests read what was received

    with serving(Handler) as port:
        state.port = port
        yield state


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env() -> dict[str, str]:
    """The environment without proxies: loopback must be reached directly."""
    return {key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")}


def run_relay(*args: str) -> subprocess.CompletedProcess[str]:
    """The relay run to its end, for the command lines it refuses."""
    return subprocess.run(
        [sys.executable, str(RELAY), *args], capture_output=True, text=True, env=clean_env(), timeout=WAIT, check=False
    )


# No proxy for the caller either.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(port: int, path: str, body: bytes | None = None) -> tuple[int, str]:
    """The relay's status and body for a GET (no body) or a POST."""
    method = "GET" if body is None else "POST"
    call = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    try:
        with OPENER.open(call, timeout=WAIT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def alert(port: int, payload: object = FIRING) -> int:
    return request(port, "/alert", json.dumps(payload).encode())[0]


@pytest.fixture
def start_relay(tmp_path: Path) -> Iterator[Callable[..., Relay]]:
    """Start the relay against a URL (and a secret, if given); it answers /-/healthy before this returns."""
    started: list[Relay] = []

    def start(url: str, secret: str | None = None) -> Relay:
        url_file = tmp_path / "url"
        url_file.write_text(url + "\n")
        port = free_port()
        args = ["--listen", f"127.0.0.1:{port}", "--url-file", str(url_file), "--timeout", "5"]
        if secret is not None:
            (tmp_path / "secret").write_text(secret + "\n")
            args += ["--secret-file", str(tmp_path / "secret")]
        stderr_file = tmp_path / "relay.stderr"
        with stderr_file.open("wb") as stderr:
            process = subprocess.Popen([sys.executable, str(RELAY), *args], stderr=stderr, env=clean_env())
        relay = Relay(port, url_file, stderr_file, process)
        started.append(relay)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the relay exited {process.returncode}: {relay.stderr()}"
            try:
                if request(relay.port, "/-/healthy") == (200, "ok\n"):
                    return relay
            except OSError:
                pass  # not listening yet
            time.sleep(0.05)
        pytest.fail(f"the relay did not answer /-/healthy within {WAIT} s: {relay.stderr()}")

    try:
        yield start
    finally:
        for relay in started:
            relay.process.terminate()
            try:
                relay.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                relay.process.kill()
                relay.process.wait(timeout=5)


def test_a_firing_group_of_two_alerts_arrives_as_one_markdown_message(
    dingtalk: DingTalk, start_relay: Callable[..., Relay]
):
    relay = start_relay(dingtalk.url())
    assert alert(relay.port) == 200
    (received,) = dingtalk.received
    assert (received.path, received.query) == ("/robot/send", {"access_token": [TOKEN]})
    assert set(received.body) == {"msgtype", "markdown"}
    assert received.body["msgtype"] == "markdown"
    markdown = received.body["markdown"]
    assert markdown["title"] == "[FIRING:2] HostMemoryLow"
    assert "db-1 has 4% memory available" in markdown["text"]
    assert "app-1 has 7% memory available" in markdown["text"]
    assert "[Alertmanager](http://127.0.0.1:9093)" in markdown["text"]


def test_each_alert_is_one_line_with_its_status_name_instance_summary_and_start():
    lines = alert_relay.render(FIRING)["markdown"]["text"].splitlines()
    assert lines == [
        "#### [FIRING:2] HostMemoryLow",
        "",
        "- **FIRING** HostMemoryLow on db-1:9100: db-1 has 4% memory available (since 2024-05-01T10:00:00Z)",
        "- **FIRING** HostMemoryLow on app-1:9100: app-1 has 7% memory available (since 2024-05-01T10:02:00Z)",
        "",
        "[Alertmanager](http://127.0.0.1:9093)",
    ]


def test_a_resolved_group_is_titled_resolved_without_a_count():
    resolved = {**FIRING, "status": "resolved", "alerts": [{**a, "status": "resolved"} for a in FIRING["alerts"]]}
    assert alert_relay.render(resolved)["markdown"]["title"] == "[RESOLVED] HostMemoryLow"


def test_with_a_secret_file_the_url_carries_a_timestamp_and_the_signature_dingtalk_expects(
    dingtalk: DingTalk, start_relay: Callable[..., Relay]
):
    relay = start_relay(dingtalk.url(), secret=SECRET)
    assert alert(relay.port) == 200
    (received,) = dingtalk.received
    assert set(received.query) == {"access_token", "timestamp", "sign"}
    (timestamp,) = received.query["timestamp"]
    (sign,) = received.query["sign"]  # parse_qs has undone the URL encoding
    expected = hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256).digest()
    assert sign == base64.b64encode(expected).decode()
    assert timestamp.isdigit()
    assert len(timestamp) == 13  # milliseconds since the epoch, as DingTalk wants; seconds would have 10 digits


def test_an_empty_secret_file_posts_unsigned_as_a_robot_without_signing_wants(
    dingtalk: DingTalk, start_relay: Callable[..., Relay]
):
    relay = start_relay(dingtalk.url(), secret="")
    assert alert(relay.port) == 200
    (received,) = dingtalk.received
    assert set(received.query) == {"access_token"}


def test_a_refusal_by_dingtalk_is_a_502_so_alertmanager_retries(dingtalk: DingTalk, start_relay: Callable[..., Relay]):
    dingtalk.errcode = 310000
    relay = start_relay(dingtalk.url())
    assert alert(relay.port) == 502
    assert len(dingtalk.received) == 1
    assert "errcode 310000" in relay.stderr()


def test_an_unreachable_dingtalk_is_a_502(start_relay: Callable[..., Relay]):
    relay = start_relay(f"http://127.0.0.1:{free_port()}/robot/send?access_token={TOKEN}")
    assert alert(relay.port) == 502


def test_a_body_that_is_not_json_is_a_400_and_is_not_relayed(dingtalk: DingTalk, start_relay: Callable[..., Relay]):
    relay = start_relay(dingtalk.url())
    assert request(relay.port, "/alert", b"{not json")[0] == 400
    assert request(relay.port, "/alert", b'{"status": "firing"}')[0] == 400
    assert dingtalk.received == []


def test_a_body_over_one_mebibyte_is_a_413_and_is_not_relayed(dingtalk: DingTalk, start_relay: Callable[..., Relay]):
    relay = start_relay(dingtalk.url())
    assert request(relay.port, "/alert", b" " * (1024 * 1024 + 1))[0] == 413
    assert dingtalk.received == []
    assert alert(relay.port) == 200  # and the relay still serves


def test_a_rotated_url_file_is_used_by_the_next_delivery_without_a_restart(
    dingtalk: DingTalk, start_relay: Callable[..., Relay]
):
    relay = start_relay(dingtalk.url())
    assert alert(relay.port) == 200
    relay.url_file.write_text(dingtalk.url(ROTATED_TOKEN) + "\n")
    assert alert(relay.port) == 200
    assert [r.query["access_token"] for r in dingtalk.received] == [[TOKEN], [ROTATED_TOKEN]]
    assert relay.process.poll() is None


def test_the_relay_logs_one_line_per_delivery_and_never_the_token_or_the_secret(
    dingtalk: DingTalk, start_relay: Callable[..., Relay]
):
    relay = start_relay(dingtalk.url(), secret=SECRET)
    assert alert(relay.port) == 200
    dingtalk.errcode = 310000
    assert alert(relay.port) == 502
    relay.url_file.write_text(f"http://127.0.0.1:{free_port()}/robot/send?access_token={TOKEN}\n")
    assert alert(relay.port) == 502
    relay.url_file.write_text(f"ftp://example.com/robot/send?access_token={TOKEN}\n")
    assert alert(relay.port) == 502
    lines = relay.stderr().splitlines()
    assert len([line for line in lines if "[FIRING:2] HostMemoryLow" in line]) == 4, lines
    for secret in (TOKEN, SECRET, "access_token", "sign="):
        assert secret not in relay.stderr()
    assert "Traceback" not in relay.stderr()


def test_the_relay_stops_with_status_0_on_sigterm(dingtalk: DingTalk, start_relay: Callable[..., Relay]):
    relay = start_relay(dingtalk.url())
    relay.process.terminate()
    assert relay.process.wait(timeout=WAIT) == 0
    assert "Traceback" not in relay.stderr()


def test_a_port_already_in_use_is_status_1_with_one_line(tmp_path: Path):
    url_file = tmp_path / "url"
    url_file.write_text(f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run_relay("--listen", listen, "--url-file", str(url_file))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"alert_relay.py: cannot listen on {listen}: Address already in use"]


@pytest.mark.parametrize("listen", ["0.0.0.0:9", "nonsense", "127.0.0.1:0", "[::1]:70000"])
def test_a_listen_address_that_is_not_loopback_host_and_port_is_refused_with_one_line(listen: str, tmp_path: Path):
    url_file = tmp_path / "url"
    url_file.write_text(f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}\n")
    result = run_relay("--listen", listen, "--url-file", str(url_file))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()  # one line, so no traceback
    assert f"--listen {listen!r}" in line
    assert "valid: 127.0.0.1:<1-65535>" in line


def test_a_missing_url_file_is_refused_with_one_line_naming_it(tmp_path: Path):
    missing = tmp_path / "absent"
    result = run_relay("--listen", "127.0.0.1:9099", "--url-file", str(missing))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"alert_relay.py: --url-file {missing}: cannot be read (FileNotFoundError); valid: {alert_relay.VALID_URL}"
    ]


@pytest.mark.parametrize("url", ["", f"http://example.com/robot/send?access_token={TOKEN}", "oapi.dingtalk.com"])
def test_a_url_file_without_an_https_url_is_refused_without_showing_what_it_holds(url: str, tmp_path: Path):
    url_file = tmp_path / "url"
    url_file.write_text(url + "\n")
    result = run_relay("--listen", "127.0.0.1:9099", "--url-file", str(url_file))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"alert_relay.py: --url-file {url_file}: does not hold an https:// URL")
    assert TOKEN not in line
