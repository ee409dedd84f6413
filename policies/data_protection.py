"""data-protection: what holds data survives a destroy, a replacement and a removed database.

- Instances and disks are ``protect``ed (visible to validators as ``args.opts.protect``).
  ``retainOnDelete`` is not among the options the engine hands analyzers, so it is not checked.
- A declared instance has cloud deletion protection on (Alibaba ``deletionProtection``,
  Tencent ``disableApiTermination``) and data disks that outlive it (``deleteWithInstance``
  false: both clouds default to deleting them). An adopted instance declares nothing (it is
  imported and ignores every property), so only ``protect`` can be checked for it.
- What a step removes is read from its record (``platform:provisioning:Step``: the paths its
  scripts' headers declare, ``${NAME}`` filled from its parameters; tests/components/test_step_declarations.py
  holds each script to its header). A database's data (``${DATA_DIR}``, ``${DATA_ROOT}``, or
  inside ``facts.DATA_DIRECTORIES``: an engine's directory under /var/lib, a container runtime's
  volumes) is removed only under ``if PURGE`` with ``PURGE=1``: a database retired with
  ``purge: true``. No removal that runs is, or holds, a system directory (``/``, ``/etc``,
  ``/var/lib``, ...; a ``/*`` counts as its directory), nor has ``..``, ``//`` or a glob in a
  parameter, nor is a relative path: so ``purge: true`` cannot empty the host.
- A command's ``delete`` text removes no database volume or data directory (``_scan.data_removals``):
  a delete runs on a destroy or a rename, never because the plan asked for a purge.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from ._common import declares_inputs, known
from ._scan import data_removals, secret_literals
from .facts import (
    ALIBABA_INSTANCE,
    COMMANDS,
    DATA_PARAMETERS,
    INSTANCES,
    STEP,
    TENCENT_INSTANCE,
    expand_step_path,
    in_data_directory,
    step_parameters_in,
    system_directory,
)

ALIBABA_DISKS = ("alicloud:ecs/disk:Disk", "alicloud:ecs/ecsDisk:EcsDisk")
TENCENT_DISK = "tencentcloud:Cbs/storage:Storage"
_TERMINATION_GUARD = {ALIBABA_INSTANCE: "deletionProtection", TENCENT_INSTANCE: "disableApiTermination"}
_GLOB = re.compile(r"[*?\[]")
_STAYS_INSIDE = "a removal stays inside a directory of the platform's own (platform:paths)"


def check(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    kind = args.resource_type
    if (kind in INSTANCES or kind in ALIBABA_DISKS or kind == TENCENT_DISK) and not args.opts.protect:
        report_violation("not protected: `pulumi destroy` or a replacing change would delete it", None)
    if kind in INSTANCES and declares_inputs(args):
        _check_instance(kind, args.props, report_violation)
    elif kind in ALIBABA_DISKS and args.props.get("deleteWithInstance") is True:
        report_violation("deleteWithInstance is true: releasing the instance releases this disk", None)
    elif kind == TENCENT_DISK and args.props.get("forceDelete") is True:
        report_violation("forceDelete is true: deleting it skips the recycle bin", None)
    elif kind == STEP:
        for problem in removal_problems(args.props):
            report_violation(problem, None)
    elif kind in COMMANDS and isinstance(delete := args.props.get("delete"), str):
        for finding in data_removals(delete):
            report_violation(f"delete {finding} (only a database retired with purge: true may lose its data)", None)


def removal_problems(props: Mapping[str, Any]) -> list[str]:
    """What is wrong with the removals a step's record declares, with its parameters' values
    (none while the parameters are unknown, during preview)."""
    parameters = known(props, "parameters")
    if not isinstance(parameters, Mapping):
        return []
    values = {str(k): str(v) for k, v in parameters.items()}
    found = []
    for removal in props.get("removes") or []:
        written, when = str(removal.get("path")), removal.get("when")
        if when is not None and values.get(str(when)) != "1":
            continue  # declared under a test of that parameter, which this step does not set
        path = expand_step_path(written, values)
        if path is None:
            found.append(f"removes {written}, whose parameters the step does not render")
            continue
        names = step_parameters_in(written)
        shown = path if not secret_literals(path) else "(withheld: it looks like it holds a secret)"
        if when != "PURGE" and (any(n in DATA_PARAMETERS for n in names) or in_data_directory(path)):
            found.append(
                f"removes {written} = {shown}, a database's data directory, on every run (only a database retired "
                "with purge: true may lose its data)"
            )
        whole = bool(names) and written == f"${{{names[0]}}}"
        if reason := unsafe_removal(path, [values[n] for n in names], whole):
            verb = "purges" if when == "PURGE" else "removes"
            found.append(f"{verb} {written} = {shown}, which {reason}; {_STAYS_INSIDE}")
    return found


def unsafe_removal(path: str, values: list[str], whole: bool) -> str:
    """Why removing ``path`` is refused ('' when it is not); ``values``: the parameters in it,
    ``whole``: the path is one parameter."""
    if path.startswith("/"):
        static = _GLOB.split(path, maxsplit=1)[0]
        folded = posixpath.normpath(re.sub(r"/+", "/", static))
        if static != path:  # a glob: it reaches every entry of the directory it starts in
            folded = folded if static.endswith("/") else posixpath.dirname(folded)
        system = _system_directory(folded)
        if system:
            return f"{'is a glob over' if static != path else 'is'} {system}"
    if ".." in path.split("/"):
        return "has a '..' component: it can climb out of the directory it names"
    if "//" in path:
        return "has an empty component ('//'): a parameter is empty or '/'"
    if any(_GLOB.search(value) for value in values):
        return "has a glob character in a parameter: it can match more than the one directory"
    if whole and path and not path.startswith("/"):
        return "is not an absolute path"
    return ""


def _system_directory(path: str) -> str:
    """'the root directory', 'the system directory X', 'a directory holding the system directory X' or ''."""
    if path == "/":
        return "the root directory"
    found = system_directory(path)
    if found is None:
        return ""
    return f"the system directory {path}" if found == path else f"a directory holding the system directory {found}"


def _check_instance(kind: str, props: Mapping[str, Any], report_violation: ReportViolation) -> None:
    guard = _TERMINATION_GUARD[kind]
    if props.get(guard) is not True:
        report_violation(f"{guard} is not true: the cloud console or API can release the instance", None)
    for index, disk in enumerate(props.get("dataDisks") or []):
        # Both providers default deleteWithInstance to true for an instance's data disks.
        if disk.get("deleteWithInstance", True) is not False:
            report_violation(
                f"dataDisks[{index}].deleteWithInstance is not false: the data dies with the instance", None
            )


data_protection = ResourceValidationPolicy(
    name="data-protection",
    description="Instances and data disks are protected and outlive their instance; no command removes a "
    "database's data unless the plan retires it with purge: true, and no removal reaches a system directory.",
    validate=check,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps="Set protect, deletion protection and deleteWithInstance: false; remove data only through "
    "platform:retired.databases with purge: true.",
)
