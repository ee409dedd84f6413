"""The application platform: native services under systemd, deployed batch by batch, and the
host's existing engines that follow the Alibaba databases (``replicaOf``).

Batch N+1 depends on every command of batch N; a deploy command fails when its service
does not answer its health path in time (after rolling back), so a failed batch stops the
later ones. The replicas do not wait for the services (nor they for them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_command import remote

from components.formats import unit_value, unit_word
from components.provisioning import GUARDS, Step, host_check_params, render, retire_step_name, run_step
from components.replication import health_step, replica_stdin, replica_step
from plan import NAMESPACE, REPLICATION_USER, ExistingWorkload, Plan, RetiredService, Service


@dataclass(frozen=True)
class ReplicationSource:
    """The Alibaba stack's replication outputs, as its StackReference reads them."""

    stack: str
    replication: pulumi.Output[Any]
    """``{"caCert", "sourceAddress", "sources": {db: {"kind", "port", "user", "database"}}}``."""
    passwords: pulumi.Output[Any]
    """Secret: source database -> the replication user's password."""


@dataclass(frozen=True)
class ServicesArgs:
    plan: Plan
    connection: remote.ConnectionArgs
    replication_source: ReplicationSource | None = None
    """Required when the plan has replicas (``plan.replicas``)."""


class Services(pulumi.ComponentResource):
    """Host check and bootstrap, then per service its deploy command, batch by batch, and per
    retired service the command that takes it off the host."""

    def __init__(self, name: str, args: ServicesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        plan = args.plan
        super().__init__("platform:provisioning:Services", name, {"plan": plan.props()}, opts)
        self.bootstrap = run_step(bootstrap_step(name, plan), args.connection, parent=self)
        self.deploys: dict[str, remote.Command] = {}
        gate: list[pulumi.Resource] = [self.bootstrap]
        by_name = {s.name: s for s in plan.services}
        for batch in plan.batches:
            commands = [
                run_step(deploy_step(name, plan, by_name[service]), args.connection, parent=self, depends_on=gate)
                for service in batch
            ]
            self.deploys.update(zip(batch, commands, strict=True))
            gate = list(commands)
        self.retirements: dict[str, remote.Command] = {
            retired.name: run_step(
                retire_step(name, plan, retired), args.connection, parent=self, depends_on=[self.bootstrap]
            )
            for retired in plan.retired.services
        }
        self.replicas: dict[str, remote.Command] = {}
        self.health: remote.Command | None = None
        if plan.replicas:
            self._replicas(name, plan, args)
        self.register_outputs(
            {"deploys": list(self.deploys), "retired": list(self.retirements), "replicas": list(self.replicas)}
        )

    def _replicas(self, name: str, plan: Plan, args: ServicesArgs) -> None:
        source = args.replication_source
        if source is None:  # the plan requires replication.sourceStack with any replicaOf
            raise pulumi.RunError(f"{NAMESPACE}:replication.sourceStack: required for the replicas")
        for index, workload in enumerate(plan.existing):
            if workload.replica_of is None:
                continue
            stdin = pulumi.Output.all(source.replication, source.passwords).apply(
                lambda values, index=index, workload=workload: _replica_stdin(plan, index, workload, *values)
            )
            self.replicas[workload.name] = run_step(
                replica_step(name, plan, workload, replica_source(plan, workload), pulumi.Output.secret(stdin)),
                args.connection,
                parent=self,
                depends_on=[self.bootstrap],
            )
        self.health = run_step(
            health_step(name, plan), args.connection, parent=self, depends_on=list(self.replicas.values())
        )


def replica_source(plan: Plan, workload: ExistingWorkload) -> dict[str, Any]:
    """Where ``workload`` replicates from, as the plan declares it: known before any stack is read, so
    the replica's command text is too; ``_replica_stdin`` checks it against the Alibaba stack's outputs."""
    replica = workload.replica_of
    if replica is None:
        raise ValueError(f"{workload.name} has no replicaOf")
    return {
        "kind": replica.kind,
        "port": replica.source_port,
        "user": REPLICATION_USER,
        "database": replica.replicated_database,
        "sourceAddress": replica.host or plan.firewall.peer_address,
    }


def _replica_stdin(
    plan: Plan, index: int, workload: ExistingWorkload, replication: Mapping[str, Any], passwords: Mapping[str, Any]
) -> str:
    """The replica's stdin (password and CA), once the Alibaba stack's outputs agree with the plan."""
    replica = workload.replica_of
    assert replica is not None
    where = f"{NAMESPACE}:existing[{index}].replicaOf"
    sources = replication.get("sources") or {}
    if replica.source not in sources or replica.source not in passwords:
        offered = ", ".join(sorted(sources)) or "none"
        raise pulumi.RunError(
            f"{where}.source: {replica.source!r} is not a replication source of the Alibaba stack (it offers: "
            f"{offered}); list it in its platform:replication.sources and run `pulumi up` there first"
        )
    offered = sources[replica.source]
    declared = replica_source(plan, workload)
    for key, field in (("kind", "kind"), ("port", "port")):
        if offered.get(key) is not None and _same(offered[key], declared[key]) is False:
            raise pulumi.RunError(
                f"{where}.{field}: the plan says {declared[key]!r}, the Alibaba stack's {replica.source} is "
                f"{offered[key]!r}; make them agree"
            )
    if replication.get("sourceAddress") != declared["sourceAddress"]:
        raise pulumi.RunError(
            f"{where}: the Alibaba stack's address is {replication.get('sourceAddress')!r}, not the peer "
            f"{declared['sourceAddress']!r} (firewall.peerAddress): the replica follows the peer only"
        )
    return replica_stdin(str(passwords[replica.source]), str(replication["caCert"]))


def _same(offered: Any, declared: Any) -> bool:
    """Equal, whatever JSON made of a number (a port may come back as 3306.0)."""
    if isinstance(declared, int) and isinstance(offered, int | float):
        return float(offered) == float(declared)
    return offered == declared


def bootstrap_step(name: str, plan: Plan) -> Step:
    params = {**host_check_params(plan), "SERVICES_ROOT": plan.paths.root, "UNIT_DIR": plan.paths.units}
    script = render(["host_check.sh", "svc_bootstrap.sh"], params)
    return Step(f"{name}-bootstrap", script=script, label="platform-bootstrap", sudo=plan.needs_sudo)


def deploy_step(name: str, plan: Plan, service: Service) -> Step:
    params = {
        "NAME": service.name,
        "PORT": service.port,
        "VERSION": service.release.version,
        "ARTIFACT": service.release.artifact,
        "ARTIFACT_SHA256": service.release.sha256 or "",
        "SERVICES_ROOT": plan.paths.root,
        "SERVICE_DIR": f"{plan.paths.root}/{service.name}",
        "UNIT_FILE": f"{plan.paths.units}/platform-{service.name}.service",
        "UNIT_NAME": f"platform-{service.name}.service",
        "UNIT_CONTENT": systemd_unit(service, plan),
        "HEALTH_URL": f"http://127.0.0.1:{service.port}{service.health_path}",
        "HEALTH_TIMEOUT": service.health_timeout_s,
        "KEEP_RELEASES": plan.paths.keep_releases,
        "STATE_DIR": plan.paths.state,
    }
    script = render([GUARDS, "svc_deploy.sh"], params)
    return Step(f"{name}-{service.name}", script=script, label=f"platform-{service.name}", sudo=plan.needs_sudo)


def retire_step(name: str, plan: Plan, retired: RetiredService) -> Step:
    """Stop and disable the service, remove its unit and its releases."""
    params = {
        "NAME": retired.name,
        "SERVICES_ROOT": plan.paths.root,
        "SERVICE_DIR": f"{plan.paths.root}/{retired.name}",
        "UNIT_FILE": f"{plan.paths.units}/platform-{retired.name}.service",
        "UNIT_NAME": f"platform-{retired.name}.service",
        "STATE_DIR": plan.paths.state,
    }
    script = render([GUARDS, "svc_retire.sh"], params)
    label = f"platform-retire-{retired.name}"
    return Step(retire_step_name(name, retired.name), script=script, label=label, sudo=plan.needs_sudo)


def service_title(service: Service) -> str:
    return f"{service.name}: {service.description}" if service.description else service.name


def systemd_unit(service: Service, plan: Plan) -> str:
    service_dir = f"{plan.paths.root}/{service.name}"
    # The plan allows plain words only; quoting keeps the line one argument to sh -c (single
    # quotes, as units written before the renderer have it: an upgrade does not restart them).
    start_word = unit_word(f"exec {service.start_command}", command=True, quote="'")
    return "\n".join(
        [
            "# Managed by Pulumi (platform plan); edits are overwritten.",
            "[Unit]",
            f"Description={unit_value(service_title(service))}",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"WorkingDirectory={unit_value(f'{service_dir}/current')}",
            f"ExecStart=/bin/sh -c {start_word}",
            f"Environment=PORT={service.port}",
            f"MemoryMax={service.memory_mib}M",
            "MemorySwapMax=0",
            "Restart=on-failure",
            "RestartSec=5",
            "DynamicUser=yes",
            f"StateDirectory=platform/{service.name}",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )
