"""The dead man's switch as the program registers it: a step of each host with a watcher (the
Watchdog on the Prometheus host, the peer's scrapes on the scraped one), its URL a secret on stdin,
Alertmanager routing the Watchdog to no notifier (amtool's own routing), and one line for a
heartbeat URL the plan cannot use. The script runs over SSH with the real Prometheus, Alertmanager
and node exporter in tests/provisioning/test_monitoring_loopback.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from components.heartbeat import heartbeat_stdin
from components.monitoring import WATCHDOG, WATCHDOG_RECEIVER, alertmanager_config, as_yaml
from plan import PlanError, check_secrets_present, load_plan
from preflight import diff
from tests.stacks import commands, config_for, evaluate, plan_of, step_parameters

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
URL = "https://hc-ping.com/0f5e7b1c-6a1e-4d7b-9d55-1c2f0e3a4b5c"  # a healthchecks.io-shaped ping URL
KEY = "platform:heartbeatUrl"


def test_each_host_with_a_watcher_has_its_heartbeat_and_its_own_condition():
    tencent, alibaba = evaluate("tencent"), evaluate("alibaba")
    watchdog = step_parameters(tencent, "tencent-svc-heartbeat")["SCRIPT_CONTENT"]
    assert "MODE=watchdog" in watchdog
    assert "ALERTMANAGER=127.0.0.1:9093" in watchdog
    # The database host: scraped by the Tencent Prometheus through the tunnel, it watches for that.
    scraped = step_parameters(alibaba, "alibaba-db-heartbeat")["SCRIPT_CONTENT"]
    assert "MODE=scraped" in scraped
    assert "NODE_EXPORTER=127.0.0.1:9100" in scraped
    assert "SCRAPED_WITHIN=360" in scraped  # the longest scrape interval a plan allows, and a run
    (warning,) = [w for w in alibaba.warnings if "platform:heartbeatUrl" in w]
    assert "the peer host, its Prometheus or the metrics tunnel dies" in warning
    # With Prometheus on the Alibaba host, it watches its own Watchdog instead.
    moved = evaluate("alibaba", monitoring={"prometheus": True})
    assert "MODE=watchdog" in step_parameters(moved, "alibaba-db-heartbeat")["SCRIPT_CONTENT"]
    off = evaluate("alibaba", monitoring={"enabled": False})
    assert not [name for name in commands(off) if "heartbeat" in name]


def test_the_url_travels_on_stdin_as_a_secret_and_nowhere_else():
    run = evaluate("tencent", secrets={KEY: URL})
    command = commands(run)["tencent-svc-heartbeat"]
    assert command["stdin"] == f"{URL}\n"
    assert command["logging"] == "none"  # a secret's step logs nothing
    assert URL not in json.dumps({k: v for k, v in command.items() if k != "stdin"})
    parameters = step_parameters(run, "tencent-svc-heartbeat")
    assert parameters["SECRET_FILE"] == "/etc/platform/secrets/monitoring/heartbeat-url"
    assert URL not in json.dumps(parameters)
    assert "OnUnitActiveSec=1min" in parameters["TIMER_CONTENT"]
    assert not [w for w in run.warnings if "heartbeatUrl" in w]


def test_without_a_url_the_preview_says_nobody_watches_the_watcher():
    run = evaluate("tencent")
    (warning,) = [w for w in run.warnings if "platform:heartbeatUrl" in w]
    assert "this host, its Prometheus or its Alertmanager dies, no alert is sent" in warning
    assert commands(run)["tencent-svc-heartbeat"]["stdin"] == ""  # the step removes a former URL


def test_setting_or_removing_the_url_later_is_an_update_of_the_heartbeat_step_only():
    """The next `up` after `pulumi config set --secret platform:heartbeatUrl ...` (and after its
    removal): the step's stdin changes, it re-runs in place; nothing else moves, nothing is replaced."""
    without, with_url = evaluate("tencent"), evaluate("tencent", secrets={KEY: URL})
    for before, after in ((without, with_url), (with_url, without)):
        found = diff.steps(before, after)
        step = found.by_name("tencent-svc-heartbeat")
        assert (step.op, step.changed) == ("update", ("stdin",))
        assert [run.phase for run in step.runs] == ["update"]
        assert {s.name for s in found.changes() if s.new is not None and s.new.custom} == {"tencent-svc-heartbeat"}


def test_a_heartbeat_url_is_one_https_url_and_its_value_is_never_shown():
    config = config_for("tencent")
    for bad in ("http://hc-ping.com/abc", "https://hc-ping.com/a b", 'https://hc-ping.com/a"b', '["https://x/y"]'):
        values = {**config.config, KEY: bad}
        with pytest.raises(PlanError) as raised:
            check_secrets_present(load_plan(values, config.secret_keys | {KEY}), values)
        assert str(raised.value).startswith(f"{KEY}: "), raised.value
        assert bad not in str(raised.value)
    values = {**config.config, KEY: URL}
    check_secrets_present(load_plan(values, config.secret_keys | {KEY}), values)
    with pytest.raises(ValueError, match="one line"):
        heartbeat_stdin(f"{URL}\n{URL}")


@pytest.mark.skipif(not Path(AMTOOL).exists(), reason="needs amtool (Debian's prometheus-alertmanager)")
@pytest.mark.parametrize("receiver", ["slack", "dingtalk"])
def test_alertmanager_routes_the_watchdog_to_no_notifier_and_the_rest_as_before(receiver: str, tmp_path: Path):
    plan = plan_of("tencent", monitoring={"receiver": receiver})
    config = alertmanager_config(plan.monitoring_plan, "/etc/platform/secrets/monitoring/webhook-url")
    assert {"name": WATCHDOG_RECEIVER} in config["receivers"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(as_yaml(config))
    for labels, expected in (([f"alertname={WATCHDOG}"], WATCHDOG_RECEIVER), (["alertname=HostDown"], "platform")):
        routed = subprocess.run(
            [AMTOOL, "config", "routes", "test", f"--config.file={path}", *labels],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert routed.stdout.strip() == expected, routed
