"""The monitoring over SSH on loopback with a DingTalk robot: Alertmanager posts to the relay on
the Prometheus host, which delivers a signed DingTalk message (the scenario lives in
test_monitoring_loopback.py; this file only lets pytest-xdist run it beside the Slack one)."""

from __future__ import annotations

from tests.provisioning.harness import SshHost
from tests.provisioning.test_monitoring_loopback import alert_end_to_end, pytestmark  # noqa: F401 - the same skip


def test_an_alert_reaches_a_dingtalk_robot_through_the_relay_signed(host: SshHost):
    alert_end_to_end(host, "dingtalk")
