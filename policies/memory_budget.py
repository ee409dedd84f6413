"""memory-budget and memory-headroom: every host's workloads fit its usable memory.

A workload's memory is its limit (container ``--memory``, unit ``MemoryMax``, or the measured
size of an existing workload), so the sum is what the host must be able to hold at once.
The OS reserve is what the host needs besides the workloads: kernel slab and page tables,
systemd, journald, sshd, the cloud's monitoring agent, Podman itself. 256 MiB covers those
on a 2-4 GiB host (an idle minimal Ubuntu or Alibaba Cloud Linux sits around 150-250 MiB);
``memoryMib`` is already what the OS reports as usable, not the nominal size.

One figure of free memory: the plan declares its reserve (``osReserveMib``, by default
``facts.OS_RESERVE_MIB``, the pack's floor too) and the pack computes with it, so the stack's
``memory.freeMib``, the preview and this report agree. The pack's ``osReserveMib`` /
``reserveByCloudMib`` are the floor: a plan that reserves less is refused (memory-budget) and
assessed with the floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._common import as_int, host_name, largest, settings, stack_plans, workloads
from .facts import OS_RESERVE_MIB

DEFAULT_OS_RESERVE_MIB = OS_RESERVE_MIB
DEFAULT_HEADROOM_PERCENT = 10

_RESERVE = {
    "osReserveMib": {
        "type": "integer",
        "minimum": 0,
        "default": DEFAULT_OS_RESERVE_MIB,
        "description": "memory the OS and agents need besides the workloads, in MiB",
    },
    "reserveByCloudMib": {
        "type": "object",
        "additionalProperties": {"type": "integer", "minimum": 0},
        "default": {},
        "description": 'per-cloud OS reserve overriding osReserveMib, e.g. {"tencent": 320}',
    },
}
BUDGET_SCHEMA = PolicyConfigSchema(properties=dict(_RESERVE))
HEADROOM_SCHEMA = PolicyConfigSchema(
    properties={
        **_RESERVE,
        "headroomPercent": {
            "type": "number",
            "minimum": 0,
            "maximum": 90,
            "default": DEFAULT_HEADROOM_PERCENT,
            "description": "warn when less than this share of usable memory is left free",
        },
    }
)


@dataclass(frozen=True)
class Assessment:
    """One host's memory: the seeds' capacity analysis, done from the plan."""

    host: str
    cloud: str
    limit_mib: int
    reserve_mib: int
    used_mib: int
    workloads: tuple[dict[str, Any], ...]
    declared_reserve_mib: int | None = None
    """The plan's own reserve (None: a plan from before plans declared one)."""
    floor_reserve_mib: int = 0

    @property
    def needed_mib(self) -> int:
        return self.used_mib + self.reserve_mib

    @property
    def free_mib(self) -> int:
        """Negative when the plan does not fit: the shortfall."""
        return self.limit_mib - self.needed_mib

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free_mib / self.limit_mib if self.limit_mib else 0.0

    @property
    def fits(self) -> bool:
        return self.free_mib >= 0

    def summary(self) -> str:
        return (
            f"{self.host} ({self.cloud}): used {self.used_mib} MiB + OS reserve {self.reserve_mib} MiB "
            f"of limit {self.limit_mib} MiB, free {self.free_mib} MiB"
        )

    def largest(self) -> str:
        return largest(self.workloads)


def assess(host: str, plan: Mapping[str, Any], config: Mapping[str, Any]) -> Assessment:
    cloud = str(plan.get("cloud") or "?")
    items = workloads(plan)
    floor = int(config.get("reserveByCloudMib", {}).get(cloud, config["osReserveMib"]))
    declared = as_int(plan.get("osReserveMib"))
    return Assessment(
        host=host,
        cloud=cloud,
        limit_mib=as_int(plan.get("hostMemoryMib")) or 0,
        reserve_mib=floor if declared is None else max(declared, floor),
        declared_reserve_mib=declared,
        floor_reserve_mib=floor,
        used_mib=sum(as_int(w.get("memoryMib")) or 0 for w in items),
        workloads=tuple(items),
    )


def check_budget(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = settings(BUDGET_SCHEMA, args.get_config())
    for urn, plan in stack_plans(args.resources):
        found = assess(host_name(urn), plan, config)
        if found.declared_reserve_mib is not None and found.declared_reserve_mib < found.floor_reserve_mib:
            report_violation(
                f"{found.host} ({found.cloud}): the plan reserves {found.declared_reserve_mib} MiB for the OS, the "
                f"pack requires at least {found.floor_reserve_mib} (osReserveMib / reserveByCloudMib); set "
                f"platform:host.osReserveMib to {found.floor_reserve_mib} or more, so the stack's memory output "
                "and this report agree",
                urn,
            )
        if not found.fits:
            report_violation(
                f"{found.host} ({found.cloud}): used {found.used_mib} MiB + OS reserve {found.reserve_mib} MiB = "
                f"{found.needed_mib} MiB of limit {found.limit_mib} MiB: short by {-found.free_mib} MiB. "
                f"Largest workloads (MiB): {found.largest()}. Move workloads to another host, shrink their "
                "memoryMib, or give the host more memory (platform:host.memoryMib).",
                urn,
            )


def check_headroom(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = settings(HEADROOM_SCHEMA, args.get_config())
    headroom = float(config["headroomPercent"])
    for urn, plan in stack_plans(args.resources):
        found = assess(host_name(urn), plan, config)
        if found.fits and found.free_percent < headroom:
            report_violation(
                f"{found.summary()} ({found.free_percent:.1f}% of usable, below the {headroom:g}% headroom). "
                f"Largest workloads (MiB): {found.largest()}.",
                urn,
            )


memory_budget = StackValidationPolicy(
    name="memory-budget",
    description="Each host's workloads (existing ones included) plus the OS reserve fit its usable memory.",
    validate=check_budget,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=BUDGET_SCHEMA,
    remediation_steps="Move workloads to a host with room, lower their memoryMib, or resize the host.",
)

memory_headroom = StackValidationPolicy(
    name="memory-headroom",
    description="Each host keeps a share of its usable memory free after the workloads and the OS reserve.",
    validate=check_headroom,
    enforcement_level=EnforcementLevel.ADVISORY,
    severity=Severity.LOW,
    config_schema=HEADROOM_SCHEMA,
    remediation_steps="A host this full has no room for a spike: plan the next workload elsewhere.",
)
