"""The security-group translator against each cloud's documented semantics (``rehearsal/nftables.py``
cites them): first as text, then by packets between two namespaces (root only).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pytest

from policies._rules import rules_of
from policies.facts import ALIBABA_RULE, TENCENT_RULE_SET
from rehearsal.network import Host, Network, cannot_run
from rehearsal.nftables import UntranslatableError, ruleset, statement

A, B = "192.0.2.1", "198.51.100.1"
PORT, OTHER = 5000, 5001


def alibaba(direction: str, policy: str, priority: int, cidr: str, port: int | None = PORT, protocol: str = "tcp"):
    props = {
        "type": direction,
        "ipProtocol": protocol,
        "portRange": f"{port}/{port}" if port else "-1/-1",
        "policy": policy,
        "priority": priority,
        "cidrIp": cidr,
    }
    return rules_of(ALIBABA_RULE, props, f"{direction}-{policy}-{priority}-{port}")


def tencent(ingresses: Sequence[tuple[str, str, str]] = (), egresses: Sequence[tuple[str, str, str]] = ()):
    """Entries (action, cidr, port) of one rule set, in order."""

    def entries(rows):
        return [{"action": action, "cidrBlock": cidr, "protocol": "TCP" if port != "ALL" else "ALL", "port": port}
                for action, cidr, port in rows]  # fmt: skip

    return rules_of(TENCENT_RULE_SET, {"ingresses": entries(ingresses), "egresses": entries(egresses)}, "set")


def chain(script: str, direction: str) -> list[str]:
    body = script.split(f"chain {direction} {{", 1)[1].split("}\n", 1)[0]
    return [line.strip() for line in body.strip().splitlines()]


# --- as text ---


def test_alibaba_rules_run_by_priority_and_a_drop_first_at_equal_priority():
    rules = [
        *alibaba("ingress", "accept", 100, "0.0.0.0/0", None, "all"),
        *alibaba("ingress", "accept", 5, A),
        *alibaba("ingress", "drop", 5, A),
        *alibaba("ingress", "accept", 1, B),
    ]
    lines = chain(ruleset(rules, "alibaba"), "ingress")
    assert lines[0] == "type filter hook input priority filter; policy drop;"
    assert lines[1].startswith("ct state established,related accept")
    assert lines[2].startswith('iifname "lo" accept')
    assert [line.split(" comment")[0] for line in lines[3:]] == [
        f"ip saddr {B}/32 tcp dport {{ {PORT} }} accept",
        f"ip saddr {A}/32 tcp dport {{ {PORT} }} drop",
        f"ip saddr {A}/32 tcp dport {{ {PORT} }} accept",
        "meta nfproto ipv4 accept",
    ]


def test_the_implicit_rules_are_each_clouds_own():
    alibaba_script, tencent_script = ruleset([], "alibaba"), ruleset([], "tencent")
    assert "policy accept;" in chain(alibaba_script, "egress")[0]  # a basic group lets everything out
    assert "policy drop;" in chain(alibaba_script, "ingress")[0]
    assert "policy drop;" in chain(tencent_script, "egress")[0]  # a Tencent group without a match rejects
    assert "policy drop;" in chain(tencent_script, "ingress")[0]


def test_tencent_rules_keep_their_order_and_ranges_and_lists_of_ports():
    rules = tencent(ingresses=[("DROP", A, "ALL"), ("ACCEPT", "0.0.0.0/0", "80,443"), ("ACCEPT", B, "8000-8100")])
    lines = [line.split(" comment")[0] for line in chain(ruleset(rules, "tencent"), "ingress")[3:]]
    assert lines == [
        f"ip saddr {A}/32 drop",
        "meta nfproto ipv4 tcp dport { 80, 443 } accept",
        f"ip saddr {B}/32 tcp dport {{ 8000-8100 }} accept",
    ]


def test_egress_matches_the_destination_and_ipv6_its_own_family():
    (rule,) = alibaba("egress", "accept", 1, "2001:db8::/32")
    assert statement(rule).startswith("ip6 daddr 2001:db8::/32 tcp dport { 5000 } accept")


def test_a_rule_naming_another_group_cannot_be_enforced_by_addresses():
    (rule,) = rules_of(ALIBABA_RULE, {"type": "ingress", "ipProtocol": "tcp", "portRange": "1/1",
                                      "sourceSecurityGroupId": "sg-x"}, "by-group")  # fmt: skip
    with pytest.raises(UntranslatableError, match="by-group: names sg-x"):
        statement(rule)


# --- by packets: the kernel enforces what the text says, as the cloud would ---

WHY_NOT = cannot_run()
needs_namespaces = pytest.mark.skipif(WHY_NOT is not None, reason=f"rehearsal: {WHY_NOT}")


@pytest.fixture(scope="module")
def pair() -> Iterator[Network]:
    if WHY_NOT is not None:
        pytest.skip(f"rehearsal: {WHY_NOT}")
    with Network([Host("a", (A,)), Host("b", (B,))], prefix=f"rhsem{os.getpid()}") as network:
        network.listen("b", [(PORT, "tcp"), (OTHER, "tcp"), (PORT, "udp")])
        yield network


def reaches(network: Network, a_rules, a_cloud: str, b_rules, b_cloud: str, port: int = PORT, protocol="tcp") -> bool:
    network.enforce("a", ruleset(a_rules, a_cloud))
    network.enforce("b", ruleset(b_rules, b_cloud))
    (seen,) = network.probe("a", [(A, B, port, protocol)])
    return seen


@needs_namespaces
@pytest.mark.parametrize(
    ("b_rules", "open_"),
    [
        ([], False),  # inbound: nothing admits it
        (alibaba("ingress", "accept", 10, A), True),
        (
            [*alibaba("ingress", "accept", 10, A), *alibaba("ingress", "drop", 10, A)],
            False,
        ),  # drop wins at equal priority
        ([*alibaba("ingress", "accept", 1, A), *alibaba("ingress", "drop", 2, "0.0.0.0/0", None, "all")], True),
        ([*alibaba("ingress", "drop", 1, A), *alibaba("ingress", "accept", 2, A)], False),  # lower number first
    ],
)
def test_alibaba_semantics_by_packets(pair: Network, b_rules, open_: bool):
    assert reaches(pair, [], "alibaba", b_rules, "alibaba") is open_  # a: no rule, all outbound allowed


@needs_namespaces
@pytest.mark.parametrize(
    ("a_rules", "b_rules", "open_"),
    [
        ([], tencent(ingresses=[("ACCEPT", A, str(PORT))]), False),  # outbound: nothing admits it
        (tencent(egresses=[("ACCEPT", B, str(PORT))]), tencent(ingresses=[("ACCEPT", A, str(PORT))]), True),
        (tencent(egresses=[("ACCEPT", B, "ALL")]), tencent(ingresses=[("ACCEPT", A, str(PORT)), ("DROP", A, "ALL")]),
         True),
        (tencent(egresses=[("ACCEPT", B, "ALL")]), tencent(ingresses=[("DROP", A, "ALL"), ("ACCEPT", A, str(PORT))]),
         False),  # the first match decides
    ],
)  # fmt: skip
def test_tencent_semantics_by_packets(pair: Network, a_rules, b_rules, open_: bool):
    assert reaches(pair, a_rules, "tencent", b_rules, "tencent") is open_


@needs_namespaces
def test_a_group_is_stateful_the_reply_of_an_admitted_session_passes_any_egress_rule(pair: Network):
    b_rules = [*alibaba("ingress", "accept", 1, A), *alibaba("egress", "drop", 1, "0.0.0.0/0", None, "all")]
    assert reaches(pair, [], "alibaba", b_rules, "alibaba") is True
    assert reaches(pair, [], "alibaba", b_rules, "alibaba", port=OTHER) is False


@needs_namespaces
def test_udp_is_its_own_protocol_and_its_answer_passes_as_part_of_the_session(pair: Network):
    udp = [*alibaba("ingress", "accept", 1, A, PORT, "udp"), *alibaba("egress", "drop", 1, "0.0.0.0/0", None, "all")]
    assert reaches(pair, [], "alibaba", udp, "alibaba", protocol="udp") is True
    assert reaches(pair, [], "alibaba", alibaba("ingress", "accept", 1, A), "alibaba", protocol="udp") is False
