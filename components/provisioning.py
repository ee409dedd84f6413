"""Rendering provisioning scripts and running them as remote commands.

Scripts live in ``components/scripts/*.sh``. Python never splices values into shell text:
it prepends one block of ``NAME=<shell-quoted value>`` assignments, then the script body.
Secrets never pass through here; they travel on the command's stdin.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pulumi
from pulumi_command import remote

from plan import Plan

SCRIPTS = Path(__file__).parent / "scripts"
_PARAM_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")

ParamValue = str | int
Params = Mapping[str, ParamValue]


@cache
def script_body(file: str) -> str:
    """A script file without its shebang, ready to follow the rendered parameters."""
    text = (SCRIPTS / file).read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("#!")) + "\n"


def render(files: Sequence[str], params: Params) -> str:
    """The full script text: strict mode, the parameters, then each file's body in order."""
    assignments = []
    for key in sorted(params):
        if not _PARAM_NAME.match(key):
            raise ValueError(f"script parameter {key!r} must be an upper-case shell name")
        assignments.append(f"{key}={shlex.quote(str(params[key]))}")
    header = "#!/usr/bin/env bash\nset -euo pipefail\n# parameters rendered from the plan\n"
    return header + "\n".join(assignments) + "\n" + "".join(script_body(f) for f in files)


def as_command(script: str, label: str, sudo: bool) -> str:
    """The command line: bash runs the script whatever the login shell is; stdin stays free.

    A non-root SSH user runs it through ``sudo -n`` (never prompting: no password on the wire).
    """
    command = f"bash -c {shlex.quote(script)} {shlex.quote(label)}"
    return f"sudo -n {command}" if sudo else command


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def preflight_params(plan: Plan) -> dict[str, str | int]:
    """What the host preflight checks before anything changes on the host."""
    return {
        "HOST_MEMORY_MIB": plan.host.memory_mib,
        "MIN_FREE_DISK_MIB": plan.host.min_free_disk_mib,
        "OS_FAMILIES": " ".join(plan.host.os_families),
        # Ports the plan will use; a listener on one of them must be the plan's own workload.
        "PLAN_PORTS": " ".join(f"{p.port}/{p.protocol}" for w in plan.workloads for p in w.ports),
        "EXISTING_PORTS": " ".join(f"{p.port}/{p.protocol}" for w in plan.existing for p in w.ports),
        "STATE_DIR": plan.paths.state,
    }


@dataclass(frozen=True)
class Step:
    """One remote command: what it runs on create/update, on delete, and what it reads on stdin."""

    name: str
    create: str
    delete: str | None = None
    stdin: pulumi.Input[str] | None = None
    handles_secrets: bool = False
    sudo: bool = False


def run_step(
    step: Step,
    connection: remote.ConnectionArgs,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> remote.Command:
    create = as_command(step.create, step.name, step.sudo)
    delete = as_command(step.delete, step.name, step.sudo) if step.delete else None
    # A digest of what the step runs: an unchanged plan re-runs nothing, a changed workload
    # re-runs only its own step.
    triggers = [digest(create, delete or "")]
    secret_options = pulumi.ResourceOptions(additional_secret_outputs=["stdout", "stderr"])
    return remote.Command(
        step.name,
        connection=connection,
        create=create,
        update=create,
        delete=delete,
        stdin=step.stdin,
        triggers=triggers,
        add_previous_output_in_env=False,
        logging=remote.Logging.NONE if step.handles_secrets else remote.Logging.STDOUT_AND_STDERR,
        opts=pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
            secret_options if step.handles_secrets else None,
        ),
    )
