"""Firewall rules derived from the plan: the only place the port list becomes rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from plan import HTTP_HEALTH_PATHS, METRICS_LOGIN, Database, Exposure, PortPlan, Workload

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


@dataclass(frozen=True)
class PeerPort:
    """A port the peer host admits from this one: where this host's egress may go."""

    port: int
    protocol: Literal["tcp", "udp"]
    description: str


def default_peer_ports(ports: PortPlan) -> tuple[PeerPort, ...]:
    """The peer's ports as its default plan has them (``platform:firewall.peerDatabasePorts`` when set):
    what this host reaches when no stack reference says what the peer runs."""
    peer = [PeerPort(port, "tcp", "peer database") for port in ports.peer_database_ports]
    peer += [
        PeerPort(port, "tcp", "peer SSH (the metrics tunnel)")
        for port in ports.peer_monitoring_ports
        if port not in ports.peer_database_ports
    ]
    return tuple(peer)


def exported_peer_ports(ingress: Sequence[Mapping[str, Any]]) -> tuple[PeerPort, ...]:
    """The peer's ports as its stack exports them (``peerIngress``: what its firewall opens to this host)."""
    found: dict[tuple[int, Literal["tcp", "udp"]], str] = {}
    for entry in ingress:
        protocol: Literal["tcp", "udp"] = "udp" if entry.get("protocol") == "udp" else "tcp"
        found[int(entry["port"]), protocol] = str(entry.get("workload", ""))
    return tuple(PeerPort(port, protocol, f"peer {name}".strip()) for (port, protocol), name in sorted(found.items()))


def peer_ingress(ports: PortPlan) -> list[dict[str, Any]]:
    """What this host's firewall opens to the peer, as the stack exports it for the peer's egress."""
    opened = [
        {"port": spec.port, "protocol": spec.protocol, "workload": workload.name, **_health(workload, index)}
        for workload in ports.workloads
        for index, spec in enumerate(workload.ports)
        if spec.expose == Exposure.PEER
    ]
    if ports.ssh_from_peer:
        opened.append({"port": ports.ssh_port, "protocol": "tcp", "workload": METRICS_LOGIN})
    return opened


def _health(workload: Workload, index: int) -> dict[str, str]:
    """The path the peer's Prometheus asks on a database's HTTP port (its first), if it has one."""
    if isinstance(workload, Database) and index == 0 and workload.kind in HTTP_HEALTH_PATHS:
        return {"health": HTTP_HEALTH_PATHS[workload.kind]}
    return {}


def firewall_rules(ports: PortPlan, peer_ports: Sequence[PeerPort] | None = None) -> tuple[Rule, ...]:
    """Ingress then egress, each allowlist first and a deny-everything rule last. ``peer_ports``: where
    egress to the peer may go (default: ``default_peer_ports``)."""
    return (*_ingress(ports), *_egress(ports, default_peer_ports(ports) if peer_ports is None else peer_ports))


def _ingress(ports: PortPlan) -> tuple[Rule, ...]:
    sources = {
        Exposure.PUBLIC: (ANYWHERE,),
        Exposure.PEER: (ports.firewall.peer_cidr,),
        Exposure.ADMINS: ports.firewall.admin_cidrs,
    }
    rules = [
        Rule("ingress", "tcp", ports.ssh_port, cidr, "accept", "SSH from admins") for cidr in ports.firewall.admin_cidrs
    ]
    if ports.ssh_from_peer:
        # The metrics tunnel's login: a key that may open forwards to the exporters and nothing else.
        rules.append(
            Rule(
                "ingress",
                "tcp",
                ports.ssh_port,
                ports.firewall.peer_cidr,
                "accept",
                "SSH from the peer: the metrics tunnel",
            )
        )
    for workload in ports.workloads:
        for spec in workload.ports:
            for cidr in sources.get(spec.expose, ()):
                rules.append(
                    Rule(
                        "ingress", spec.protocol, spec.port, cidr, "accept", f"{workload.name}: {spec.purpose}".strip()
                    )
                )
    rules.append(Rule("ingress", "all", None, ANYWHERE, "drop", "deny everything else"))
    return tuple(rules)


def _egress(ports: PortPlan, peer_ports: Sequence[PeerPort]) -> tuple[Rule, ...]:
    allow = [
        Rule("egress", "udp", 53, ANYWHERE, "accept", "DNS"),
        Rule("egress", "tcp", 53, ANYWHERE, "accept", "DNS over TCP"),
        Rule("egress", "tcp", 80, ANYWHERE, "accept", "HTTP (packages, images)"),
        Rule("egress", "tcp", 443, ANYWHERE, "accept", "HTTPS (packages, images)"),
        Rule("egress", "udp", 123, ANYWHERE, "accept", "NTP"),
    ]
    allow += [
        Rule("egress", peer.protocol, peer.port, ports.firewall.peer_cidr, "accept", peer.description)
        for peer in peer_ports
    ]
    return (*allow, Rule("egress", "all", None, ANYWHERE, "drop", "deny everything else"))
