"""Which connections between the two hosts and the Internet the plans need, and which they forbid
(TCP connections, and UDP datagrams that are answered).

The expectation is read from the plans, never from the rules under test: a port is reachable from a
source when the destination's plan exposes it to that source (``public``: anyone; ``peer``: the other
host; ``admins``: the admin CIDRs; SSH: the admins, and the peer when it logs in for the metrics
tunnel) and the source's plan lets it out (a host's
egress reaches the Internet on the design's outbound allowlist, and the peer on the ports the peer
exposes to it). Everything else, including a port no plan declares, must be refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from plan import Exposure, Plan

# The rehearsal's addresses (documentation ranges, RFC 5737); its stack files use the same.
ALIBABA_ADDRESS = "192.0.2.10"
TENCENT_ADDRESS = "198.51.100.20"
ADMIN_ADDRESS = "203.0.113.5"
INTERNET_ADDRESS = "203.0.113.200"
# DESIGN.md, least-privilege outbound: DNS, HTTP and HTTPS for packages and images, NTP.
OUTBOUND = {"tcp": (53, 80, 443), "udp": (53, 123)}
# What the Internet host listens on: the allowlist, and ports outside it (SMTP, an alternative HTTPS,
# syslog, SNMP).
INTERNET_ENDPOINTS = (
    *((port, "tcp") for port in (*OUTBOUND["tcp"], 25, 8443)),
    *((port, "udp") for port in (*OUTBOUND["udp"], 161, 514)),
)
# Ports no plan declares, listened on by both hosts: a rule that opens them is a hole.
UNDECLARED_PORTS = (2375, 11211)


@dataclass(frozen=True)
class Flow:
    source: str  # "alibaba", "tencent", "internet" or "admin" (an address of the Internet host)
    destination: str  # "alibaba", "tencent" or "internet"
    port: int
    what: str  # what listens there, by the plan
    expected: bool
    protocol: str = "tcp"

    @property
    def namespace(self) -> str:
        """The namespace the connection starts in."""
        return "internet" if self.source == "admin" else self.source

    @property
    def source_address(self) -> str:
        return ADDRESSES[self.source]

    @property
    def destination_address(self) -> str:
        return ADDRESSES[self.destination]


ADDRESSES = {
    "alibaba": ALIBABA_ADDRESS,
    "tencent": TENCENT_ADDRESS,
    "admin": ADMIN_ADDRESS,
    "internet": INTERNET_ADDRESS,
}


Endpoint = tuple[int, str]  # port, protocol


def listened_ports(plan: Plan) -> dict[Endpoint, str]:
    """What listens on a host: every port of its plan, SSH, and the undeclared ones."""
    ports: dict[Endpoint, str] = {(plan.host.ssh_port, "tcp"): "sshd (a login)"}
    for workload in plan.workloads:
        for spec in workload.ports:
            ports[spec.port, spec.protocol] = f"{workload.name} ({spec.expose})"
    for port in UNDECLARED_PORTS:
        for protocol in ("tcp", "udp"):
            assert (port, protocol) not in ports, f"{port}/{protocol} is declared by the plan: pick another"
            ports[port, protocol] = "undeclared"
    return ports


def expected_flows(plans: dict[str, Plan]) -> list[Flow]:
    """Every connection the rehearsal tries, with what the plans say should happen."""
    flows = []
    for destination, plan in plans.items():
        exposures = _exposures(plan)
        for (port, protocol), what in listened_ports(plan).items():
            for source in ("alibaba", "tencent", "admin", "internet"):
                if source == destination:
                    continue
                exposure = exposures.get((port, protocol))
                admitted = _admitted(plan, exposure, ADDRESSES[source])
                let_out = _let_out(plans, source, plan, exposure, port, protocol)
                flows.append(Flow(source, destination, port, what, admitted and let_out, protocol))
    for source in plans:
        for port, protocol in INTERNET_ENDPOINTS:
            flows.append(Flow(source, "internet", port, "the Internet", port in OUTBOUND[protocol], protocol))
    return flows


def _exposures(plan: Plan) -> dict[Endpoint, Exposure | str]:
    found: dict[Endpoint, Exposure | str] = {(plan.host.ssh_port, "tcp"): "ssh"}
    for workload in plan.workloads:
        for spec in workload.ports:
            found[spec.port, spec.protocol] = spec.expose
    return found


def _admitted(plan: Plan, exposure: Exposure | str | None, source: str) -> bool:
    """Whether the destination's plan admits ``source`` on a port of this exposure."""
    if exposure == Exposure.PUBLIC:
        return True
    if exposure == Exposure.PEER or (exposure == "ssh" and plan.metrics_login and source == plan.firewall.peer_address):
        return source == plan.firewall.peer_address
    if exposure in (Exposure.ADMINS, "ssh"):
        return any(
            ipaddress.ip_address(source) in ipaddress.ip_network(c, strict=False) for c in plan.firewall.admin_cidrs
        )
    return False  # none (loopback only), or no plan declares the port


def _let_out(
    plans: dict[str, Plan], source: str, destination: Plan, exposure: Exposure | str | None, port: int, protocol: str
) -> bool:
    """Whether the source's plan lets the connection out (the Internet host has no group): to the
    outbound allowlist anywhere, and to the peer on what the peer exposes to it."""
    if source not in plans:
        return True
    if port in OUTBOUND[protocol]:
        return True
    to_peer = destination.firewall.peer_address == ADDRESSES[source]
    return to_peer and (exposure == Exposure.PEER or (exposure == "ssh" and destination.metrics_login))


def by_namespace(flows: list[Flow]) -> Iterator[tuple[str, list[Flow]]]:
    for namespace in ("alibaba", "tencent", "internet"):
        chosen = [flow for flow in flows if flow.namespace == namespace]
        if chosen:
            yield namespace, chosen
