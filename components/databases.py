"""The database platform: host preflight and bootstrap, then one Quadlet container per database."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components.engines import data_dir, quadlet_unit, secret_content, secret_file
from components.provisioning import Step, preflight_params, render, run_step
from plan import Database, Plan

# Podman 4.5 is the first whose Quadlet reads PodmanArgs= (the --memory limit).
MIN_PODMAN = "4.5"


@dataclass(frozen=True)
class DatabasesArgs:
    plan: Plan
    connection: remote.ConnectionArgs
    passwords: pulumi.Output[dict[str, str]]
    """Secret: database name -> password."""


class Databases(pulumi.ComponentResource):
    """Host preflight and bootstrap, then per database the command that installs its container."""

    def __init__(self, name: str, args: DatabasesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        plan = args.plan
        super().__init__("platform:provisioning:Databases", name, {"plan": plan.props()}, opts)
        self.bootstrap = run_step(bootstrap_step(name, plan), args.connection, parent=self)
        self.containers: dict[str, remote.Command] = {
            db.name: run_step(
                container_step(name, plan, db, args.passwords),
                args.connection,
                parent=self,
                depends_on=[self.bootstrap],
            )
            for db in plan.databases
        }
        self.register_outputs({"containers": list(self.containers)})


def bootstrap_step(name: str, plan: Plan) -> Step:
    params = {
        **preflight_params(plan),
        "MIN_PODMAN": MIN_PODMAN,
        "DATA_ROOT": plan.paths.data,
        "QUADLET_DIR": plan.paths.quadlet,
        "SECRETS_DIR": plan.paths.secrets,
        "DATA_DIRS": " ".join(data_dir(db, plan.paths) for db in plan.databases),
        "SYSCTL_FILE": f"{plan.paths.sysctl}/99-platform-elasticsearch.conf",
        "NEEDS_ES_SYSCTL": int(any(db.kind == "elasticsearch" for db in plan.databases)),
    }
    return Step(
        f"{name}-bootstrap", create=render(["host_preflight.sh", "db_bootstrap.sh"], params), sudo=plan.needs_sudo
    )


def container_step(name: str, plan: Plan, db: Database, passwords: pulumi.Output[dict[str, str]]) -> Step:
    params = {
        "NAME": db.name,
        "IMAGE": db.image,
        "UNIT_FILE": f"{plan.paths.quadlet}/{db.name}.container",
        "UNIT_CONTENT": quadlet_unit(db, plan.paths),
        "SECRET_FILE": secret_file(db, plan.paths),
        "DATA_DIR": data_dir(db, plan.paths),
        "PORTS": " ".join(str(p.port) for p in db.ports),
        "STATE_DIR": plan.paths.state,
        "HEALTH_TIMEOUT": db.health_timeout_s,
    }
    removal = {**params, "PURGE": int(db.purge)}
    # Presence of every password was checked before any resource (plan.check_secrets_present).
    stdin = passwords.apply(lambda values: secret_content(db, values[db.name]))
    return Step(
        f"{name}-{db.name}",
        create=render(["db_container.sh"], params),
        delete=render(["db_remove.sh"], removal),
        stdin=pulumi.Output.secret(stdin),
        handles_secrets=True,
        sudo=plan.needs_sudo,
    )
