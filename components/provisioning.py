"""Rendering provisioning scripts and running them as remote commands.

Scripts live in ``components/scripts/*.sh``. Python never splices values into shell text:
it prepends one block of ``NAME=<shell-quoted value>`` assignments, then the script body.
Secrets never pass through here; they travel on the command's stdin.
"""

from __future__ import annotations

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
# Rendered before the body of every script that deletes a directory: defines assert_under.
GUARDS = "lib/guards.sh"
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


def host_check_params(plan: Plan) -> dict[str, str | int]:
    """What the host check (host_check.sh) verifies before anything changes on the host."""
    return {
        "HOST_MEMORY_MIB": plan.host.memory_mib,
        "MIN_FREE_DISK_MIB": plan.host.min_free_disk_mib,
        "OS_FAMILIES": " ".join(plan.host.os_families),
        # Ports the plan will use; a listener on one of them must be the plan's own workload.
        "PLAN_PORTS": " ".join(f"{p.port}/{p.protocol}" for w in plan.workloads for p in w.ports),
        "EXISTING_PORTS": " ".join(f"{p.port}/{p.protocol}" for w in plan.existing for p in w.ports),
        # What may listen beyond loopback: the plan's TCP ports and SSH. Anything else would be
        # cut off by the plan's firewall without anyone having decided so.
        "DECLARED_TCP_PORTS": " ".join(
            str(port)
            for port in sorted(
                {plan.host.ssh_port} | {p.port for w in plan.workloads for p in w.ports if p.protocol == "tcp"}
            )
        ),
        "ALLOW_UNDECLARED": int(plan.host.allow_undeclared),
        "STATE_DIR": plan.paths.state,
    }


@dataclass(frozen=True)
class Step:
    """One remote command: the script it runs on create and on every update, and its stdin.

    A step has no ``delete``: nothing leaves a host because a resource left the program. A
    workload goes only through its retire step (``platform:retired``), whose create runs the removal.
    """

    name: str
    script: str
    label: str
    """The script's name on the host (bash's ``$0``, in its error messages): the workload's, not the
    resource's, so renaming a component does not change the command an update would run."""
    stdin: pulumi.Input[str] | None = None
    handles_secrets: bool = False
    sudo: bool = False


def run_step(
    step: Step,
    connection: remote.ConnectionArgs,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    script: pulumi.Output[str] | None = None,
) -> remote.Command:
    """The step as a remote command that a plan change updates in place and that nothing deletes.

    - No ``triggers``: the SDK forces ``replaceOnChanges`` on them (pulumi_command.remote.Command
      merges ``replace_on_changes=["triggers[*]"]``), and a replace would run the old ``delete``.
      A changed script, stdin or connection is an update, which runs ``update`` (the same script:
      every script converges the host to its parameters and says "unchanged" when it already is).
    - ``retainOnDelete``: a command that drops out of the program (a config mistake, a rename
      without an alias) leaves its workload running; removal is the retire step's job.
    - ``protect=False``: the provisioning components are protected (so losing the host key fails
      loudly), and children would inherit it; these commands may come and go.
    - ``ignoreChanges: ["triggers"]``: commands deployed by earlier versions of this program carry a
      digest trigger in their state. Dropping it would be a change to ``triggers`` (the provider
      marks it replaceOnChanges), so a replace that runs the old, destructive delete; ignoring it
      keeps the old value in state and makes that first ``up`` an update like any other.

    ``script``: the script, when it is known only once another stack's outputs are (it replaces
    ``step.script``).
    """
    command: pulumi.Input[str] = as_command(step.script, step.label, step.sudo)
    if script is not None:  # the script holds another stack's values (a service's database endpoints)
        command = script.apply(lambda text: as_command(text, step.label, step.sudo))
    secret_options = pulumi.ResourceOptions(additional_secret_outputs=["stdout", "stderr"])
    return remote.Command(
        step.name,
        connection=connection,
        create=command,
        update=command,
        stdin=step.stdin,
        add_previous_output_in_env=False,
        logging=remote.Logging.NONE if step.handles_secrets else remote.Logging.STDOUT_AND_STDERR,
        opts=pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(
                parent=parent,
                depends_on=list(depends_on),
                retain_on_delete=True,
                protect=False,
                ignore_changes=["triggers"],
            ),
            secret_options if step.handles_secrets else None,
        ),
    )


def retire_step_name(component: str, workload: str) -> str:
    """The retire command of a workload (plan validation keeps workload names off the prefix)."""
    return f"{component}-retire-{workload}"
