"""Firewall rules derived from the plan: the only place the port list becomes rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from plan import Exposure, Plan

ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class Rule:
    direction: Literal["ingress", "egress"]
    protocol: Literal["tcp", "udp", "all"]
    port: int | None  # None: every port
    cidr: str
    action: Literal["accept", "drop"]
    description: str

    @property
    def slug(self) -> str:
        """Stable resource-name fragment: the rule's identity, not its position."""
        direction = "in" if self.direction == "ingress" else "out"
        port = "all" if self.port is None else str(self.port)
        cidr = self.cidr.replace(".", "-").replace("/", "-")
        return f"{direction}-{self.action}-{self.protocol}-{port}-{cidr}"


def firewall_rules(plan: Plan) -> tuple[Rule, ...]:
    """Ingress then egress, each allowlist first and a deny-everything rule last."""
    return (*_ingress(plan), *_egress(plan))


def _ingress(plan: Plan) -> tuple[Rule, ...]:
    sources = {
        Exposure.PUBLIC: (ANYWHERE,),
        Exposure.PEER: (plan.firewall.peer_cidr,),
        Exposure.ADMINS: plan.firewall.admin_cidrs,
    }
    rules = [
        Rule("ingress", "tcp", plan.host.ssh_port, cidr, "accept", "SSH from admins")
        for cidr in plan.firewall.admin_cidrs
    ]
    for workload in plan.workloads:
        for spec in workload.ports:
            for cidr in sources.get(spec.expose, ()):
                rules.append(
                    Rule(
                        "ingress", spec.protocol, spec.port, cidr, "accept", f"{workload.name}: {spec.purpose}".strip()
                    )
                )
    rules.append(Rule("ingress", "all", None, ANYWHERE, "drop", "deny everything else"))
    return tuple(rules)


def _egress(plan: Plan) -> tuple[Rule, ...]:
    allow = [
        Rule("egress", "udp", 53, ANYWHERE, "accept", "DNS"),
        Rule("egress", "tcp", 53, ANYWHERE, "accept", "DNS over TCP"),
        Rule("egress", "tcp", 80, ANYWHERE, "accept", "HTTP (packages, images)"),
        Rule("egress", "tcp", 443, ANYWHERE, "accept", "HTTPS (packages, images)"),
        Rule("egress", "udp", 123, ANYWHERE, "accept", "NTP"),
    ]
    allow += [
        Rule("egress", "tcp", port, plan.firewall.peer_cidr, "accept", "peer database")
        for port in plan.peer_database_ports
    ]
    allow += [
        Rule("egress", "tcp", port, plan.firewall.peer_cidr, "accept", "peer exporter (Prometheus scrapes it)")
        for port in plan.peer_monitoring_ports
        if port not in plan.peer_database_ports
    ]
    return (*allow, Rule("egress", "all", None, ANYWHERE, "drop", "deny everything else"))
