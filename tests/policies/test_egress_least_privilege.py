"""egress-least-privilege: egress is an allowlist that ends in deny-all, on both clouds."""

from __future__ import annotations

import copy
from functools import cache

from policies.egress import DEFAULT_ALLOWED
from tests.policies.shapes import (
    alibaba_rule,
    edit_inputs,
    flagged,
    shipped,
    shipped_and_created_groups,
    violations,
    with_resources,
    without,
)


def _smtp_before_deny(inputs):
    inputs["egresses"].insert(-1, {"action": "ACCEPT", "protocol": "TCP", "port": "25", "cidrBlock": "0.0.0.0/0"})


def _deny_first(inputs):
    inputs["egresses"] = inputs["egresses"][-1:] + inputs["egresses"][:-1]


def _egress(name: str, firewall, **fields):
    return alibaba_rule(name, firewall, type="egress", **fields)


@cache
def passing_resources():
    return shipped_and_created_groups()


@cache
def failing_resources():
    alibaba, tencent = shipped("alibaba"), shipped("tencent")
    firewall = alibaba.named("alibaba-fw")
    return {
        "alibaba_all_traffic_to_the_world": with_resources(
            alibaba, _egress("out-all", firewall, ipProtocol="all", portRange="-1/-1")
        ),
        "alibaba_mysql_to_a_stranger": with_resources(
            alibaba, _egress("out-3306", firewall, portRange="3306/3306", cidrIp="198.51.100.7/32")
        ),
        "alibaba_without_the_deny_all": without(alibaba, "alibaba-fw-out-drop-all-all-0-0-0-0-0"),
        "tencent_smtp_to_the_world": edit_inputs(tencent, "tencent-fw-rules", _smtp_before_deny),
        "tencent_deny_all_first": edit_inputs(tencent, "tencent-fw-rules", _deny_first),
    }


def test_egress_least_privilege_passes_and_fails_the_named_fixtures():
    fixtures = {**passing_resources(), **failing_resources()}
    assert flagged(fixtures, "egress-least-privilege") == set(failing_resources())


def test_messages_say_what_is_allowed_and_why_it_is_not():
    def messages(name):
        return [v.message for v in violations(failing_resources()[name], "egress-least-privilege")]

    assert messages("alibaba_all_traffic_to_the_world") == [
        "out-all: accept all all ports to 0.0.0.0/0: allows every protocol to the whole Internet"
    ]
    assert messages("alibaba_mysql_to_a_stranger") == [
        "out-3306: accept tcp 3306 to 198.51.100.7/32: tcp/3306 to 198.51.100.7/32 is not on the egress allowlist"
    ]
    assert messages("alibaba_without_the_deny_all") == [
        "group sg-wz9example000000001: no deny-all egress rule, so the cloud's default lets every other outbound "
        "connection out; end the egress rules with a drop of all protocols to 0.0.0.0/0"
    ]
    assert messages("tencent_smtp_to_the_world") == [
        "tencent-fw-rules egresses[14]: accept tcp 25 to 0.0.0.0/0: tcp/25 to 0.0.0.0/0 is not on the egress allowlist"
    ]
    (deny_first,) = messages("tencent_deny_all_first")
    assert deny_first.startswith(
        "group sg-example1: tencent-fw-rules egresses[0]: drop all all ports to 0.0.0.0/0 is not last"
    )


def test_the_peer_database_ports_go_to_the_plans_peer_only():
    alibaba = shipped("alibaba")
    to_peer = _egress("out-5432", alibaba.named("alibaba-fw"), portRange="5432/5432", cidrIp="101.33.251.158/32")
    assert violations(with_resources(alibaba, to_peer), "egress-least-privilege") == []


def test_the_allowlist_is_pack_config():
    alibaba = shipped("alibaba")
    run = with_resources(alibaba, _egress("out-25", alibaba.named("alibaba-fw"), portRange="25/25"))
    relay = {"protocol": "tcp", "port": 25, "to": "0.0.0.0/0", "why": "mail relay"}
    assert violations(run, "egress-least-privilege") != []
    config = {"egress-least-privilege": {"allowed": [*DEFAULT_ALLOWED, relay]}}
    assert violations(run, "egress-least-privilege", config) == []
    # The allowlist in the config replaces the default one: without DNS, HTTP(S) and NTP the
    # shipped stack's five rules for them fail.
    narrowed = {"egress-least-privilege": {"allowed": [relay]}}
    assert len(violations(shipped("alibaba"), "egress-least-privilege", narrowed)) == 5


def _peer_port_before_deny(port: int):
    def edit(inputs):
        rule = {"action": "ACCEPT", "protocol": "TCP", "port": str(port), "cidrBlock": "47.115.168.107/32"}
        inputs["egresses"].insert(-1, rule)

    return edit


def _serves(port: int):
    """The firewall component as it registers the peer's ports read from the peer stack's peerIngress."""

    def edit(run):
        firewall = run.named("tencent-fw")
        firewall.outputs = {**firewall.outputs, "peerPorts": [*firewall.outputs["peerPorts"], float(port)]}
        return run

    return edit


def test_a_port_the_peer_serves_may_be_reached_and_one_it_does_not_may_not():
    """A database moved to 3307 on the Alibaba host: the Tencent egress to 3307 passes when the
    firewall component says the peer serves it (its stack's peerIngress), and fails otherwise."""
    tencent = edit_inputs(shipped("tencent"), "tencent-fw-rules", _peer_port_before_deny(3307))
    refused = violations(tencent, "egress-least-privilege")
    assert [v.message for v in refused] == [
        "tencent-fw-rules egresses[14]: accept tcp 3307 to 47.115.168.107/32: tcp/3307 to 47.115.168.107/32 is not "
        "on the egress allowlist"
    ]
    served = _serves(3307)(copy.deepcopy(tencent))
    assert violations(served, "egress-least-privilege") == []
