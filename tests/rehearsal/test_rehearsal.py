"""Both stacks on the rehearsal network: the flows the plans need pass, the rest are refused, and the
rehearsal notices a rule taken out of the program or a port opened that no plan declares.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from policies._rules import Rule
from rehearsal import FOLDER, ROOT, Stack, differences, evaluate, rehearse
from rehearsal.flows import UNDECLARED_PORTS, expected_flows
from rehearsal.network import cannot_run

WHY_NOT = cannot_run()
needs_namespaces = pytest.mark.skipif(WHY_NOT is not None, reason=f"rehearsal: {WHY_NOT}")
REHEARSAL_ONLY = {("host", "publicIp"), ("firewall", "peerAddress"), ("firewall", "adminCidrs"), ("databaseStack",)}


@pytest.fixture(scope="module")
def stacks() -> dict[str, Stack]:
    return evaluate()


def flow(stacks: dict[str, Stack], source: str, destination: str, port: int, protocol: str = "tcp") -> bool:
    (found,) = [
        f
        for f in expected_flows({n: s.plan for n, s in stacks.items()})
        if (f.source, f.destination, f.port, f.protocol) == (source, destination, port, protocol)
    ]
    return found.expected


def test_the_rehearsal_stack_files_are_the_shipped_ones_but_for_their_addresses():
    for stack in ("alibaba", "tencent"):
        shipped = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        rehearsed = yaml.safe_load((FOLDER / f"Pulumi.{stack}.yaml").read_text())["config"]
        for path in REHEARSAL_ONLY:
            for config in (shipped, rehearsed):
                *parents, leaf = path
                holder = config
                for parent in parents:
                    holder = holder.get(f"platform:{parent}" if holder is config else parent, {})
                holder.pop(f"platform:{leaf}" if holder is config else leaf, None)
        assert rehearsed == shipped, f"rehearsal/Pulumi.{stack}.yaml differs from Pulumi.{stack}.yaml"


def test_the_expectations_come_from_the_plans(stacks):
    assert flow(stacks, "tencent", "alibaba", 3306) is True  # exposed to the peer
    assert flow(stacks, "internet", "alibaba", 3306) is False
    assert flow(stacks, "admin", "alibaba", 22) is True
    assert flow(stacks, "internet", "alibaba", 22) is False
    assert flow(stacks, "tencent", "alibaba", 22) is True  # the metrics tunnel's login
    assert flow(stacks, "alibaba", "tencent", 22) is False  # the peer is no admin
    assert flow(stacks, "tencent", "alibaba", 9100) is False  # exporters: loopback, through the tunnel
    assert flow(stacks, "internet", "tencent", 443) is True
    assert flow(stacks, "alibaba", "internet", 443) is True
    assert flow(stacks, "alibaba", "internet", 8443) is False  # outside the outbound allowlist
    assert flow(stacks, "tencent", "internet", 123, "udp") is True  # NTP
    assert flow(stacks, "tencent", "internet", 514, "udp") is False
    for port in UNDECLARED_PORTS:
        assert flow(stacks, "internet", "alibaba", port) is False
        assert flow(stacks, "internet", "alibaba", port, "udp") is False


@needs_namespaces
def test_every_flow_is_as_the_plans_say(stacks):
    results = rehearse(stacks)
    assert differences(results) == []
    opened = {(r.flow.source, r.flow.destination, r.flow.port, r.flow.protocol) for r in results if r.seen}
    assert ("tencent", "alibaba", 3306, "tcp") in opened
    assert ("admin", "tencent", 22, "tcp") in opened
    assert ("alibaba", "internet", 53, "udp") in opened
    assert ("internet", "alibaba", 22, "tcp") not in opened
    assert ("alibaba", "internet", 514, "udp") not in opened
    # The metrics tunnel, as the stacks render it: every exporter through it, nothing else.
    tunnel = {port for source, _, port, protocol in opened if protocol == "tunnel"}
    assert tunnel == {9100, 9104, 9121, 9187}
    assert len([r for r in results if r.flow.protocol == "tunnel" and not r.flow.expected]) == 2


@needs_namespaces
def test_a_rule_taken_out_of_the_program_kills_its_flow(stacks):
    def without_mysql(stack: str, rules: list[Rule]) -> list[Rule]:
        if stack != "alibaba":
            return rules
        return [r for r in rules if not (r.direction == "ingress" and r.action == "accept" and r.opens(3306))]

    wrong = differences(rehearse(stacks, without_mysql))
    assert [(w.flow.source, w.flow.destination, w.flow.port, w.flow.protocol, w.seen) for w in wrong] == [
        ("tencent", "alibaba", 3306, "tcp", False)
    ]


@needs_namespaces
def test_without_the_peer_s_ssh_rule_the_metrics_tunnel_dies(stacks):
    def without_peer_ssh(stack: str, rules: list[Rule]) -> list[Rule]:
        if stack != "alibaba":
            return rules
        return [r for r in rules if not (r.direction == "ingress" and r.opens(22) and r.cidr == "198.51.100.20/32")]

    wrong = differences(rehearse(stacks, without_peer_ssh))
    assert {(w.flow.source, w.flow.destination, w.flow.port, w.flow.protocol, w.seen) for w in wrong} == {
        ("tencent", "alibaba", 22, "tcp", False),
        *(("tencent", "alibaba", port, "tunnel", False) for port in (9100, 9104, 9121, 9187)),
    }


@needs_namespaces
def test_a_login_without_its_restrictions_is_seen_through_the_tunnel(stacks):
    """The tunnel's checks can fail: a key that may listen on the Alibaba host, and one that may not
    open the MySQL exporter's port, show as a remote forward carried and a forward that reads nothing."""

    def looser(options: str) -> str:
        return options.replace(',permitlisten="127.0.0.1:1"', "").replace(',permitopen="127.0.0.1:9104"', "")

    wrong = differences(rehearse(stacks, login=looser))
    assert {(w.flow.port, w.flow.protocol, w.seen) for w in wrong} == {(29999, "tunnel", True), (9104, "tunnel", False)}


@needs_namespaces
def test_a_port_no_plan_declares_opened_to_the_world_is_seen_from_the_internet(stacks):
    port = UNDECLARED_PORTS[0]

    def with_a_hole(stack: str, rules: list[Rule]) -> list[Rule]:
        if stack != "alibaba":
            return rules
        (ssh,) = [r for r in rules if r.direction == "ingress" and r.opens(22) and r.cidr == "203.0.113.5/32"]
        return [replace(ssh, ports=((port, port),), cidr="0.0.0.0/0", where="hole"), *rules]

    wrong = differences(rehearse(stacks, with_a_hole))
    assert {(w.flow.source, w.flow.destination, w.flow.port, w.flow.protocol, w.seen) for w in wrong} == {
        ("internet", "alibaba", port, "tcp", True),
        ("admin", "alibaba", port, "tcp", True),
    }


def test_the_alibaba_group_opens_the_cards_eight_database_ports_to_the_peer_and_ssh_only(stacks):
    """The figure `make rehearse` prints: the design card's eight database ports, and SSH for the
    metrics tunnel; the exporters' metrics take the tunnel."""
    from rehearsal import peer_ports

    opened = peer_ports(stacks["alibaba"])
    databases = {port for port, what in opened.items() if what.startswith("production-")}
    assert sorted(databases) == [3306, 5432, 6379, 7474, 7687, 8080, 9200, 9300]
    assert {port: what for port, what in opened.items() if port not in databases} == {22: "sshd"}
