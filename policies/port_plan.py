"""port-plan: one port, one workload per host; services inside their family's range; ranges disjoint.

The ranges are pack config, so a team changes the port plan in one JSON file. The defaults
keep seed 004's ranges that are sound (LoomaCRM 8700-8799, Zervigo Future 8200-8299, Zervigo
blockchain 8300-8599), add ranges around the seeds' 8100/8110 (ai) and the shared service's
8120 (chosen here: seed 000 gives 8120 or 8207, seed 001 reuses 8207, which is Zervigo's), and
reserve the per-version isolated database ports. Seed 004's Zervigo DAO range 9200-9299 is
left out on purpose: it contains Elasticsearch's 9200 and the isolated 9202-9204, which this
policy refuses; give DAO a free range before it ships.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from ._common import ISOLATED_DATABASE_PORTS, as_int, plain, settings, workloads
from .facts import HOST

_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}

DEFAULT_FAMILIES = {
    "ai": {"first": 8100, "last": 8119},
    "shared": {"first": 8120, "last": 8139},
    "zervigo-future": {"first": 8200, "last": 8299},
    "zervigo-blockchain": {"first": 8300, "last": 8599},
    "looma-crm": {"first": 8700, "last": 8799},
}
DEFAULT_RESERVED = {group: list(ports) for group, ports in ISOLATED_DATABASE_PORTS.items()}

SCHEMA = PolicyConfigSchema(
    properties={
        "families": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"first": _PORT, "last": _PORT},
                "required": ["first", "last"],
                "additionalProperties": False,
            },
            "default": DEFAULT_FAMILIES,
            "description": "service family -> its port range {first, last}; ranges must not overlap",
        },
        "reservedPorts": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": _PORT},
            "default": DEFAULT_RESERVED,
            "description": "ports set aside (e.g. isolated databases): no family range may contain them",
        },
    }
)

Range = tuple[str, int, int]


def check(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != HOST or "plan" not in args.props:
        return
    config = settings(SCHEMA, args.get_config())
    ranges = _ranges(config["families"])
    for problem in _plan_problems(ranges, plain(config["reservedPorts"])):
        report_violation(problem, None)
    for problem in _workload_problems(plain(args.props["plan"]), ranges):
        report_violation(problem, None)


def _ranges(families: Mapping[str, Any]) -> list[Range]:
    return sorted(
        ((name, as_int(spec["first"]) or 0, as_int(spec["last"]) or 0) for name, spec in plain(families).items()),
        key=lambda r: (r[1], r[2], r[0]),
    )


def _plan_problems(ranges: list[Range], reserved: Mapping[str, list[Any]]) -> list[str]:
    """The port plan itself (pack config): ranges well formed, disjoint, clear of reserved ports."""
    problems = [
        f"port plan: family {name} range {first}-{last} is empty (first > last)"
        for name, first, last in ranges
        if first > last
    ]
    for index, (name, first, last) in enumerate(ranges):
        for other, o_first, o_last in ranges[index + 1 :]:
            if first <= o_last and o_first <= last:
                problems.append(
                    f"port plan: family {name} {first}-{last} overlaps family {other} {o_first}-{o_last} "
                    f"(shared {max(first, o_first)}-{min(last, o_last)}): give each family its own range"
                )
    owners: dict[int, str] = {}
    for group, ports in sorted(reserved.items()):
        for port in (as_int(p) for p in ports):
            if port is None:
                continue
            if port in owners and owners[port] != group:
                problems.append(f"port plan: reserved port {port} is listed by both {owners[port]} and {group}")
            owners.setdefault(port, group)
            for name, first, last in ranges:
                if first <= port <= last:
                    problems.append(
                        f"port plan: family {name} range {first}-{last} contains port {port} reserved for {group}"
                    )
    return problems


def _workload_problems(plan: Mapping[str, Any], ranges: list[Range]) -> list[str]:
    problems: list[str] = []
    owners: dict[tuple[int, str], str] = {}
    families = {name: (first, last) for name, first, last in ranges}
    for workload in workloads(plan):
        name = str(workload.get("name"))
        for spec in workload.get("ports") or []:
            port, protocol = as_int(spec.get("port")) or 0, str(spec.get("protocol") or "tcp")
            if (port, protocol) in owners:
                problems.append(
                    f"port {port}/{protocol} is declared by both {owners[port, protocol]} and {name}: "
                    "one port belongs to one workload on a host"
                )
            owners.setdefault((port, protocol), name)
            if workload.get("role") == "service":
                problems += _service_problem(name, port, workload.get("family"), families)
            else:
                problems += [
                    f"port {port} of {name} ({workload.get('role')}) lies in family {family}'s range "
                    f"{first}-{last}: a {family} service could be given it"
                    for family, (first, last) in families.items()
                    if first <= port <= last
                ]
    return problems


def _service_problem(name: str, port: int, family: Any, families: Mapping[str, tuple[int, int]]) -> list[str]:
    if family not in families:
        known = ", ".join(sorted(families)) or "none"
        return [f"service {name}: family {family!r} has no port range in the port plan (families: {known})"]
    first, last = families[family]
    if not first <= port <= last:
        return [f"service {name}: port {port} is outside its family {family}'s range {first}-{last}"]
    return []


port_plan = ResourceValidationPolicy(
    name="port-plan",
    description="No two workloads on a host share a port; each service's port lies in its family's range; "
    "the port plan's ranges do not overlap each other or the reserved ports.",
    validate=check,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=SCHEMA,
    remediation_steps="Pick a free port inside the service's family range, or fix the ranges in the pack config "
    "(--policy-pack-config).",
)
