"""The plan itself: its sections, the cross-field checks (plan.validation) and the views derived from it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import (
    Field,
    model_validator,
)

from plan import validation
from plan.defaults import DEFAULT_DATABASES, DEFAULT_EXISTING, with_defaults
from plan.props import plan_props
from plan.schema import (
    BACKUP_JOBS,
    BACKUP_RUNNER_MEMORY_MIB,
    EXPORTER_OF_KIND,
    FREE_TEXT_FIELDS,
    HTTP_HEALTH_PATHS,
    METRICS_LOGIN,
    METRICS_LOGIN_MIB,
    METRICS_TUNNEL,
    METRICS_TUNNEL_MIB,
    MONITORING_PROGRAMS,
    NAMESPACE,
    REPLICABLE_KINDS,
    TUNNEL_PORT_OFFSET,
    Backups,
    Cloud,
    Database,
    DatabaseKind,
    ExistingWorkload,
    Firewall,
    Host,
    Model,
    Monitoring,
    MonitoringWorkload,
    Network,
    Omit,
    Paths,
    PortSpec,
    Proxy,
    Receiver,
    Replication,
    Retired,
    Service,
    StackName,
)
from plan.views import HostCheck, Layout, MonitoringPlan, PortPlan
from plan_values import (
    Name,
    example_reason,
    shown,
)


class Plan(Model):
    cloud: Cloud
    host: Host
    network: Network = Network()
    firewall: Firewall
    databases: tuple[Database, ...] = ()
    services: tuple[Service, ...] = ()
    batches: tuple[tuple[Name, ...], ...] = ()
    existing: tuple[ExistingWorkload, ...] = ()
    retired: Retired = Retired()
    omit: Omit = Omit()
    paths: Paths = Paths()
    backups: Backups = Backups()
    replication: Replication = Replication()
    proxy: Proxy | None = None
    monitoring: Monitoring = Monitoring()
    database_stack: StackName | None = Field(
        default=None,
        description="tencent: the alibaba stack whose outputs the services and replicas read (a StackReference)",
    )

    @model_validator(mode="before")
    @classmethod
    def _cloud_defaults(cls, data: Any) -> Any:
        """The default workloads (docs/PROVENANCE.md), patched by the stack's entries (``with_defaults``)."""
        return with_defaults(data)

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        validation.check(self)
        return self

    @property
    def source_stack(self) -> str | None:
        """The Alibaba stack this one reads (databaseStack, or the older replication.sourceStack)."""
        return self.database_stack or self.replication.source_stack

    @property
    def source_stack_key(self) -> str:
        """The config key that names it, as the stack file spells it (for error messages)."""
        return (
            "replication.sourceStack"
            if self.database_stack is None and self.replication.source_stack
            else "databaseStack"
        )

    def located_workloads(self) -> Iterator[tuple[str, Database | Service | ExistingWorkload | MonitoringWorkload]]:
        """Each workload and where the stack file puts it: ``databases[production-mysql]`` (a patched
        list's position is not the stack file's, the name is), ``monitoring`` for a derived one."""
        for section in ("existing", "databases", "services"):  # what was there first owns a port
            for workload in getattr(self, section):
                yield f"{section}[{workload.name}]", workload
        for workload in self.monitoring_workloads:
            yield f"monitoring[{workload.name}]", workload

    @property
    def workloads(self) -> tuple[Database | Service | ExistingWorkload | MonitoringWorkload, ...]:
        return (*self.existing, *self.databases, *self.services, *self.monitoring_workloads)

    @property
    def runs_prometheus(self) -> bool:
        if not self.monitoring.enabled:
            return False
        return self.cloud == Cloud.TENCENT if self.monitoring.prometheus is None else self.monitoring.prometheus

    @property
    def monitoring_workloads(self) -> tuple[MonitoringWorkload, ...]:
        """Node exporter, an exporter per MySQL, PostgreSQL and Redis database, and on the Prometheus
        host Prometheus, Alertmanager and the blackbox exporter. Every exporter listens on loopback:
        the peer's reach this host's Prometheus through the metrics tunnel (its client here, its
        login on the scraped host), never through a port of the security group."""
        if not self.monitoring.enabled:
            return ()
        names = ["node-exporter", *sorted(self.exported_databases)]
        if self.runs_prometheus:
            names += ["prometheus", "alertmanager", "blackbox-exporter"]
            if self.monitoring.receiver == Receiver.DINGTALK:
                names.append("alert-relay")
            if self.monitoring.grafana:
                names.append("grafana")
        programs = tuple(
            MonitoringWorkload(
                name=name,
                ports=(
                    PortSpec(
                        port=self.monitoring.ports.get(name, MONITORING_PROGRAMS[name][0]),
                        purpose=f"{name} metrics" if name.endswith("exporter") else name,
                    ),
                ),
                memory_mib=MONITORING_PROGRAMS[name][1],
            )
            for name in names
        )
        tunnel: tuple[MonitoringWorkload, ...] = ()
        if self.peer_exporters:
            forwards = tuple(
                PortSpec(port=tunnel_port(name), purpose=f"the peer's {name}, through the metrics tunnel")
                for name, _ in self.peer_exporters
            )
            tunnel = (MonitoringWorkload(name=METRICS_TUNNEL, ports=forwards, memory_mib=METRICS_TUNNEL_MIB),)
        if self.metrics_login:
            tunnel = (MonitoringWorkload(name=METRICS_LOGIN, ports=(), memory_mib=METRICS_LOGIN_MIB),)
        return programs + tunnel

    @property
    def metrics_login(self) -> bool:
        """The peer's Prometheus scrapes this host through the metrics tunnel: it admits the peer's
        SSH for the tunnel's login. The Alibaba host, when it runs no Prometheus: the tunnel's key
        reaches the Tencent stack through its StackReference, which only that side has."""
        return self.monitoring.enabled and not self.runs_prometheus and self.cloud == Cloud.ALIBABA

    @property
    def exported_databases(self) -> dict[str, Database]:
        """Exporter -> the database it watches: the first of its kind in the plan (Debian's
        mysqld exporter 0.14 watches one server; the others of a kind go unwatched, which
        ``unexported_databases`` names for the preview's warning)."""
        if not self.monitoring.enabled:
            return {}
        watched: dict[str, Database] = {}
        for db in self.databases:
            exporter = EXPORTER_OF_KIND.get(db.kind.value)
            if exporter is not None:
                watched.setdefault(exporter, db)
        return watched

    @property
    def unexported_databases(self) -> tuple[Database, ...]:
        watched = {db.name for db in self.exported_databases.values()}
        return tuple(
            db
            for db in self.databases
            if self.monitoring.enabled and db.kind.value in EXPORTER_OF_KIND and db.name not in watched
        )

    @property
    def peer_exporters(self) -> tuple[tuple[str, int], ...]:
        """The peer's exporters this host's Prometheus scrapes through the metrics tunnel, (name,
        port) by port, as the peer's default plan has them (its stack's ``metricsTunnel`` output
        overrides them: program.monitor). Only the Tencent Prometheus, and only with
        ``databaseStack``: the tunnel's key is an output of the Alibaba stack."""
        if not self.runs_prometheus or self.cloud != Cloud.TENCENT or self.source_stack is None:
            return ()
        kinds = {d["kind"] for d in DEFAULT_DATABASES}
        names = ["node-exporter", *(EXPORTER_OF_KIND[k] for k in sorted(kinds) if k in EXPORTER_OF_KIND)]
        return tuple(sorted(((name, MONITORING_PROGRAMS[name][0]) for name in names), key=lambda pair: pair[1]))

    @property
    def peer_databases(self) -> tuple[tuple[str, int], ...]:
        """The peer's database ports this host's Prometheus probes, (workload, port) by port, as the
        peer's default plan has them (its stack's ``peerIngress`` output overrides them:
        program.monitor); a port of ``firewall.peerDatabasePorts`` is named by its port."""
        if not self.runs_prometheus:
            return ()
        if self.firewall.peer_database_ports is not None:
            return tuple((f"port-{port}", port) for port in self.firewall.peer_database_ports)
        workloads = (
            (w for w in DEFAULT_EXISTING if w.get("database")) if self.cloud == Cloud.ALIBABA else DEFAULT_DATABASES
        )
        found = {(w["name"], p["port"]) for w in workloads for p in w.get("ports", ())}
        return tuple(sorted(found, key=lambda pair: pair[1]))

    @property
    def peer_health(self) -> tuple[tuple[str, int, str], ...]:
        """The peer's database HTTP ports this host's Prometheus asks for health, (workload, port,
        path), as the peer's default plan has them (its stack's ``peerIngress`` overrides them)."""
        if not self.runs_prometheus or self.firewall.peer_database_ports is not None or self.cloud != Cloud.TENCENT:
            return ()
        found = (
            (d["name"], d["ports"][0]["port"], HTTP_HEALTH_PATHS[DatabaseKind(d["kind"])])
            for d in DEFAULT_DATABASES
            if DatabaseKind(d["kind"]) in HTTP_HEALTH_PATHS and d.get("ports")
        )
        return tuple(sorted(found, key=lambda triple: triple[1]))

    @property
    def peer_monitoring_ports(self) -> tuple[int, ...]:
        """The peer's SSH port when this host's Prometheus scrapes the peer through the metrics tunnel
        (egress to the peer's /32), as its default plan has it."""
        return (22,) if self.peer_exporters else ()

    @property
    def backed_up(self) -> tuple[Database, ...]:
        """The databases backed up on the schedule (all but those with ``backup: {none: ...}``)."""
        return tuple(db for db in self.databases if db.backup is None)

    @property
    def unscheduled_backups(self) -> tuple[str, ...]:
        """The databases whose backup timers the drill's install takes down: those retired or now
        ``backup: none``. One merely dropped from the plan keeps running, so its backups do too."""
        return (*(r.name for r in self.retired.databases), *(db.name for db in self.databases if db.backup is not None))

    @property
    def transient(self) -> tuple[dict[str, Any], ...]:
        """Jobs that run now and then beside the workloads and must fit the same memory budget.

        One backup or restore drill runs at a time (a host-wide lock). A backup's dump runs
        through ``podman exec`` inside its container's own limit, so the most a job adds is a
        drill's: its programs (BACKUP_RUNNER_MEMORY_MIB) and its scratch engine (drillMemoryMib).
        """
        if not self.backed_up:
            return ()
        return (
            {
                "name": BACKUP_JOBS,
                "role": "transient:backup-jobs",
                "memoryMib": BACKUP_RUNNER_MEMORY_MIB + self.backups.drill_memory_mib,
                "family": None,
                "ports": [],
            },
        )

    @property
    def replication_sources(self) -> tuple[Database, ...]:
        """Alibaba databases that accept the peer as a replica (default: every replicable one)."""
        if self.replication.sources is None:
            return tuple(db for db in self.databases if db.kind in REPLICABLE_KINDS)
        return tuple(db for db in self.databases if db.name in self.replication.sources)

    @property
    def replicas(self) -> tuple[ExistingWorkload, ...]:
        """Existing Tencent engines that follow an Alibaba database."""
        return tuple(w for w in self.existing if w.replica_of is not None)

    @property
    def used_mib(self) -> int:
        return sum(w.memory_mib for w in self.workloads) + sum(t["memoryMib"] for t in self.transient)

    @property
    def free_mib(self) -> int:
        """What is left of the usable memory after the workloads and the OS reserve: the one figure
        the stack's ``memory`` output, the preview and the pack's capacity report show."""
        return self.host.memory_mib - self.used_mib - self.host.os_reserve_mib

    def props(self) -> dict[str, Any]:
        """The props every component registers (plan.props: plan_props)."""
        return plan_props(self)

    def example_values(self) -> tuple[tuple[str, str], ...]:
        """Each placeholder left in the plan (``plan_values.example_reason``), as (key, why): the
        values a shipped stack file marks EXAMPLE. A real run refuses them; the offline preview lists them."""
        found: list[tuple[str, str]] = []

        def walk(value: Any, key: str) -> None:
            if isinstance(value, dict):
                for name, inner in value.items():
                    if name not in FREE_TEXT_FIELDS:
                        walk(inner, f"{key}.{name}")
            elif isinstance(value, list):
                for index, inner in enumerate(value):
                    label = inner.get("name") if isinstance(inner, dict) else None
                    walk(inner, f"{key}[{label if isinstance(label, str) else index}]")
            elif isinstance(value, str) and (why := example_reason(value)):
                text = shown(value)
                found.append((key, f"{text} is {why}" if text.startswith("'") else why))

        for field, value in self.model_dump(mode="json", by_alias=True).items():
            walk(value, f"{NAMESPACE}:{field}")
        return tuple(found)

    @property
    def needs_sudo(self) -> bool:
        return self.host.ssh_user != "root"

    @property
    def layout(self) -> Layout:
        return Layout(self.paths, self.needs_sudo)

    @property
    def host_check(self) -> HostCheck:
        return HostCheck(self.host, self.workloads, self.existing)

    @property
    def port_plan(self) -> PortPlan:
        return PortPlan(
            self.host.ssh_port,
            self.firewall,
            self.workloads,
            self.peer_database_ports,
            self.peer_monitoring_ports,
            ssh_from_peer=self.metrics_login,
        )

    @property
    def monitoring_plan(self) -> MonitoringPlan:
        return MonitoringPlan(
            settings=self.monitoring,
            layout=self.layout,
            workloads=self.monitoring_workloads,
            runs_prometheus=self.runs_prometheus,
            host=self.cloud.value,
            peer_host=next(c.value for c in Cloud if c != self.cloud),
            peer_address=self.firewall.peer_address,
            tunnel=None,  # the peer stack's metricsTunnel output fills it in (program.monitor)
            peer_databases=self.peer_databases,
            peer_health=self.peer_health,
            services=self.services,
            databases=self.databases,
            exported=self.exported_databases,
            tls_only=self.tls_only,
        )

    @property
    def tls_engines(self) -> tuple[Database, ...]:
        """The databases the peer reaches, which serve TLS with a certificate of the program's CA: the
        replication sources and the databases with clients."""
        sources = {db.name for db in self.replication_sources}
        return tuple(db for db in self.databases if db.name in sources or db.clients)

    @property
    def tls_only(self) -> frozenset[str]:
        """The databases whose port speaks TLS only (a Redis one's port; MySQL and PostgreSQL refuse
        plain text per user): the TLS engines."""
        return frozenset(db.name for db in self.tls_engines)

    @property
    def peer_database_ports(self) -> tuple[int, ...]:
        """Ports of the peer's databases this host may reach (egress to the peer's /32)."""
        if self.firewall.peer_database_ports is not None:
            return self.firewall.peer_database_ports
        if self.cloud == Cloud.ALIBABA:  # the peer is the Tencent host, with its replicas
            peer_ports = (p for w in DEFAULT_EXISTING if w.get("database") for p in w.get("ports", ()))
        else:  # the peer is the Alibaba database host
            peer_ports = (p for d in DEFAULT_DATABASES for p in d["ports"])
        return tuple(sorted({p["port"] for p in peer_ports}))


def tunnel_port(exporter: str) -> int:
    """Where the metrics tunnel's forward of the peer's ``exporter`` listens on this host's loopback."""
    return MONITORING_PROGRAMS[exporter][0] + TUNNEL_PORT_OFFSET
