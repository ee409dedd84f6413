"""egress-least-privilege: outbound traffic is an allowlist that ends in deny-all.

No accepted egress rule opens every protocol or every port; each one is on the allowlist
(DNS, HTTP/HTTPS, NTP by default, or a database port to the peer host's /32); and each group
ends in a deny-all egress rule evaluated after every allow. Both clouds let all outbound
traffic out when a group has no egress rule, so a group without the final deny fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._common import DATABASE_PORTS, as_int, covers, is_host_route, known, plain, settings, stack_plans
from ._rules import GroupKey, Rule, plan_groups, rules_by_group
from .facts import FIREWALL, is_world

DEFAULT_ALLOWED = [
    {"protocol": "udp", "port": 53, "to": "any", "why": "DNS"},
    {"protocol": "tcp", "port": 53, "to": "any", "why": "DNS over TCP"},
    {"protocol": "tcp", "port": 80, "to": "any", "why": "HTTP (packages, images)"},
    {"protocol": "tcp", "port": 443, "to": "any", "why": "HTTPS (packages, images)"},
    {"protocol": "udp", "port": 123, "to": "any", "why": "NTP"},
]
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
SCHEMA = PolicyConfigSchema(
    properties={
        "allowed": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "protocol": {"enum": ["tcp", "udp"]},
                    "port": _PORT,
                    "to": {"type": "string", "description": "'any', or a CIDR the destination must lie in"},
                    "why": {"type": "string"},
                },
                "required": ["protocol", "port", "to"],
                "additionalProperties": False,
            },
            "default": DEFAULT_ALLOWED,
            "description": "egress any host may use",
        },
        "peerDatabasePorts": {
            "type": "array",
            "items": _PORT,
            "default": list(DATABASE_PORTS),
            "description": "database ports a host may reach on its peer's /32 (tcp); beside them, what the peer's "
            "stack says it opens to this host (its peerIngress output: the metrics tunnel's SSH)",
        },
    }
)


def check(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = settings(SCHEMA, args.get_config())
    groups = rules_by_group(args.resources)
    peers = _peers(args)
    served = _served(args)
    for key, rules in groups.items():
        egress = [r for r in rules if r.direction == "egress"]
        ports = [*config["peerDatabasePorts"], *served.get(key, ())]
        for message, urn in _problems(key, egress, peers.get(key), config, ports, rules[0].urn):
            report_violation(message, urn)


def _peers(args: StackValidationArgs) -> dict[GroupKey, str]:
    """Each group's peer /32, from the plan that governs the group."""
    plans = stack_plans(args.resources, owner=FIREWALL)
    return {
        key: str(plan["peerCidr"])
        for urn, plan in plans
        if plan.get("peerCidr")
        for key in plan_groups(args.resources, urn, len(plans))
    }


def _served(args: StackValidationArgs) -> dict[GroupKey, list[int]]:
    """The ports the peer serves to each group's host, as its firewall component registers them
    (``peerPorts``: the peer stack's own ``peerIngress`` output, or the peer's default plan)."""
    plans = stack_plans(args.resources, owner=FIREWALL)
    found: dict[GroupKey, list[int]] = {}
    for resource in args.resources:
        ports = plain(known(resource.props, "peerPorts")) if resource.resource_type == FIREWALL else None
        if not isinstance(ports, list):
            continue
        for key in plan_groups(args.resources, resource.urn, len(plans)):
            found.setdefault(key, []).extend(p for p in (as_int(port) for port in ports) if p is not None)
    return found


def _problems(
    key: GroupKey,
    egress: list[Rule],
    peer: str | None,
    config: Mapping[str, Any],
    peer_ports: list[Any],
    first_urn: str,
) -> list[tuple[str, str]]:
    group = key[1]
    found: list[tuple[str, str]] = []
    accepts = [r for r in egress if r.action == "accept"]
    for rule in accepts:
        why = _not_allowed(rule, peer, plain(config["allowed"]), peer_ports)
        if why:
            found.append((f"{rule.describe()}: {why}", rule.urn))
    deny = next((r for r in egress if r.action == "drop" and r.every_port and is_world(r.cidr)), None)
    if deny is None:
        found.append(
            (
                f"group {group}: no deny-all egress rule, so the cloud's default lets every other outbound "
                "connection out; end the egress rules with a drop of all protocols to 0.0.0.0/0",
                first_urn,
            )
        )
    else:
        late = [r for r in accepts if r.order > deny.order]
        if late:
            names = "; ".join(r.describe() for r in late[:3])
            found.append((f"group {group}: {deny.describe()} is not last; after it: {names}", deny.urn))
    return found


def _not_allowed(rule: Rule, peer: str | None, allowed: Sequence[Mapping[str, Any]], db_ports: Sequence[Any]) -> str:
    if rule.every_port:
        target = "the whole Internet" if is_world(rule.cidr) else rule.peer
        return f"allows every {'protocol' if rule.protocol == 'all' else 'port'} to {target}"
    if rule.cidr is None:
        return f"destination {rule.peer} is not a CIDR the allowlist can check"
    assert rule.ports is not None
    ports = [port for low, high in rule.ports for port in range(low, high + 1)]
    if len(ports) > 64:
        return f"opens a range of {len(ports)} ports"
    refused = [port for port in ports if not _allowed(rule, port, peer, allowed, db_ports)]
    if not refused:
        return ""
    return f"{rule.protocol}/{','.join(map(str, refused))} to {rule.peer} is not on the egress allowlist"


def _allowed(
    rule: Rule, port: int, peer: str | None, allowed: Sequence[Mapping[str, Any]], db_ports: Sequence[Any]
) -> bool:
    for entry in allowed:
        same = entry["protocol"] == rule.protocol and int(entry["port"]) == port
        if same and (entry["to"] == "any" or covers(str(entry["to"]), rule.cidr)):
            return True
    if rule.protocol == "tcp" and port in {int(p) for p in db_ports}:
        # The peer's database ports: to the plan's peer /32 when the group's plan is known.
        return rule.cidr == peer if peer else is_host_route(rule.cidr)
    return False


egress_least_privilege = StackValidationPolicy(
    name="egress-least-privilege",
    description="Egress is an allowlist (DNS, HTTP/HTTPS, NTP, the peer's database ports and what the peer "
    "opens to this host) ending in deny-all.",
    validate=check,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.MEDIUM,
    config_schema=SCHEMA,
    remediation_steps="Add the destination to the allowlist in the pack config if it is needed, with a reason; "
    "keep the final deny-all egress rule last.",
)
