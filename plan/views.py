"""Narrow views of the plan: what a component needs, and nothing else of the plan.

A component takes the sections it reads (``plan.backups``, ``plan.paths``, a ``Database``) or
one of these views, never the whole ``Plan``: its signature says what a change to the stack file
can reach, and a test builds its input without a whole plan. Only the composition roots take a
``Plan``: ``program.py`` and the two provisioning components that lay out a host's steps
(``Databases``, ``Services``); ``tests/policies/test_facts.py`` holds the rest to that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plan.schema import (
    METRICS_LOGIN,
    Database,
    ExistingWorkload,
    Firewall,
    HostCommon,
    Monitoring,
    MonitoringWorkload,
    Paths,
    Service,
)
from policies.facts import SCRAPED_EXPORTERS

Workload = Database | Service | ExistingWorkload | MonitoringWorkload


@dataclass(frozen=True)
class Layout:
    """Where the platform lives on its host, and whether a command there runs through ``sudo -n``
    (a non-root SSH user): what every provisioning step needs."""

    paths: Paths
    sudo: bool


@dataclass(frozen=True)
class HostCheck:
    """What the host check (host_check.sh) holds the host to before anything changes on it."""

    host: HostCommon
    workloads: tuple[Workload, ...]
    """Every workload of the plan: their ports are the plan's."""
    existing: tuple[ExistingWorkload, ...]
    """The engines already on the host: their listeners are expected."""


@dataclass(frozen=True)
class PortPlan:
    """What the host's firewall opens and where its egress may go."""

    ssh_port: int
    firewall: Firewall
    workloads: tuple[Workload, ...]
    peer_database_ports: tuple[int, ...]
    """The peer's database ports this host reaches (``Plan.peer_database_ports``)."""
    peer_monitoring_ports: tuple[int, ...]
    """The peer's SSH port, when this host's Prometheus scrapes the peer through the metrics tunnel
    (``Plan.peer_monitoring_ports``)."""
    ssh_from_peer: bool = False
    """The peer's Prometheus scrapes this host through the metrics tunnel: SSH from the peer's /32."""


@dataclass(frozen=True)
class MetricsTunnel:
    """The scraped host's end of the metrics tunnel, as its stack exports it (``metricsTunnel``):
    whom the tunnel logs in as, on which SSH port, the host key it pins, and each exporter's port on
    that host's loopback. The key itself is a secret output of its own (``metricsTunnelKey``)."""

    user: str
    ssh_port: int
    host_key: str
    exporters: tuple[tuple[str, int], ...]

    def output(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "sshPort": self.ssh_port,
            "hostKey": self.host_key,
            "exporters": [{"name": name, "port": port} for name, port in self.exporters],
        }


@dataclass(frozen=True)
class MonitoringPlan:
    """What the monitoring step installs and configures on one host."""

    settings: Monitoring
    layout: Layout
    workloads: tuple[MonitoringWorkload, ...]
    """The monitoring programs of this host (``Plan.monitoring_workloads``)."""
    runs_prometheus: bool
    host: str
    """This host's name in the alerts' ``host`` label (its cloud: alibaba or tencent)."""
    peer_host: str
    """The peer's, for the targets Prometheus scrapes there."""
    peer_address: str
    tunnel: MetricsTunnel | None
    """The peer's end of the metrics tunnel, as its stack exports it (``metrics_tunnel_of``): the
    peer's exporters are scraped through it. None: the peer's exporters are not scraped (no
    ``databaseStack``, or a peer stack that exports no tunnel)."""
    peer_databases: tuple[tuple[str, int], ...]
    """The peer's database ports Prometheus probes with a TCP connect, (workload, port): its
    default plan's, or what its stack exports (``peer_databases_of``)."""
    services: tuple[Service, ...]
    databases: tuple[Database, ...]
    exported: Mapping[str, Database]
    """Exporter -> the database it watches (``Plan.exported_databases``)."""
    tls_only: frozenset[str]
    """The databases whose port speaks TLS only (replication sources: a Redis one)."""
    peer_health: tuple[tuple[str, int, str], ...] = ()
    """The peer's database HTTP ports Prometheus asks for health, (workload, port, path): its default
    plan's, or what its stack exports (``peer_health_of``; HTTP_HEALTH_PATHS)."""


def peer_databases_of(ingress: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, int], ...]:
    """The database ports among what the peer's firewall opens to this host (all but the exporters
    an older peer stack opened, and the metrics tunnel's SSH)."""
    found = (
        (str(entry["workload"]), int(entry["port"]))
        for entry in ingress
        if entry.get("workload") not in (*SCRAPED_EXPORTERS, METRICS_LOGIN) and entry.get("protocol", "tcp") == "tcp"
    )
    return tuple(sorted(found, key=lambda pair: pair[1]))


def peer_health_of(ingress: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, int, str], ...]:
    """The HTTP health paths among what the peer's firewall opens to this host (``health``, which a
    peer stack of an earlier version does not export: then none)."""
    found = (
        (str(entry["workload"]), int(entry["port"]), str(entry["health"])) for entry in ingress if entry.get("health")
    )
    return tuple(sorted(found, key=lambda triple: triple[1]))


def metrics_tunnel_of(exported: Mapping[str, Any] | None) -> MetricsTunnel | None:
    """The peer stack's ``metricsTunnel`` output as a ``MetricsTunnel`` (None when it exports none:
    its monitoring is off, or it was deployed by a version without the tunnel)."""
    if not exported:
        return None
    return MetricsTunnel(
        user=str(exported["user"]),
        ssh_port=int(exported["sshPort"]),
        host_key=str(exported["hostKey"]),
        exporters=tuple(
            sorted(((str(e["name"]), int(e["port"])) for e in exported["exporters"]), key=lambda pair: pair[1])
        ),
    )
