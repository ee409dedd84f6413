"""no-public-database: a database port, or SSH, is never open to the whole Internet.

The whole Internet is 0.0.0.0/0 or ::/0, and also any set of sources that together hold more
addresses than a /8 (``worldPrefixLength``; for IPv6 the same share of its space, 2**120):
0.0.0.0/1 + 128.0.0.0/1 is the world as surely as 0.0.0.0/0. Sources are unioned per port,
so a wide set on an HTTP port is fine while the same set on 22 or 3306 is not. Checked:

- each ingress accept rule, of both clouds and whatever wrote it, on its own;
- per security group and per guarded port, every ingress accept rule that opens that port
  together (a rule's sources minus those of drops the cloud evaluates before it), so a world
  split into narrow rules is found too;
- the plan each host carries: a database declared ``expose: public``, or whose ``expose``
  names sources (the peer's CIDR, the admins') that add up to the world, and admin CIDRs
  (SSH) that do, so a bad plan is named where it is written, before any rule is derived.

A stack policy: the rules of one group live in many resources (one per Alibaba rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._common import (
    DATABASE_PORTS,
    SSH_PORTS,
    as_int,
    exposure_sources,
    host_name,
    is_database,
    listed,
    settings,
    stack_plans,
    workloads,
)
from ._rules import GroupKey, Rule, rules_by_group
from .facts import HOST, WORLD_PREFIX_LENGTH, Network, is_world, networks, reaches_world, span_text, world_versions

_PORTS = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}}
SCHEMA = PolicyConfigSchema(
    properties={
        "databasePorts": {
            **_PORTS,
            "default": list(DATABASE_PORTS),
            "description": "ports of database engines (the plan's database ports are guarded too)",
        },
        "sshPorts": {**_PORTS, "default": list(SSH_PORTS), "description": "ports SSH listens on (and the plan's)"},
        "worldPrefixLength": {
            "type": "integer",
            "minimum": 0,
            "maximum": 32,
            "default": WORLD_PREFIX_LENGTH,
            "description": "sources that together hold more addresses than one network of this IPv4 prefix "
            "length (for IPv6 the same share of its space) count as the whole Internet on a database or SSH "
            "port; 8: more than a /8 (2^24 IPv4, 2^120 IPv6 addresses); 0: only the whole address space",
        },
    }
)

Plan = Mapping[str, Any]


def check(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = settings(SCHEMA, args.get_config())
    world = int(config["worldPrefixLength"])
    plans = stack_plans(args.resources, owner=HOST)
    guarded = _guarded(config, [plan for _, plan in plans])
    for key, rules in rules_by_group(args.resources).items():
        for rule in rules:
            message = _open_rule(rule, guarded, world)
            if message:
                report_violation(message, rule.urn)
        for message, urn in _open_together(key, rules, guarded, world):
            report_violation(message, urn)
    for urn, plan in plans:
        for message in _plan_exposures(plan, world):
            report_violation(message, urn)


def _guarded(config: Mapping[str, Any], plans: Sequence[Plan]) -> dict[int, str]:
    """Port -> "database" or "SSH": the configured ports, and each plan's database and SSH ports."""
    guarded = {int(port): "database" for port in config["databasePorts"]}
    for plan in plans:
        for workload in workloads(plan):
            if is_database(workload):
                guarded |= {as_int(spec.get("port")) or 0: "database" for spec in workload.get("ports") or []}
    guarded |= {int(port): "SSH" for port in config["sshPorts"]}
    guarded |= {port: "SSH" for port in (as_int(plan.get("sshPort")) for plan in plans) if port}
    guarded.pop(0, None)
    return guarded


def _named(ports: Iterable[int], guarded: Mapping[int, str], protocol: str = "") -> str:
    suffix = f"/{protocol}" if protocol else ""
    return ", ".join(f"{port}{suffix} ({guarded[port]})" for port in ports)


def _open_rule(rule: Rule, guarded: Mapping[int, str], world: int) -> str:
    """One accept rule whose own source is the world, on a guarded port ('' when it is not)."""
    if rule.direction != "ingress" or rule.action != "accept" or not reaches_world([rule.cidr], world):
        return ""
    wider = "" if is_world(rule.cidr) else f" ({rule.cidr} is wider than a /{world})"
    if rule.every_port:
        return f"{rule.describe()}: opens every port, database and SSH ports included{wider}"
    hits = sorted(port for port in guarded if rule.opens(port, rule.protocol))
    if not hits:
        return ""
    return f"{rule.describe()}: opens {_named(hits, guarded)} to the whole Internet{wider}"


def _open_together(
    key: GroupKey, rules: Sequence[Rule], guarded: Mapping[int, str], world: int
) -> list[tuple[str, str]]:
    """Guarded ports that a group's accept rules open to the world together, though none does alone.

    One finding per protocol and set of rules, listing the ports they open together.
    """
    ingress = [r for r in rules if r.direction == "ingress" and r.cidr is not None]
    protocols = sorted({r.protocol for r in ingress if r.protocol != "all"} | {"tcp"})
    together: dict[tuple[str, tuple[Rule, ...]], tuple[list[int], list[Network]]] = {}
    for protocol in protocols:
        for port in sorted(guarded):
            opened = _effective(ingress, port, protocol)
            # A rule that is the world alone is reported on its own (_open_rule).
            if not opened or any(reaches_world([rule.cidr], world) for rule, _ in opened):
                continue
            versions = world_versions([network for _, left in opened for network in left], world)
            # Only the rules of the version (IPv4, IPv6) that reaches the world are named.
            opened = [(rule, [n for n in left if n.version in versions]) for rule, left in opened]
            opened = [(rule, left) for rule, left in opened if left]
            if opened:
                sources = [network for _, left in opened for network in left]
                entry = together.setdefault((protocol, tuple(r for r, _ in opened)), ([], sources))
                entry[0].append(port)
    found = []
    for (protocol, opening), (ports, sources) in together.items():
        where = listed([rule.where for rule in opening])
        found.append(
            (
                f"{_group_label(key)}: {len(opening)} accept rules ({where}) together open "
                f"{_named(ports, guarded, protocol)} to {span_text(sources, world)}: that is the whole Internet",
                key[1] if key[0] in ("urn", "unlinked") else opening[0].urn,
            )
        )
    return found


def _effective(ingress: Sequence[Rule], port: int, protocol: str) -> list[tuple[Rule, list[Network]]]:
    """Each accept rule that opens the port, with the sources no drop evaluated before it takes."""
    opened = []
    for rule in ingress:
        if rule.action != "accept" or not rule.opens(port, protocol):
            continue
        drops = [d.cidr for d in ingress if d.action == "drop" and d.order < rule.order and d.opens(port, protocol)]
        left = _without(networks([rule.cidr]), networks(drops))
        if left:
            opened.append((rule, left))
    return opened


def _without(kept: list[Network], holes: list[Network]) -> list[Network]:
    for hole in holes:
        remaining: list[Network] = []
        for network in kept:
            if network.version != hole.version or not network.overlaps(hole):  # type: ignore[arg-type]
                remaining.append(network)
            elif not network.subnet_of(hole):  # type: ignore[arg-type]
                remaining.extend(network.address_exclude(hole))  # type: ignore[arg-type]
        kept = remaining
    return kept


def _group_label(key: GroupKey) -> str:
    kind, value = key
    if kind == "id":
        return f"group {value}"
    if kind == "urn":
        return f"group {host_name(value)}"
    return f"{host_name(value)} (linked to no group)"


def _plan_exposures(plan: Plan, world: int) -> list[str]:
    found = []
    sources = exposure_sources(plan)
    for workload in workloads(plan):
        if not is_database(workload):
            continue
        for spec in workload.get("ports") or []:
            expose, port = str(spec.get("expose")), as_int(spec.get("port"))
            if expose == "public":
                found.append(
                    f"plan: database {workload.get('name')} exposes port {port} as public; "
                    "use expose: peer (the peer host's /32) or admins"
                )
            elif reaches_world(sources.get(expose, []), world):
                cidrs = sources[expose]
                found.append(
                    f"plan: database {workload.get('name')} exposes port {port} to {expose} ({listed(cidrs)}), "
                    f"together {span_text(cidrs, world)}: that is the whole Internet; "
                    "give it the peer host's /32 or the admins' own CIDRs"
                )
    admins = sources["admins"]
    literal = [cidr for cidr in admins if is_world(cidr)]
    found += [f"plan: admin CIDR {cidr} opens SSH to the whole Internet; list the admins' own" for cidr in literal]
    if not literal and reaches_world(admins, world):
        ssh = as_int(plan.get("sshPort")) or SSH_PORTS[0]
        found.append(
            f"plan: adminCidrs ({listed(admins)}) together hold {span_text(admins, world)}: they open SSH "
            f"(port {ssh}) to the whole Internet; list the admins' own"
        )
    return found


no_public_database = StackValidationPolicy(
    name="no-public-database",
    description="No security-group rule, alone or with the group's other rules, opens a database port or SSH to "
    "the whole Internet: 0.0.0.0/0, ::/0, or sources that together hold more addresses than a /8 "
    "(worldPrefixLength); no database, and no SSH, exposed in the plan to such sources.",
    validate=check,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    config_schema=SCHEMA,
    remediation_steps="Open database ports to the peer host's /32 only and SSH to the admins' own CIDRs.",
)
