"""What a plan registers on every component: the props the policy pack reads (policies.facts.PlanProps)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plan.schema import Database, ExistingWorkload, MonitoringWorkload, Service

if TYPE_CHECKING:
    from plan.model import Plan


def plan_props(plan: Plan) -> dict[str, Any]:
    """The host's plan as every component registers it, so a policy can read it."""
    return {
        "cloud": plan.cloud.value,
        "hostMode": plan.host.mode,
        "hostMemoryMib": plan.host.memory_mib,
        "osReserveMib": plan.host.os_reserve_mib,
        "sshPort": plan.host.ssh_port,
        "sshFromPeer": plan.metrics_login,
        "peerCidr": plan.firewall.peer_cidr,
        "adminCidrs": list(plan.firewall.admin_cidrs),
        "workloads": [
            *(
                {
                    "name": w.name,
                    "role": w.role,
                    "memoryMib": w.memory_mib,
                    "family": w.family if isinstance(w, Service) else None,
                    "ports": [p.model_dump(mode="json", by_alias=True) for p in w.ports],
                    "backup": _backup_props(w),
                }
                for w in plan.workloads
            ),
            *({**t, "backup": None} for t in plan.transient),
        ],
        "backups": plan.backups.model_dump(mode="json", by_alias=True),
        "replication": {
            "sources": [
                {
                    "name": db.name,
                    "kind": db.kind.value,
                    "port": db.ports[0].port,
                    "peerCidr": plan.firewall.peer_cidr,
                }
                for db in plan.replication_sources
            ],
            "replicas": [
                {
                    "name": w.name,
                    "kind": w.replica_of.kind,
                    "source": w.replica_of.source,
                    "sourceAddress": w.replica_of.host or plan.firewall.peer_address,
                    "sourcePort": w.replica_of.source_port,
                    "port": w.ports[0].port,
                }
                for w in plan.replicas
                if w.replica_of is not None
            ],
        },
        "proxy": None
        if plan.proxy is None
        else {
            "httpPort": plan.proxy.http_port,
            "httpsPort": plan.proxy.https_port,
            "routes": {s.proxy_route: s.port for s in plan.services},
        },
        "retired": [
            *({"name": r.name, "kind": "database", "purge": r.purge} for r in plan.retired.databases),
            *({"name": r.name, "kind": "service", "purge": False} for r in plan.retired.services),
        ],
    }


def _backup_props(workload: Database | Service | ExistingWorkload | MonitoringWorkload) -> dict[str, str] | None:
    if not isinstance(workload, Database):
        return None
    if workload.backup is None:
        return {"mode": "scheduled"}
    return {"mode": "none", "reason": workload.backup.none}


# ---------------------------------------------------------------------------------------
# Loading from stack config
# ---------------------------------------------------------------------------------------
