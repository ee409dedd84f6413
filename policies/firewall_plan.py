"""firewall-matches-plan: a host's ingress rules open exactly what its plan exposes.

Every accepted ingress rule opens a port a workload on that host declares exposed, from the
source its exposure names (``public``: 0.0.0.0/0, ``peer``: the peer's /32, ``admins``: the
admin CIDRs), or SSH from the admins (and from the peer, for the metrics tunnel, when the plan
says ``sshFromPeer``); and every exposed port has a rule that takes effect
(no earlier drop shadows it). Rules are tied to their group through the property dependency
on the group resource (a created group) or the group id (an adopted one), on both clouds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._common import SSH_PORTS, as_int, covers, exposure_sources, host_name, stack_plans, workloads
from ._rules import GroupKey, Rule, plan_groups, rules_by_group
from .facts import FIREWALL

Expected = tuple[int, str, str]  # port, protocol, source CIDR


def check(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    plans = stack_plans(args.resources, owner=FIREWALL)
    groups = rules_by_group(args.resources)
    claimed: set[GroupKey] = set()
    for urn, plan in plans:
        keys = plan_groups(args.resources, urn, len(plans))
        claimed |= keys
        rules = [rule for key in keys for rule in groups.get(key, [])]
        for message, at in _mismatches(host_name(urn), plan, sorted(rules, key=lambda r: r.order)):
            report_violation(message, at or urn)
    for key, rules in groups.items():
        if key not in claimed and any(r.direction == "ingress" for r in rules):
            report_violation(
                f"rules of group {key[1]} are linked to no host's plan (no property dependency on a group the "
                "stack manages and no group id it exports), so nothing checks what they open",
                rules[0].urn,
            )


def expected_ingress(plan: Mapping[str, Any]) -> dict[Expected, str]:
    """What the plan opens: (port, protocol, source) -> why."""
    sources = exposure_sources(plan)
    ssh = as_int(plan.get("sshPort")) or SSH_PORTS[0]
    expected: dict[Expected, str] = {(ssh, "tcp", cidr): "SSH from admins" for cidr in sources["admins"]}
    if plan.get("sshFromPeer"):
        expected |= {(ssh, "tcp", cidr): "SSH from the peer (the metrics tunnel)" for cidr in sources["peer"]}
    for workload in workloads(plan):
        for spec in workload.get("ports") or []:
            for cidr in sources.get(str(spec.get("expose")), []):
                port, protocol = as_int(spec.get("port")) or 0, str(spec.get("protocol") or "tcp")
                expected[port, protocol, cidr] = f"{workload.get('name')} ({spec.get('expose')})"
    return expected


def _mismatches(host: str, plan: Mapping[str, Any], rules: list[Rule]) -> list[tuple[str, str]]:
    expected = expected_ingress(plan)
    ingress = [r for r in rules if r.direction == "ingress"]
    drops = [r for r in ingress if r.action == "drop"]
    found: list[tuple[str, str]] = []
    effective: list[Rule] = []
    for rule in (r for r in ingress if r.action == "accept"):
        extra = _unplanned(rule, expected)
        if extra:
            found.append((f"{host}: {rule.describe()} opens {extra}, which the plan does not expose", rule.urn))
        shadow = next((d for d in drops if rule.shadowed_by(d)), None)
        if shadow is not None:
            found.append((f"{host}: {rule.describe()} never takes effect: {shadow.describe()} comes first", rule.urn))
        else:
            effective.append(rule)
    for (port, protocol, cidr), why in sorted(expected.items()):
        if not any(r.opens(port, protocol) and r.cidr is not None and covers(r.cidr, cidr) for r in effective):
            found.append((f"{host}: the plan exposes {port}/{protocol} to {cidr} for {why}, but no rule opens it", ""))
    if not ingress and expected:
        found.append((f"{host}: no ingress rule is linked to this host's security group", ""))
    return found


def _unplanned(rule: Rule, expected: Mapping[Expected, str]) -> str:
    """What an accept rule opens beyond the plan, as text ('' when nothing)."""
    if rule.cidr is None:
        return f"access from {rule.peer} (a group or template, not a CIDR the plan names)"
    if rule.every_port:
        return "every port"
    assert rule.ports is not None
    planned = {(port, protocol) for port, protocol, cidr in expected if covers(cidr, rule.cidr)}
    extra = [port for low, high in rule.ports for port in range(low, high + 1) if (port, rule.protocol) not in planned]
    if not extra:
        return ""
    shown = ", ".join(str(p) for p in extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
    return f"{rule.protocol} {shown} to {rule.peer}"


firewall_matches_plan = StackValidationPolicy(
    name="firewall-matches-plan",
    description="Each host's ingress rules open exactly the ports its plan exposes, from the sources it names.",
    validate=check,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps="Derive rules from the plan (components/rules.py); change a workload's expose in the plan "
    "instead of adding rules by hand.",
)
