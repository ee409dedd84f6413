"""The application platform: native services under systemd, deployed batch by batch.

Batch N+1 depends on every command of batch N; a deploy command fails when its service
does not answer its health path in time (after rolling back), so a failed batch stops the
later ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components.provisioning import Step, preflight_params, render, run_step
from plan import Plan, Service


@dataclass(frozen=True)
class ServicesArgs:
    plan: Plan
    connection: remote.ConnectionArgs


class Services(pulumi.ComponentResource):
    """Host preflight and bootstrap, then per service its deploy command, batch by batch."""

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
        self.register_outputs({"deploys": list(self.deploys)})


def bootstrap_step(name: str, plan: Plan) -> Step:
    params = {**preflight_params(plan), "SERVICES_ROOT": plan.paths.root, "UNIT_DIR": plan.paths.units}
    return Step(
        f"{name}-bootstrap", create=render(["host_preflight.sh", "svc_bootstrap.sh"], params), sudo=plan.needs_sudo
    )


def deploy_step(name: str, plan: Plan, service: Service) -> Step:
    params = {
        "NAME": service.name,
        "PORT": service.port,
        "VERSION": service.release.version,
        "ARTIFACT": service.release.artifact,
        "ARTIFACT_SHA256": service.release.sha256 or "",
        "SERVICE_DIR": f"{plan.paths.root}/{service.name}",
        "UNIT_FILE": f"{plan.paths.units}/platform-{service.name}.service",
        "UNIT_NAME": f"platform-{service.name}.service",
        "UNIT_CONTENT": systemd_unit(service, plan),
        "HEALTH_URL": f"http://127.0.0.1:{service.port}{service.health_path}",
        "HEALTH_TIMEOUT": service.health_timeout_s,
        "KEEP_RELEASES": plan.paths.keep_releases,
        "STATE_DIR": plan.paths.state,
    }
    return Step(
        f"{name}-{service.name}",
        create=render(["svc_deploy.sh"], params),
        delete=render(["svc_remove.sh"], params),
        sudo=plan.needs_sudo,
    )


def systemd_unit(service: Service, plan: Plan) -> str:
    service_dir = f"{plan.paths.root}/{service.name}"
    return "\n".join(
        [
            "# Managed by Pulumi (platform plan); edits are overwritten.",
            "[Unit]",
            f"Description={service.name}: {service.description}",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"WorkingDirectory={service_dir}/current",
            f"ExecStart=/bin/sh -c 'exec {service.start_command}'",
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
