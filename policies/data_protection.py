"""data-protection: what holds data survives a destroy, a replacement and a removed database.

- Instances and disks are ``protect``ed (visible to validators as ``args.opts.protect``).
  ``retainOnDelete`` is not among the options the engine hands analyzers, so it is not checked.
- A declared instance has cloud deletion protection on (Alibaba ``deletionProtection``,
  Tencent ``disableApiTermination``) and data disks that outlive it (``deleteWithInstance``
  false: both clouds default to deleting them). An adopted instance declares nothing (it is
  imported and ignores every property), so only ``protect`` can be checked for it.
- No command text removes a database volume or data directory unless the plan retires it with purge.
- No command removes a system directory (``/``, ``/etc``, ``/var/lib``, ...) or a directory that
  holds one, or a path with ``..``, ``//`` or a glob in a parameter: read from the purge's
  ``DATA_DIR`` and each ``rm`` whose operands the rendered ``NAME=value`` parameters define
  (``_scan.unsafe_removals``), so ``purge: true`` cannot empty the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from ._common import declares_inputs
from ._scan import data_removals, unsafe_removals
from .facts import ALIBABA_INSTANCE, COMMANDS, INSTANCES, TENCENT_INSTANCE

ALIBABA_DISKS = ("alicloud:ecs/disk:Disk", "alicloud:ecs/ecsDisk:EcsDisk")
TENCENT_DISK = "tencentcloud:Cbs/storage:Storage"
_TERMINATION_GUARD = {ALIBABA_INSTANCE: "deletionProtection", TENCENT_INSTANCE: "disableApiTermination"}


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
    elif kind in COMMANDS:
        _check_command(args.props, report_violation)


def _check_command(props: Mapping[str, Any], report_violation: ReportViolation) -> None:
    # The program's commands run one script on create and on update: read each text once.
    texts: dict[str, list[str]] = {}
    for key in ("create", "update", "delete"):
        text = props.get(key)
        if isinstance(text, str):
            texts.setdefault(text, []).append(key)
    for text, keys in texts.items():
        named = "/".join(keys)
        for finding in data_removals(text):
            report_violation(f"{named} {finding} (only a database retired with purge: true may lose its data)", None)
        for finding in unsafe_removals(text):
            report_violation(
                f"{named} {finding}; a removal stays inside a directory of the platform's own (platform:paths)", None
            )


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
