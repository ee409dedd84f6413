"""Rendering provisioning scripts and running them as remote commands.

Scripts live in ``components/scripts/*.sh``. Python never splices values into shell text:
it prepends one block of ``NAME=<shell-quoted value>`` assignments, then the script body.
Secrets never pass through here; they travel on the command's stdin.

Each step is also registered as data (``StepRecord``, beside its command): the scripts, the
parameters as a dict, and what the scripts' headers declare they may stop and remove
(``# Stops:``, ``# Removes:``; ``tests/components/test_step_declarations.py`` holds every script to its
header). The policy pack and ``preflight`` read that record instead of parsing the shell text back.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import pulumi
from pulumi_command import remote

from plan import HostCheck, Paths
from policies.facts import PARAMETERS_HEADER, STEP, RemovalProps, step_record_name

SCRIPTS = Path(__file__).parent / "scripts"
# A file named ``engines/<kind>/<file>.sh`` is an engine's own, beside its module (components/engines).
ENGINE_SCRIPTS = Path(__file__).parent / "engines"
# Rendered before the body of every script that deletes a directory: defines assert_under.
GUARDS = "lib/guards.sh"
_PARAM_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_DECLARED = re.compile(r"^# (Stops|Removes): (.*)$")

ParamValue = str | int
Params = Mapping[str, ParamValue]


def script_path(file: str) -> Path:
    """Where a script file lives: ``components/scripts/<file>``, or ``components/engines/<kind>/<file>``."""
    return ENGINE_SCRIPTS / file.removeprefix("engines/") if file.startswith("engines/") else SCRIPTS / file


@cache
def script_body(file: str) -> str:
    """A script file without its shebang, ready to follow the rendered parameters."""
    text = script_path(file).read_text()
    return "\n".join(line for line in text.splitlines() if not line.startswith("#!")) + "\n"


@dataclass(frozen=True)
class Declaration:
    """What a script's header says it may stop and remove, with ``${NAME}`` for a parameter.

    ``# Stops: ${NAME}.service`` names units or containers; ``# Removes: ${UNIT_FILE}, ${X}/*,
    ${DATA_DIR} if PURGE`` names paths (``/*``: the directory's entries; ``if P``: only when the
    parameter ``P`` is 1). Entries are comma-separated; either line may repeat.
    """

    stops: tuple[str, ...] = ()
    removes: tuple[tuple[str, str | None], ...] = ()


@cache
def declaration(file: str) -> Declaration:
    """The ``# Stops:`` and ``# Removes:`` lines of a script's leading comment block."""
    stops: list[str] = []
    removes: list[tuple[str, str | None]] = []
    for line in script_path(file).read_text().splitlines()[1:]:
        if not line.startswith("#"):
            break
        found = _DECLARED.match(line)
        entries = [entry.strip() for entry in found.group(2).split(",") if entry.strip()] if found else []
        if found and found.group(1) == "Stops":
            stops += entries
        for entry in entries if found and found.group(1) == "Removes" else ():
            path, _, when = entry.partition(" if ")
            removes.append((path.strip(), when.strip() or None))
    return Declaration(tuple(stops), tuple(removes))


def render(files: Sequence[str], params: Params) -> str:
    """The full script text: strict mode, the parameters, then each file's body in order."""
    assignments = []
    for key in sorted(params):
        if not _PARAM_NAME.match(key):
            raise ValueError(f"script parameter {key!r} must be an upper-case shell name")
        assignments.append(f"{key}={shlex.quote(str(params[key]))}")
    header = f"#!/usr/bin/env bash\nset -euo pipefail\n{PARAMETERS_HEADER}\n"
    return header + "\n".join(assignments) + "\n" + "".join(script_body(f) for f in files)


def as_command(script: str, label: str, sudo: bool) -> str:
    """The command line: bash runs the script whatever the login shell is; stdin stays free.

    A non-root SSH user runs it through ``sudo -n`` (never prompting: no password on the wire).
    """
    command = f"bash -c {shlex.quote(script)} {shlex.quote(label)}"
    return f"sudo -n {command}" if sudo else command


def host_check_params(check: HostCheck, paths: Paths) -> dict[str, str | int]:
    """What the host check (host_check.sh) verifies before anything changes on the host."""
    host = check.host
    return {
        "HOST_MEMORY_MIB": host.memory_mib,
        "MIN_FREE_DISK_MIB": host.min_free_disk_mib,
        "OS_FAMILIES": " ".join(host.os_families),
        # Ports the plan will use; a listener on one of them must be the plan's own workload.
        "PLAN_PORTS": " ".join(f"{p.port}/{p.protocol}" for w in check.workloads for p in w.ports),
        "EXISTING_PORTS": " ".join(f"{p.port}/{p.protocol}" for w in check.existing for p in w.ports),
        # What may listen beyond loopback: the plan's TCP ports and SSH. Anything else would be
        # cut off by the plan's firewall without anyone having decided so.
        "DECLARED_TCP_PORTS": " ".join(
            str(port)
            for port in sorted(
                {host.ssh_port} | {p.port for w in check.workloads for p in w.ports if p.protocol == "tcp"}
            )
        ),
        "ALLOW_UNDECLARED": int(host.allow_undeclared),
        "STATE_DIR": paths.state,
    }


@dataclass(frozen=True)
class Step:
    """One remote command: the scripts it runs on create and on every update, their parameters, its stdin.

    A step has no ``delete``: nothing leaves a host because a resource left the program. A
    workload goes only through its retire step (``platform:retired``), whose create runs the removal.
    """

    name: str
    files: tuple[str, ...]
    params: Params
    label: str
    """The script's name on the host (bash's ``$0``, in its error messages): the workload's, not the
    resource's, so renaming a component does not change the command an update would run."""
    stdin: pulumi.Input[str] | None = None
    handles_secrets: bool = False
    sudo: bool = False

    @cached_property
    def script(self) -> str:
        return render(self.files, self.params)

    @property
    def parameters(self) -> dict[str, str]:
        """The parameters as the script reads them: every value a string."""
        return {key: str(value) for key, value in sorted(self.params.items())}

    def record(self, parameters: pulumi.Input[Mapping[str, str]] | None = None) -> dict[str, Any]:
        """The props of its record (policies.facts.StepProps); ``parameters``: when known only later."""
        declared = self.declaration
        removes: list[RemovalProps] = [{"path": path, "when": when} for path, when in declared.removes]
        return {
            "scripts": list(self.files),
            "parameters": self.parameters if parameters is None else parameters,
            "stops": list(declared.stops),
            "removes": removes,
        }

    @property
    def declaration(self) -> Declaration:
        """What its scripts declare, in file order."""
        declared = [declaration(file) for file in self.files]
        return Declaration(
            tuple(stop for d in declared for stop in d.stops), tuple(removal for d in declared for removal in d.removes)
        )


class StepRecord(pulumi.ComponentResource):
    """A step as data, registered beside its command (same parent, named ``<command>-step``, type ``STEP``;
    the command's name is not among its props, so renaming the component with an alias changes nothing).

    It owns nothing and runs nothing: it is what the policy pack and ``preflight`` read to learn a
    command's parameters and what it may stop and remove (``policies.facts.StepProps``).
    """

    def __init__(self, step: Step, parameters: pulumi.Input[Mapping[str, str]], opts: pulumi.ResourceOptions) -> None:
        props = step.record(parameters)
        super().__init__(STEP, step_record_name(step.name), props, opts)
        self.register_outputs(props)  # stack policies read a component's outputs, resource policies its inputs


def run_step(
    step: Step,
    connection: remote.ConnectionArgs,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    resolved: pulumi.Output[Step] | None = None,
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

    ``resolved``: the step, when its parameters are known only once another stack's outputs are (a
    service's database endpoints); it replaces ``step``'s script and parameters.
    """
    command: pulumi.Input[str] = as_command(step.script, step.label, step.sudo)
    parameters: pulumi.Input[Mapping[str, str]] = step.parameters
    if resolved is not None:
        command = resolved.apply(lambda s: as_command(s.script, step.label, step.sudo))
        parameters = resolved.apply(lambda s: s.parameters)
    StepRecord(step, parameters, pulumi.ResourceOptions(parent=parent, protect=False))
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
