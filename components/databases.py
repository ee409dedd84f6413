"""The database platform: host check and bootstrap, then one Quadlet container per database."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_command import remote

from components.engines import data_dir, quadlet_unit, secret_content, secret_file
from components.provisioning import GUARDS, Step, host_check_params, render, retire_step_name, run_step
from plan import Database, Plan, RetiredDatabase

# Podman 4.5 is the first whose Quadlet reads PodmanArgs= (the --memory limit).
MIN_PODMAN = "4.5"


@dataclass(frozen=True)
class DatabasesArgs:
    plan: Plan
    connection: remote.ConnectionArgs
    passwords: pulumi.Output[dict[str, str]]
    """Secret: database name -> password."""


class Databases(pulumi.ComponentResource):
    """Host check and bootstrap, then per database the command that installs its container, and per
    retired database the command that takes it off the host."""

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
        self.retirements: dict[str, remote.Command] = {
            retired.name: run_step(
                retire_step(name, plan, retired), args.connection, parent=self, depends_on=[self.bootstrap]
            )
            for retired in plan.retired.databases
        }
        self.register_outputs({"containers": list(self.containers), "retired": list(self.retirements)})


def bootstrap_step(name: str, plan: Plan) -> Step:
    params = {
        **host_check_params(plan),
        "MIN_PODMAN": MIN_PODMAN,
        "DATA_ROOT": plan.paths.data,
        "QUADLET_DIR": plan.paths.quadlet,
        "SECRETS_DIR": plan.paths.secrets,
        "DATA_DIRS": " ".join(data_dir(db.name, plan.paths) for db in plan.databases),
        "SYSCTL_FILE": f"{plan.paths.sysctl}/99-platform-elasticsearch.conf",
        "NEEDS_ES_SYSCTL": int(any(db.kind == "elasticsearch" for db in plan.databases)),
    }
    script = render(["host_check.sh", "db_bootstrap.sh"], params)
    return Step(f"{name}-bootstrap", script=script, label="platform-bootstrap", sudo=plan.needs_sudo)


def container_step(name: str, plan: Plan, db: Database, passwords: pulumi.Output[dict[str, str]]) -> Step:
    params = {
        "NAME": db.name,
        "IMAGE": db.image,
        "UNIT_FILE": f"{plan.paths.quadlet}/{db.name}.container",
        "UNIT_CONTENT": quadlet_unit(db, plan.paths),
        "SECRET_FILE": secret_file(db.name, plan.paths),
        "DATA_DIR": data_dir(db.name, plan.paths),
        "PORTS": " ".join(str(p.port) for p in db.ports),
        "STATE_DIR": plan.paths.state,
        "HEALTH_TIMEOUT": db.health_timeout_s,
    }
    # Presence of every password was checked before any resource (plan.check_secrets_present).
    stdin = passwords.apply(lambda values: secret_content(db, values[db.name]))
    return Step(
        f"{name}-{db.name}",
        script=render(["db_container.sh"], params),
        label=f"platform-{db.name}",
        stdin=pulumi.Output.secret(stdin),
        handles_secrets=True,
        sudo=plan.needs_sudo,
    )


def retire_step(name: str, plan: Plan, retired: RetiredDatabase) -> Step:
    """Stop the database and remove its unit and secret; its data goes only with ``purge: true``."""
    params = {
        "NAME": retired.name,
        "UNIT_FILE": f"{plan.paths.quadlet}/{retired.name}.container",
        "SECRET_FILE": secret_file(retired.name, plan.paths),
        "DATA_ROOT": plan.paths.data,
        "DATA_DIR": data_dir(retired.name, plan.paths),
        "STATE_DIR": plan.paths.state,
        "PURGE": int(retired.purge),
    }
    script = render([GUARDS, "db_retire.sh"], params)
    label = f"platform-retire-{retired.name}"
    return Step(retire_step_name(name, retired.name), script=script, label=label, sudo=plan.needs_sudo)
