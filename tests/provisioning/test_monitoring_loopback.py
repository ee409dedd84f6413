"""The monitoring over SSH on loopback: Debian's node exporter, Prometheus, Alertmanager and
blackbox exporter installed by the monitoring step under the systemctl stand-in, with the
configuration the plan renders; Prometheus scrapes node exporter, and an alert fires into a
webhook receiver on loopback when a test writes a metric past its threshold. The heartbeat step
then pings its URL while Alertmanager holds the Watchdog alert, and stops once Alertmanager is
stopped (the dead man's switch)."""

from __future__ import annotations

import http.server
import json
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from components import heartbeat, monitoring
from plan import Paths, Plan
from tests.provisioning.harness import Run, SshHost
from tests.provisioning.webhook import Receiver
from tests.provisioning.workloads import free_ports

# What this test runs (Grafana is in no Debian archive: tests/components/test_grafana.py covers its files).
RUN_HERE = ("node-exporter", "prometheus", "alertmanager", "blackbox-exporter", "alert-relay")
needed = [Path(monitoring.binary_of(program)) for program in RUN_HERE]
# What `make bench` prints: each program's resident memory once the alert went out, and its limit.
RESIDENT: list[tuple[str, float, float]] = []


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


pytestmark = pytest.mark.skipif(
    not all(path.exists() for path in needed),
    reason="needs Debian's prometheus, prometheus-node-exporter, prometheus-alertmanager and "
    "prometheus-blackbox-exporter (.ci/run installs them)",
)


def beat(host: SshHost, paths: Paths) -> Run:
    """One run of the installed heartbeat, as its timer runs it."""
    check = heartbeat.heartbeat_check(paths)
    return host.run(check.program, label=check.service)


def dead_mans_switch(host: SshHost, plan: Plan, receiver: Receiver) -> None:
    """The heartbeat step over SSH: a ping while Alertmanager holds the Watchdog (which never reached
    the Slack receiver), none once Alertmanager is stopped; its URL only in its 0600 file."""
    # Prometheus sends a firing alert again once a minute (its resend delay): one that first fired
    # before Alertmanager answered reaches it up to a minute later.
    alertmanager = monitoring.port_of(plan.monitoring_plan, "alertmanager")
    held = f"http://127.0.0.1:{alertmanager}/api/v2/alerts?filter=alertname%3D%22Watchdog%22"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not json.loads(urllib.request.urlopen(held, timeout=5).read()):
        time.sleep(1)
    url = receiver.url.replace("/hook", "/ping/heartbeat-uuid")
    stdin = heartbeat.heartbeat_stdin(url)
    step = heartbeat.heartbeat_step("app", plan.monitoring_plan, stdin)
    installed = host.step(step, stdin)
    assert installed.code == 0, installed
    assert "heartbeat: the Watchdog alert is active\nheartbeat: sent" in installed.stdout, installed
    assert "platform-heartbeat: installed, timer active (heartbeat healthy" in installed.stdout, installed
    assert receiver.pings == ["/ping/heartbeat-uuid"]
    assert url not in installed.stdout + installed.stderr + installed.command
    url_file = Path(heartbeat.url_file(plan.paths))
    assert (url_file.read_text(), oct(url_file.stat().st_mode & 0o777)) == (url, "0o600")
    assert not [body for body in receiver.bodies if "Watchdog" in json.dumps(body)]
    again = host.step(step, stdin)
    assert "platform-heartbeat: unchanged (heartbeat healthy" in again.stdout, again
    assert len(receiver.pings) == 2
    metrics = Path(heartbeat.metrics_file(plan.paths)).read_text()
    assert 'platform_heartbeat_signal{mode="watchdog"} 1' in metrics
    sent = re.search(r"^platform_heartbeat_last_sent_timestamp_seconds (\d+)$", metrics, re.MULTILINE)
    assert sent, metrics

    # Alertmanager stops: the timer's next run sends nothing, so the heartbeat service pages.
    stopped = host.run(f"systemctl stop {monitoring.unit_name('alertmanager')}", label="stop alertmanager")
    assert stopped.code == 0, stopped
    silent = beat(host, plan.paths)
    assert silent.code == 1, silent
    assert "does not answer" in silent.stdout, silent
    assert len(receiver.pings) == 2
    metrics = Path(heartbeat.metrics_file(plan.paths)).read_text()
    assert 'platform_heartbeat_signal{mode="watchdog"} 0' in metrics
    assert f"platform_heartbeat_last_sent_timestamp_seconds {sent[1]}" in metrics  # kept: the alert's input


def test_the_scraped_host_pings_while_the_peer_scrapes_it(host: SshHost):
    """The database host's heartbeat (``scraped``): node exporter installed by the monitoring step, the
    peer's Prometheus played by the test reading /metrics as a scrape does; a ping after a run with
    scrapes, none after a run without (the peer host, its Prometheus or the tunnel died)."""
    (port,) = free_ports(1)
    plan = host.plan("alibaba", extra={"monitoring": {"enabled": True, "ports": {"node-exporter": port}}})
    assert plan.metrics_login  # scraped by the Tencent Prometheus through the tunnel
    installed = host.step(monitoring.monitoring_step("db", plan.monitoring_plan), "", timeout=180)
    assert installed.code == 0, installed
    receiver = Receiver().serve_in_background()
    try:
        stdin = heartbeat.heartbeat_stdin(receiver.url.replace("/hook", "/ping/database-host"))
        # A window of 2 s (the plan's is 6 minutes: the longest scrape interval and a run).
        step = heartbeat.heartbeat_step("db", plan.monitoring_plan, stdin, scraped_within_s=2)
        first = host.step(step, stdin)
        assert first.code == 0, first
        assert "heartbeat: first run: the peer's scrapes are counted from now" in first.stdout, first

        def scrape() -> None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                response.read()

        scrape()
        scrape()
        scraped = beat(host, plan.paths)
        assert scraped.code == 0, scraped
        assert "scraped this host 2 time(s) since the last run, last 0 s ago" in scraped.stdout, scraped
        assert receiver.pings == ["/ping/database-host"]
        # A run without a scrape inside the window (a scrape interval longer than the timer's): a ping.
        within = beat(host, plan.paths)
        assert within.code == 0, within
        assert len(receiver.pings) == 2

        # Nobody scrapes past the window: the peer host, its Prometheus or the tunnel is down.
        time.sleep(3)
        unscraped = beat(host, plan.paths)
        assert unscraped.code == 1, unscraped
        assert "nobody has scraped this host for more than 2 s" in unscraped.stdout, unscraped
        assert len(receiver.pings) == 2
        metrics = Path(heartbeat.metrics_file(plan.paths)).read_text()
        assert 'platform_heartbeat_signal{mode="scraped"} 0' in metrics
    finally:
        receiver.close()


def query(port: int, expression: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(expression)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["data"]["result"]


def test_the_monitoring_step_starts_prometheus_and_an_alert_reaches_the_webhook(host: SshHost):
    alert_end_to_end(host, "slack")


def alert_end_to_end(host: SshHost, kind: str) -> None:
    """Install, wait for an alert at the receiver (``kind``: slack, or dingtalk through the relay),
    run again unchanged, then switch monitoring off. tests/provisioning/test_monitoring_dingtalk.py
    runs the DingTalk case from its own file, so that the two workers wait for the alerts together."""
    names = ["node-exporter", "prometheus", "alertmanager", "blackbox-exporter"]
    names += ["alert-relay"] if kind == "dingtalk" else []
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    plan = host.plan(
        "tencent",
        extra={"monitoring": {"enabled": True, "scrapeIntervalS": 1, "ports": ports, "receiver": kind}},
    )
    receiver = Receiver().serve_in_background()
    url = receiver.url + ("?access_token=loopback" if kind == "dingtalk" else "")
    stdin = monitoring.webhook_stdin(url, "robot-signing-secret" if kind == "dingtalk" else None)
    try:
        first = host.step(monitoring.monitoring_step("app", plan.monitoring_plan), stdin, timeout=180)
        assert first.code == 0, first
        for program in names:
            assert f"monitoring: {program} (re)started" in first.stdout
        webhook = Path(plan.paths.secrets) / "monitoring/webhook-url"
        assert oct(webhook.stat().st_mode & 0o777) == "0o600"
        assert receiver.url not in (Path(plan.paths.monitoring) / "alertmanager.yml").read_text()
        assert oct((Path(plan.paths.secrets) / "monitoring/signing-secret").stat().st_mode & 0o777) == "0o600"

        # Prometheus scrapes node exporter.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not query(ports["prometheus"], 'up{job="node-exporter"} == 1'):
            time.sleep(0.5)
        assert query(ports["prometheus"], 'up{job="node-exporter"} == 1')

        # A backup that last succeeded at the epoch: BackupTooOld fires and reaches the webhook.
        metrics = Path(plan.paths.state) / "metrics"
        (metrics / "backup_production-mysql.prom").write_text(
            'platform_backup_last_success_timestamp_seconds{database="production-mysql",engine="mysql"} 0\n'
        )
        deadline = time.monotonic() + 120  # group_wait is 30 s
        while time.monotonic() < deadline and not receiver.bodies:
            time.sleep(0.5)
        assert receiver.bodies, "no alert reached the webhook within 120 s"
        text = json.dumps(receiver.bodies[0])
        assert "BackupTooOld" in text
        assert "the last good backup of production-mysql is older than 26h" in text
        if kind == "dingtalk":  # through the relay: DingTalk's own message, signed
            assert receiver.bodies[0]["msgtype"] == "markdown"
            assert receiver.bodies[0]["markdown"]["title"] == "[FIRING:1] BackupTooOld"
            assert receiver.queries[0].keys() == {"access_token", "timestamp", "sign"}

        pids = host.service_pids()
        for workload in plan.monitoring_workloads:
            unit = monitoring.unit_name(workload.name)
            assert unit in pids, f"{unit} is not running"
            if kind == "slack" or workload.name == "alert-relay":  # each program measured once
                RESIDENT.append((workload.name, round(resident_mib(pids[unit]), 1), float(workload.memory_mib)))

        again = host.step(monitoring.monitoring_step("app", plan.monitoring_plan), stdin, timeout=180)
        assert again.code == 0, again
        assert again.stdout.strip() == "monitoring: unchanged"
        if kind == "slack":
            dead_mans_switch(host, plan, receiver)

        # Monitoring switched off: every program stopped and its unit removed (the memory the plan
        # no longer counts is free); nothing else on the host is touched.
        off = host.plan("tencent", extra={"monitoring": {"enabled": False}})
        retired = host.step(monitoring.monitoring_step("app", off.monitoring_plan), "", timeout=180)
        assert retired.code == 0, retired
        running = host.service_pids()
        for workload in plan.monitoring_workloads:
            unit = monitoring.unit_name(workload.name)
            assert f"monitoring: {unit} stopped and removed (no longer in the plan)" in retired.stdout
            assert unit not in running
            assert not (Path(plan.paths.units) / unit).exists()
    finally:
        receiver.close()


def test_the_health_probe_passes_an_engine_that_answers_and_fails_one_that_is_not_ready(tmp_path: Path):
    """Debian's blackbox exporter with the rendered ``http_answers`` module, against an HTTP server
    on loopback playing each engine: Neo4j's 200, Elasticsearch's 401 without credentials (the node
    answers), Weaviate's 503 before it is ready (fails), and a port that accepts and never answers."""
    statuses = {"/": 200, "/es": 401, "/v1/.well-known/ready": 503}

    class Engine(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses.get(self.path, 404))
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """No access log."""

    engine = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    silent = socket.socket()  # accepts (the kernel's backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    (port,) = free_ports(1)
    (tmp_path / "blackbox.yml").write_text(yaml.safe_dump(monitoring.BLACKBOX_CONFIG))
    blackbox = subprocess.Popen(
        [
            monitoring.binary_of("blackbox-exporter"),
            f"--config.file={tmp_path / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:

        def success(target: str) -> str:
            url = f"http://127.0.0.1:{port}/probe?module=http_answers&target={urllib.parse.quote(target)}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=10) as response:
                        page = response.read().decode()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            return re.search(r"^probe_success (\d)$", page, re.MULTILINE)[1]  # type: ignore[index]

        served = f"http://127.0.0.1:{engine.server_address[1]}"
        assert success(f"{served}/") == "1"  # Neo4j's discovery document
        assert success(f"{served}/es") == "1"  # Elasticsearch asks for credentials: it answers
        assert success(f"{served}/v1/.well-known/ready") == "0"  # Weaviate not ready
        assert success(f"http://127.0.0.1:{silent.getsockname()[1]}/") == "0"  # a hung engine (5 s)
    finally:
        blackbox.kill()
        blackbox.wait(timeout=10)
        engine.shutdown()
        engine.server_close()
        silent.close()
