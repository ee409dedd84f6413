"""The application platform: native services under systemd, deployed batch by batch.

Batch N+1 depends on every command of batch N; a deploy command fails when its service
does not answer its health path in time (after rolling back), so a failed batch stops the
later ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components.formats import unit_value, unit_word
from components.provisioning import GUARDS, Step, host_check_params, render, retire_step_name, run_step
from plan import Plan, RetiredService, Service


@dataclass(frozen=True)
class ServicesArgs:
    plan: Plan
    connection: remote.ConnectionArgs


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
        self.register_outputs({"deploys": list(self.deploys), "retired": list(self.retirements)})


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
