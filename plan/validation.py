"""Cross-field validation of a plan: what no single section can check alone (each raises ValueError naming the key)."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from plan.schema import (
    MONITORING_PROGRAMS,
    NAMESPACE,
    REPLICABLE_KINDS,
    RESERVED_NAMES,
    RESERVED_PREFIXES,
    SYSTEM_UNIT_NAMES,
    SYSTEM_UNIT_PREFIXES,
    AdoptedHost,
    Cloud,
    Exposure,
)
from plan_values import (
    CLOUD_ID_PREFIXES,
    cloud_id_pattern,
    shown,
)
from policies.facts import is_below

if TYPE_CHECKING:
    from plan.model import Plan


def check(plan: Plan) -> None:
    """Every cross-field rule, in the order the errors should surface."""
    names = [w.name for w in plan.workloads]
    if duplicates := sorted(n for n, count in Counter(names).items() if count > 1):
        raise ValueError(f"{NAMESPACE}: workload names must be unique on a host; repeated: {', '.join(duplicates)}")
    owners: dict[tuple[int, str], tuple[str, str]] = {}
    for where, workload in plan.located_workloads():
        for spec in workload.ports:
            key = (spec.port, spec.protocol)
            if key in owners:
                owner, owner_where = owners[key]
                raise ValueError(
                    f"{NAMESPACE}:{where}: port {spec.port}/{spec.protocol} of {workload.name} is also the port of "
                    f"{owner} ({NAMESPACE}:{owner_where}): each port on a host belongs to one workload; change "
                    "whichever of the two you meant to move"
                )
            owners[key] = (workload.name, where)
    if plan.host.ssh_port in {p for p, proto in owners if proto == "tcp"}:
        raise ValueError(f"{NAMESPACE}:host.sshPort {plan.host.ssh_port} is also a workload port; pick another")
    if isinstance(plan.host, AdoptedHost) and plan.firewall.security_group_id is None:
        raise ValueError(
            f"{NAMESPACE}:firewall.securityGroupId: required when host.mode is 'adopt' (the rules are "
            "managed in the adopted host's own group, e.g. sg-...)"
        )
    check_batches(plan)
    check_retired(plan)
    check_database_units(plan)
    check_monitoring_ports(plan)
    check_cloud_ids(plan)
    check_replication(plan)
    check_services(plan)
    check_proxy(plan)


# Where a host keeps TLS certificates and their keys (certbot, Debian's ssl-cert, nginx's own, RHEL's),
# besides the platform's own secrets directory: never a file another program depends on.
CERTIFICATE_ROOTS = ("/etc/letsencrypt", "/etc/ssl", "/etc/nginx", "/etc/pki")


def check_proxy(plan: Plan) -> None:
    proxy = plan.proxy
    if proxy is None:
        return
    if proxy.http_port == proxy.https_port:
        raise ValueError(
            f"{NAMESPACE}:proxy.httpPort and proxy.httpsPort are both {proxy.https_port}: nginx listens on each, "
            "so give them two ports"
        )
    roots = (*CERTIFICATE_ROOTS, plan.paths.secrets)
    for key, path in (("certificate", proxy.certificate), ("certificateKey", proxy.certificate_key)):
        if not any(is_below(path, root) for root in roots):
            raise ValueError(
                f"{NAMESPACE}:proxy.{key} {path} is not under a certificate directory: put it below "
                f"{', '.join(CERTIFICATE_ROOTS)} or paths.secrets ({plan.paths.secrets})"
            )
    if proxy.certificate == proxy.certificate_key:
        raise ValueError(f"{NAMESPACE}:proxy.certificate and proxy.certificateKey are the same file; give both")


def check_monitoring_ports(plan: Plan) -> None:
    """A moved port belongs to a monitoring program this host runs: one set for a program that is
    not here would be silently ignored."""
    if not plan.monitoring.enabled:
        return
    here = [w.name for w in plan.monitoring_workloads]
    for name in plan.monitoring.ports:
        if name not in here:
            raise ValueError(
                f"{NAMESPACE}:monitoring.ports.{name}: this host runs no {name}, so the port would be ignored; its "
                f"monitoring programs: {', '.join(here)}"
            )


def check_services(plan: Plan) -> None:
    if (
        plan.database_stack is not None
        and plan.replication.source_stack is not None
        and plan.database_stack != plan.replication.source_stack
    ):
        raise ValueError(
            f"{NAMESPACE}:replication.sourceStack {plan.replication.source_stack!r} differs from "
            f"{NAMESPACE}:databaseStack {plan.database_stack!r}: both name the Alibaba stack; keep databaseStack"
        )
    for service in plan.services:
        if service.databases and plan.source_stack is None:
            raise ValueError(
                f"{NAMESPACE}:databaseStack: required when services[{service.name}] lists databases: "
                "the alibaba stack whose outputs hold their endpoints, e.g. my-org/platform/alibaba"
            )
    for name in plan.monitoring.ports:
        if name not in MONITORING_PROGRAMS:
            raise ValueError(
                f"{NAMESPACE}:monitoring.ports.{name}: not a monitoring program; programs: "
                f"{', '.join(MONITORING_PROGRAMS)}"
            )
    services = {s.name for s in plan.services}
    for index, name in enumerate(plan.monitoring.probes or ()):
        if name not in services:
            valid = ", ".join(sorted(services)) or "none"
            raise ValueError(
                f"{NAMESPACE}:monitoring.probes[{index}]: {shown(name)} is not a service of this plan, so there is "
                f"nothing to probe; services: {valid}"
            )
    if plan.proxy is None:
        return
    if not plan.services and plan.cloud == Cloud.ALIBABA:
        raise ValueError(
            f"{NAMESPACE}:proxy: this alibaba stack runs no services for a TLS proxy to front; the proxy belongs "
            "in the stack of the host that runs them (the tencent stack's, by default)"
        )
    routes = Counter(s.proxy_route for s in plan.services)
    if repeated := sorted(r for r, count in routes.items() if count > 1):
        raise ValueError(f"{NAMESPACE}:services: two services share the proxy route {repeated[0]}; give each a route")
    public = {(p.port, w.name) for w in plan.existing for p in w.ports if p.expose == Exposure.PUBLIC}
    for field, port in (("httpPort", plan.proxy.http_port), ("httpsPort", plan.proxy.https_port)):
        if not any(p == port for p, _ in public):
            raise ValueError(
                f"{NAMESPACE}:proxy.{field} {port}: no existing workload declares it public; the proxy is the "
                "host's nginx, listed under platform:existing with its ports 80 and 443 (expose: public)"
            )


def check_replication(plan: Plan) -> None:
    databases = {db.name: db for db in plan.databases}
    for index, name in enumerate(plan.replication.sources or ()):
        where = f"{NAMESPACE}:replication.sources[{index}]"
        if name not in databases:
            valid = ", ".join(db.name for db in plan.databases if db.kind in REPLICABLE_KINDS) or "none"
            raise ValueError(f"{where}: {shown(name)} is not a database of this plan; replicable ones: {valid}")
        if databases[name].kind not in REPLICABLE_KINDS:
            raise ValueError(
                f"{where}: {name} is {databases[name].kind}, which cannot replicate across clouds (only mysql, "
                "postgres and redis do): its off-host backup is the cross-cloud copy; remove it from the list"
            )
    for workload in plan.existing:
        replica = workload.replica_of
        if replica is None:
            continue
        where = f"{NAMESPACE}:existing[{workload.name}].replicaOf"
        if plan.cloud == Cloud.ALIBABA:
            raise ValueError(f"{where}: the Alibaba host is the primary; replicas live on the Tencent host")
        if replica.host is not None and replica.host != plan.firewall.peer_address:
            raise ValueError(
                f"{where}.host: {shown(replica.host)} is not the peer; a replica follows the peer host only "
                f"(firewall.peerAddress {plan.firewall.peer_address}): set it to that or leave it out"
            )
        if plan.source_stack is None:
            raise ValueError(
                f"{NAMESPACE}:databaseStack: required when existing[{workload.name}] has "
                "replicaOf: the alibaba stack whose outputs it reads, e.g. my-org/platform/alibaba (the default "
                "plan makes mysql, postgres and redis replicas; to keep one as it is, patch it with replicaOf: null)"
            )
    sources = [w.replica_of.source for w in plan.existing if w.replica_of is not None]
    if repeated := sorted(n for n, count in Counter(sources).items() if count > 1):
        raise ValueError(f"{NAMESPACE}:existing: more than one replica of {', '.join(repeated)}; one per source")


def check_cloud_ids(plan: Plan) -> None:
    """Ids in the cloud's own format: anything else would reach the API, or a command, as typed."""
    located = {
        "host.instanceId": getattr(plan.host, "instance_id", None),
        "firewall.securityGroupId": plan.firewall.security_group_id,
        "network.vpcId": plan.network.vpc_id,
        "network.subnetId": plan.network.subnet_id,
    }
    for where, value in located.items():
        field = where.rpartition(".")[2]
        prefix, pattern = CLOUD_ID_PREFIXES[plan.cloud.value][field], cloud_id_pattern(plan.cloud.value, field)
        if value is not None and not re.match(pattern, value):
            raise ValueError(
                f"{NAMESPACE}:{where}: {shown(value)} is not {plan.cloud.article} id; expected "
                f"{prefix} followed by lower-case letters and digits ({pattern})"
            )


def is_system_unit(name: str) -> bool:
    return name in SYSTEM_UNIT_NAMES or name.startswith(SYSTEM_UNIT_PREFIXES)


def check_database_units(plan: Plan) -> None:
    for db in plan.databases:
        if is_system_unit(db.name):
            raise ValueError(
                f"{NAMESPACE}:databases[{db.name}]: its unit would be {db.name}.service, a unit of the host's own "
                "system or packages; name the database after what it holds, e.g. production-cache"
            )


def check_retired(plan: Plan) -> None:
    for kind, retired, active in (
        ("databases", plan.retired.databases, plan.databases),
        ("services", plan.retired.services, plan.services),
    ):
        names = [r.name for r in retired]
        if repeated := sorted(n for n, count in Counter(names).items() if count > 1):
            raise ValueError(f"{NAMESPACE}:retired.{kind}: listed twice: {', '.join(repeated)}")
        for index, entry in enumerate(retired):
            if entry.name in {w.name for w in active}:
                raise ValueError(
                    f"{NAMESPACE}:retired.{kind}[{index}]: {entry.name!r} is also in {NAMESPACE}:{kind}; a "
                    "workload is either on the host or retired: remove one of the two entries"
                )
            if kind == "databases" and is_system_unit(entry.name):
                raise ValueError(
                    f"{NAMESPACE}:retired.databases[{index}]: {entry.name!r} is a unit of the host's own system "
                    f"({entry.name}.service), never one of the platform's databases: it cannot be retired"
                )
            if entry.name in {w.name for w in plan.existing}:
                raise ValueError(
                    f"{NAMESPACE}:retired.{kind}[{index}]: {entry.name!r} is an engine already on the host "
                    f"({NAMESPACE}:existing[{entry.name}]), which the platform never deployed and cannot retire"
                )
    for where, workload in plan.located_workloads():
        prefix = next((p for p in RESERVED_PREFIXES if workload.name.startswith(p)), None)
        if prefix is not None or workload.name in RESERVED_NAMES:
            what = f"must not start with {prefix!r}" if prefix is not None else "is reserved"
            raise ValueError(
                f"{NAMESPACE}:{where}: name {workload.name!r} {what} (it names the "
                f"platform's own commands: {', '.join(RESERVED_PREFIXES)} and {', '.join(RESERVED_NAMES)})"
            )


def check_batches(plan: Plan) -> None:
    services = {s.name for s in plan.services}
    seen: list[str] = []
    for index, batch in enumerate(plan.batches, start=1):
        if not batch:
            raise ValueError(f"{NAMESPACE}:batches[{index - 1}] is empty; list at least one service")
        for name in batch:
            if name not in services:
                valid = ", ".join(sorted(services)) or "none declared"
                raise ValueError(f"{NAMESPACE}:batches[{index - 1}]: unknown service {name!r}; services: {valid}")
            if name in seen:
                raise ValueError(f"{NAMESPACE}:batches[{index - 1}]: service {name!r} is already in an earlier batch")
            seen.append(name)
    if missing := sorted(services - set(seen)):
        raise ValueError(f"{NAMESPACE}:batches: services in no batch: {', '.join(missing)}; list each once")
