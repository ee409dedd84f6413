"""The Pulumi program: stack config -> validated plan -> components -> stack outputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi
import pulumi_tls as tls
from pulumi.runtime import config as runtime_config
from pulumi_command import remote

from components import uploads
from components.certificates import certificate_check_step, certificate_files
from components.databases import Databases, DatabasesArgs
from components.firewall import Firewall, FirewallArgs
from components.heartbeat import heartbeat_stdin, heartbeat_step
from components.host import Host, HostArgs
from components.metrics_tunnel import KEY_ALGORITHM, authorized_line, login_step
from components.metrics_tunnel import exported as exported_tunnel
from components.monitoring import monitoring_step, webhook_stdin
from components.network import Network, NetworkArgs
from components.offsite import OffHostBackups, OffHostBackupsArgs
from components.pki import ReplicationCredentials, ReplicationCredentialsArgs
from components.provisioning import run_step
from components.rules import peer_ingress as peer_ingress_ports
from components.services import DatabaseEndpoints, ReplicationSource, Services, ServicesArgs
from plan import (
    DEFAULT_REPLICATED_POSTGRES_DATABASE,
    NAMESPACE,
    REPLICATION_USER,
    AdoptedHost,
    Cloud,
    Database,
    DatabaseKind,
    Plan,
    PlanError,
    check_secrets_present,
    client_database,
    client_key_prefix,
    load_plan,
    metrics_tunnel_of,
    peer_databases_of,
    peer_health_of,
)
from policies.facts import SCRAPED_EXPORTERS


def read_plan() -> Plan:
    """The stack's plan, or a clean one-line error (no traceback) before any resource exists."""
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = {key for key in values if runtime_config.is_config_secret(key)}
    secret_keys |= set(runtime_config.get_config_secret_keys_env())
    try:
        plan = load_plan(values, secret_keys)
        check_secrets_present(plan, values)
        return plan
    except PlanError as error:
        raise pulumi.RunError(str(error)) from None


# The project directory: a release to upload (release.upload) is relative to it.
PROJECT_DIR = Path(__file__).resolve().parent


def local_releases(plan: Plan) -> dict[str, uploads.LocalRelease]:
    """Every release to upload, present and digested, or a one-line error before any resource exists."""
    try:
        return uploads.resolve(plan.services, PROJECT_DIR)
    except ValueError as error:
        raise pulumi.RunError(str(error)) from None


def refuse_example_values(plan: Plan) -> None:
    """A real run stops at the placeholders a shipped stack file holds (an example id, a documentation
    address, a digest of zeros), before anything is created: one line naming each key."""
    found = plan.example_values()
    if not found:
        return
    (key, why), rest = found[0], found[1:]
    more = f"; also {', '.join(k for k, _ in rest)}" if rest else ""
    raise pulumi.RunError(
        f"{key}: {why}; replace it with your own before the first `pulumi up` (README: 'Adopting the existing "
        f"hosts'){more}"
    )


# Earlier names of this program's components, per component. A component renamed in a refactor
# keeps its state (and its children's, whose names follow it) only through an alias: list its
# old name here when you rename it. Without one the engine creates the renamed commands (their
# scripts converge, so nothing changes on the host) and forgets the old ones (retained: nothing
# runs), but the preview shows every command as created.
FORMER_NAMES: dict[str, tuple[str, ...]] = {}
# The provisioning component of each kind of workload is named "<stack>-<suffix>"; its commands follow.
PROVISIONING_SUFFIX = {"databases": "db", "services": "svc"}
# The kind each cloud's host is for: its component is always there (it is protected, so one that
# vanished with its last workload would stop the preview).
HOST_ROLE = {Cloud.ALIBABA: "databases", Cloud.TENCENT: "services"}


def provisioned_kinds(plan: Plan) -> tuple[str, ...]:
    """The provisioning components a host gets: its cloud's, and that of any other kind of
    workload its plan lists, so nothing the plan lists is left undeployed (the memory budget
    decides whether it fits)."""
    wanted = {
        "databases": bool(plan.databases or plan.retired.databases),
        "services": bool(plan.services or plan.retired.services or plan.replicas),
    }
    return tuple(kind for kind in PROVISIONING_SUFFIX if kind == HOST_ROLE[plan.cloud] or wanted[kind])


def provisioning_options(name: str, after: pulumi.Resource) -> pulumi.ResourceOptions:
    """Protected (see main), after the firewall, aliased to the component's former names."""
    aliases: list[str | pulumi.Alias] = [pulumi.Alias(name=old) for old in FORMER_NAMES.get(name, ())]
    return pulumi.ResourceOptions(depends_on=[after], protect=True, aliases=aliases or None)


def _alibaba_region() -> str:
    region = pulumi.Config("alicloud").get("region")
    if not region:
        raise pulumi.RunError(
            "alicloud:region: not set; the backup bucket lives in the host's region, e.g. cn-shenzhen"
        )
    return region


def export_replication(plan: Plan, credentials: ReplicationCredentials, public_ip: pulumi.Output[str]) -> None:
    """What the Tencent stack reads through its StackReference: where and how to replicate from.

    ``replication`` is public (addresses, ports, the CA's certificate); ``replicationPasswords``
    is a secret output: the Tencent program hands each password to its replica's command on stdin.
    """
    sources = {
        db.name: {
            "kind": db.kind.value,
            "port": db.ports[0].port,
            "user": REPLICATION_USER,
            "database": DEFAULT_REPLICATED_POSTGRES_DATABASE if db.kind == DatabaseKind.POSTGRES else None,
        }
        for db in plan.replication_sources
    }
    pulumi.export("replication", {"caCert": credentials.ca_cert_pem, "sourceAddress": public_ip, "sources": sources})
    pulumi.export("replicationPasswords", pulumi.Output.secret(credentials.passwords))


def export_databases(plan: Plan, public_ip: pulumi.Output[str], credentials: ReplicationCredentials | None) -> None:
    """What the Tencent services read through their StackReference: each database's endpoint, the
    CA its certificate chains to, and per client (``plan.Database.clients``) its user and what it
    owns (``databases``, public), and each client's password (``databaseClientPasswords``, a secret
    output). The databases' own passwords stay on this stack."""
    tls = {db.name for db in plan.tls_engines}
    ca_cert = credentials.ca_cert_pem if credentials is not None else None
    endpoints = {
        db.name: {
            "kind": db.kind.value,
            "host": public_ip,
            "port": db.ports[0].port,
            "tls": db.name in tls,
            "caCert": ca_cert if db.name in tls else None,
            "clients": {client: client_endpoint(db, client) for client in db.clients},
        }
        for db in plan.databases
    }
    pulumi.export("databases", endpoints)
    passwords = credentials.client_passwords if credentials is not None else {}
    pulumi.export("databaseClientPasswords", pulumi.Output.secret(passwords))


def client_endpoint(db: Database, client: str) -> dict[str, str]:
    """A client's user, and the database (MySQL, PostgreSQL) or key prefix (Redis) it owns."""
    if db.kind == DatabaseKind.REDIS:
        return {"user": client, "database": "", "keyPrefix": client_key_prefix(client)}
    return {"user": client, "database": client_database(client), "keyPrefix": ""}


def database_stack(plan: Plan) -> pulumi.StackReference | None:
    """The one reference to the Alibaba stack (``platform:databaseStack``): its outputs give the
    services' databases, the replicas' sources and where this host's egress to it may go."""
    if plan.cloud != Cloud.TENCENT or plan.source_stack is None:
        return None
    return pulumi.StackReference(plan.source_stack)


def peer_ingress(plan: Plan, reference: pulumi.StackReference | None) -> pulumi.Output[Any] | None:
    """What the Alibaba host's firewall opens to this one, from its stack, unless the plan lists the
    peer's ports itself (``firewall.peerDatabasePorts``). Without either, the egress follows the
    Alibaba default plan, and the preview says so."""
    if plan.cloud != Cloud.TENCENT or plan.firewall.peer_database_ports is not None:
        return None
    if reference is None:
        pulumi.log.warn(
            f"{NAMESPACE}:firewall: the egress to the peer follows the Alibaba default plan's ports, not what the "
            f"Alibaba stack runs (and so do the probes of its database ports): set {NAMESPACE}:databaseStack to "
            "read them from its outputs"
        )
        return None
    return optional_output(
        reference,
        plan,
        "peerIngress",
        "yet (run `pulumi up` on it with this version)",
        "until then the egress to the peer and the probes of its database ports follow the Alibaba default "
        "plan's ports",
    )


def replication_source(plan: Plan, reference: pulumi.StackReference | None) -> ReplicationSource | None:
    """The Alibaba stack's replication outputs, when the plan has replicas."""
    stack = plan.source_stack
    if not plan.replicas or stack is None or reference is None:
        return None
    return ReplicationSource(
        stack=stack,
        replication=stack_output(reference, plan, "replication"),
        passwords=stack_output(reference, plan, "replicationPasswords"),
    )


def database_endpoints(plan: Plan, reference: pulumi.StackReference | None) -> DatabaseEndpoints | None:
    """The Alibaba stack's database outputs, when a service lists databases."""
    stack = plan.source_stack
    if reference is None or stack is None or not any(service.databases for service in plan.services):
        return None
    return DatabaseEndpoints(
        stack=stack,
        databases=stack_output(reference, plan, "databases"),
        passwords=stack_output(reference, plan, "databaseClientPasswords"),
    )


def optional_output(
    reference: pulumi.StackReference, plan: Plan, name: str, why: str, meanwhile: str
) -> pulumi.Output[Any]:
    """An output the referenced stack may lack (``why``): None then, and the preview says what follows
    (``meanwhile``). A stack deployed by an earlier version has none: the tencent preview of the pull
    request that adds it must still run, before the merge deploys alibaba with it."""

    def read(value: Any) -> Any:
        if value is None:
            pulumi.log.warn(
                f"{NAMESPACE}:databaseStack {plan.source_stack!r} has no output {name!r} {why}: {meanwhile}"
            )
        return value

    return reference.get_output(name).apply(read)


def stack_output(reference: pulumi.StackReference, plan: Plan, name: str) -> pulumi.Output[Any]:
    """An output of the referenced stack; a clear error when it has none of that name."""

    def present(value: Any) -> Any:
        if value is None:
            raise pulumi.RunError(
                f"{NAMESPACE}:{plan.source_stack_key} {plan.source_stack!r}: the stack has no output {name!r}; "
                "run `pulumi up` on it first (it exports databases, databaseClientPasswords, peerIngress, "
                "replication and replicationPasswords)"
            )
        return value

    return reference.get_output(name).apply(present)


def main(*, offline: bool = False) -> None:
    """The program. ``offline``: run by the offline gate (``python -m preflight``), which lists the
    example values a stack file still holds instead of stopping at them, so a test stack built on
    documentation addresses can be previewed; everything else is as under the Pulumi CLI."""
    plan = read_plan()
    if not offline:
        refuse_example_values(plan)
    releases = local_releases(plan)
    config = pulumi.Config(NAMESPACE)
    name = pulumi.get_stack()
    reference = database_stack(plan)
    ingress = peer_ingress(plan, reference)
    firewall, host = network_firewall_and_host(plan, name, config, ingress)
    off_host, credentials = cloud_side(plan, name, config, host)
    tunnel_key = metrics_tunnel_key(plan, name)
    connection = host.connection
    components = {kind: f"{name}-{PROVISIONING_SUFFIX[kind]}" for kind in provisioned_kinds(plan)}
    if connection is None:
        # The provisioning component is protected: if it ever drops out of the program (the host key
        # of a provisioned host removed from config), the engine refuses to delete it and the preview
        # fails, instead of forgetting every command of the host.
        pulumi.log.warn(
            "provisioning waits: platform:host.hostKey is not set. Pin the new instance's SSH host key "
            "(see README, 'Pinning a created host's key') and run `pulumi up` again. If this host was "
            f"provisioned before, the engine refuses to delete the protected {', '.join(components.values())}: "
            "set the key back instead."
        )
    else:
        provisioned: dict[str, Databases | Services] = {}
        if "databases" in components:
            provisioned["databases"] = Databases(
                components["databases"],
                DatabasesArgs(
                    plan=plan,
                    connection=connection,
                    passwords=config.require_secret_object("dbPasswords"),
                    off_host=off_host.target if off_host is not None else None,
                    off_host_ready=off_host,
                    replication=credentials,
                ),
                opts=provisioning_options(components["databases"], after=firewall),
            )
        if "services" in components:
            provisioned["services"] = Services(
                components["services"],
                ServicesArgs(
                    plan=plan,
                    connection=connection,
                    replication_source=replication_source(plan, reference),
                    databases=database_endpoints(plan, reference),
                    secrets=config.get_secret_object("serviceSecrets")
                    if any(service.secrets for service in plan.services)
                    else None,
                    uploads=releases,
                ),
                opts=provisioning_options(components["services"], after=firewall),
            )
        if HOST_ROLE[plan.cloud] in provisioned:
            owner = provisioned[HOST_ROLE[plan.cloud]]
            monitor(plan, owner, components[HOST_ROLE[plan.cloud]], connection, config, ingress, reference)
            if isinstance(owner, Databases):
                metrics_login(plan, owner, components["databases"], connection, tunnel_key)
    export_host(plan, host, firewall)


def network_firewall_and_host(
    plan: Plan, name: str, config: pulumi.Config, ingress: pulumi.Output[Any] | None
) -> tuple[Firewall, Host]:
    """The host's network (an adopted host keeps its own), its security group and the instance;
    ``ingress``: what the peer's firewall opens to this host (``peer_ingress``)."""
    vpc_id: pulumi.Output[str] | None = None
    subnet_id: pulumi.Output[str] | None = None
    if not isinstance(plan.host, AdoptedHost):
        network = Network(f"{name}-net", NetworkArgs(cloud=plan.cloud, network=plan.network, host=plan.host))
        vpc_id, subnet_id = network.vpc_id, network.subnet_id
    props = plan.props()
    ports = plan.port_plan
    firewall = Firewall(
        f"{name}-fw", FirewallArgs(cloud=plan.cloud, ports=ports, props=props, vpc_id=vpc_id, peer_ingress=ingress)
    )
    host = Host(
        f"{name}-host",
        HostArgs(
            cloud=plan.cloud,
            host=plan.host,
            props=props,
            vpc_id=vpc_id,
            subnet_id=subnet_id,
            security_group_id=firewall.security_group_id,
            ssh_private_key=config.require_secret("sshPrivateKey"),
        ),
    )
    return firewall, host


def cloud_side(
    plan: Plan, name: str, config: pulumi.Config, host: Host
) -> tuple[OffHostBackups | None, ReplicationCredentials | None]:
    """What lives in the cloud, not on the host (so it is there before the host key is pinned): the
    backups' bucket and role, and the replication CA, certificates and passwords (Pulumi state,
    exported to the Tencent stack with the databases' endpoints)."""
    if plan.cloud != Cloud.ALIBABA:
        return None, None
    props = plan.props()
    off_host = None
    if plan.backups.off_host is not None and plan.backed_up:
        off_host = OffHostBackups(
            f"{name}-backups",
            OffHostBackupsArgs(
                backups=plan.backups, props=props, instance_id=host.instance_id, region=_alibaba_region()
            ),
        )
    credentials = None
    if plan.tls_engines:
        credentials = ReplicationCredentials(
            f"{name}-replication",
            ReplicationCredentialsArgs(
                sources=plan.replication_sources,
                tls_engines=plan.tls_engines,
                props=props,
                source_address=host.public_ip,
            ),
        )
    if plan.replication_sources and credentials is not None:
        export_replication(plan, credentials, host.public_ip)
    if plan.databases:
        export_databases(plan, host.public_ip, credentials)
    return off_host, credentials


def metrics_tunnel_key(plan: Plan, name: str) -> tls.PrivateKey | None:
    """The metrics tunnel's key, when the peer's Prometheus scrapes this host (components/metrics_tunnel.py).
    State only, like the replication CA: the stack exports it to the Tencent stack as a secret, with
    what the tunnel needs beside it. A replaced key (a changed algorithm) is a new key: the login
    step authorizes it and ends the old key's sessions; the Tencent stack's next ``up`` takes it."""
    if not plan.metrics_login:
        return None
    key = tls.PrivateKey(f"{name}-metrics-key", algorithm=KEY_ALGORITHM)
    if plan.host.host_key is not None:
        pulumi.export("metricsTunnel", exported_tunnel(plan.host.ssh_port, plan.host.host_key, scraped_exporters(plan)))
        pulumi.export("metricsTunnelKey", pulumi.Output.secret(key.private_key_openssh))
    return key


def scraped_exporters(plan: Plan) -> list[tuple[str, int]]:
    """This host's exporters, (name, port on its loopback), by port."""
    found = [(w.name, w.ports[0].port) for w in plan.monitoring_workloads if w.name in SCRAPED_EXPORTERS]
    return sorted(found, key=lambda pair: pair[1])


def metrics_login(
    plan: Plan, owner: Databases, component: str, connection: remote.ConnectionArgs, key: tls.PrivateKey | None
) -> None:
    """The tunnel's login on this host, after the exporters' users; there with no key too: it then
    removes what an earlier plan authorized."""
    peer = plan.firewall.peer_address
    step = login_step(component, plan.layout, "", peer)
    resolved = None
    if key is not None:
        ports = [port for _, port in scraped_exporters(plan)]
        resolved = key.public_key_openssh.apply(
            lambda public: login_step(component, plan.layout, authorized_line(public, ports), peer)
        )
    run_step(step, connection, parent=owner, depends_on=[owner.bootstrap], resolved=resolved)


def peer_tunnel(plan: Plan, reference: pulumi.StackReference | None) -> tuple[pulumi.Output[Any], pulumi.Output[Any]]:
    """The peer stack's ``metricsTunnel`` output and its key (None, None when there is none to read),
    warning when this host's Prometheus would scrape the peer but cannot."""
    if not plan.peer_exporters or reference is None:
        if plan.runs_prometheus and plan.cloud == Cloud.TENCENT:
            pulumi.log.warn(
                f"monitoring: the Alibaba host's exporters are not scraped: set {NAMESPACE}:databaseStack, whose "
                "outputs hold the metrics tunnel's key (README: 'Metrics from the database host')"
            )
        return pulumi.Output.from_input(None), pulumi.Output.from_input(None)

    tunnel = optional_output(
        reference,
        plan,
        "metricsTunnel",
        "(its monitoring is off, its host key is not pinned, or it was deployed by a version without the tunnel)",
        "the Alibaba host's exporters are not scraped until it has",
    )
    return tunnel, reference.get_output("metricsTunnelKey")


def monitor(
    plan: Plan,
    owner: Databases | Services,
    component: str,
    connection: remote.ConnectionArgs,
    config: pulumi.Config,
    ingress: pulumi.Output[Any] | None,
    reference: pulumi.StackReference | None,
) -> None:
    """The monitoring step, under the host's own provisioning component. It is there with
    monitoring off too: it then stops and removes what an earlier plan installed. ``ingress``: what
    the peer's firewall opens to this host, as its stack exports it; Prometheus probes the peer's
    database ports where they are (a port moved there is followed), else where its default plan
    has them. ``reference``: the peer stack, whose ``metricsTunnel`` carries the scrape of its exporters."""
    if plan.unexported_databases:
        names = ", ".join(db.name for db in plan.unexported_databases)
        pulumi.log.warn(f"monitoring: no exporter watches {names} (one per engine kind: the first in the plan)")
    if plan.monitoring.enabled and plan.cloud == Cloud.TENCENT and not plan.runs_prometheus:
        pulumi.log.warn(
            "monitoring: this host's exporters are scraped by nobody: the metrics tunnel runs from the Tencent "
            "Prometheus to the Alibaba host only (README: 'Metrics from the database host')"
        )
    view = plan.monitoring_plan
    webhook = None
    resolved = None
    if plan.runs_prometheus:
        tunnel, tunnel_key = peer_tunnel(plan, reference)
        values = pulumi.Output.all(config.require_secret("alertWebhook"), config.get_secret("alertSigningSecret"))
        webhook = pulumi.Output.secret(
            pulumi.Output.all(values, tunnel_key).apply(lambda v: webhook_stdin(v[0][0], v[0][1], v[1]))
        )
        exported_ingress = ingress if ingress is not None else pulumi.Output.from_input(None)
        resolved = pulumi.Output.all(exported_ingress, tunnel).apply(
            lambda pair: monitoring_step(
                component,
                replace(
                    view,
                    tunnel=metrics_tunnel_of(pair[1]),
                    peer_databases=view.peer_databases if pair[0] is None else peer_databases_of(pair[0]),
                    peer_health=view.peer_health if pair[0] is None else peer_health_of(pair[0]),
                ),
                webhook,
            )
        )
    monitoring = run_step(
        monitoring_step(component, view, webhook),
        connection,
        parent=owner,
        # The database exporters start with the credential files their users' steps write.
        depends_on=[owner.bootstrap, *(owner.exporters.values() if isinstance(owner, Databases) else ())],
        resolved=resolved,
    )
    if plan.monitoring.enabled:
        files = certificate_files(
            plan.layout.paths,
            [db.name for db in plan.replication_sources],
            [w.name for w in plan.replicas],
            plan.proxy.certificate if plan.proxy is not None else None,
        )
        warn_days = plan.monitoring.alerting.certificate_warning_days
        run_step(
            certificate_check_step(component, plan.layout, files, warn_days),
            connection,
            parent=owner,
            depends_on=[monitoring],  # node exporter's textfile directory is there
        )
    if plan.runs_prometheus or plan.metrics_login:
        run_step(
            heartbeat_step(component, view, heartbeat_url_stdin(plan, config.get_secret("heartbeatUrl"))),
            connection,
            parent=owner,
            depends_on=[monitoring],  # Alertmanager or node exporter, and the textfile directory
        )


def heartbeat_url_stdin(plan: Plan, url: pulumi.Output[str] | None) -> pulumi.Input[str]:
    """The heartbeat step's stdin: the URL (a secret), or nothing and a warning without one."""
    if url is None:
        dies = (
            "this host, its Prometheus or its Alertmanager dies"
            if plan.runs_prometheus
            else "the peer host, its Prometheus or the metrics tunnel dies"
        )
        pulumi.log.warn(
            f"monitoring: no platform:heartbeatUrl: if {dies}, no alert is sent (README: 'Who watches the watcher')"
        )
        return heartbeat_stdin(None)
    return pulumi.Output.secret(url.apply(heartbeat_stdin))


def export_host(plan: Plan, host: Host, firewall: Firewall) -> None:
    """The stack's outputs about its host: its plan, what it opens to the peer, where it is, its memory."""
    pulumi.export("plan", plan.props())
    # What this host's firewall opens to the peer: the peer's egress follows it (its databaseStack).
    pulumi.export("peerIngress", peer_ingress_ports(plan.port_plan))
    pulumi.export("publicIp", host.public_ip)
    pulumi.export("instanceId", host.instance_id)
    pulumi.export("securityGroupId", firewall.security_group_id)
    pulumi.export(
        "memory",
        {
            "limitMib": plan.host.memory_mib,
            "usedMib": plan.used_mib,
            "osReserveMib": plan.host.os_reserve_mib,
            "freeMib": plan.free_mib,
        },
    )
