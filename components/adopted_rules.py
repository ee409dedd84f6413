"""Rules in an adopted Alibaba group that the program does not manage, and which of them defeat the plan.

Alibaba keeps every rule as its own resource, so the hand-made rules of an adopted group stay
beside the plan's. An accept at priority 1..99 beats the plan's deny-all at 100 (lower number
wins; at equal priority a drop wins), so least privilege is not real while it exists; a
hand-made rule identical to one of the plan's is silently taken over by the program and later
revoked. The program marks its own rules' descriptions with ``MARKER``; everything else in the
group is hand-made.

The judging is pure, over plain dicts (``GroupRule``); only ``read_group_rules`` asks the cloud.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

import pulumi
import pulumi_alicloud as alicloud

from components.rules import Rule
from plan import NAMESPACE, Exposure, PortPlan
from policies.facts import WORLD_PREFIX_LENGTH, reaches_world

MARKER = "platform: "
"""Every rule the program writes carries a description starting with this; no hand-made rule should."""

NIC_TYPE = "intranet"  # VPC groups only take "intranet"
DENY_ALL_PRIORITY = 100
# Alibaba: 1 is the highest priority, 100 the lowest; allow rules win over the final deny.
_PRIORITY = {"accept": 1, "drop": DENY_ALL_PRIORITY}


class GroupRule(TypedDict):
    """One rule of a group, as the program writes it or the provider's data source reads it."""

    direction: str  # "ingress" | "egress"
    ip_protocol: str  # "tcp" | "udp" | "icmp" | "gre" | "all"
    port_range: str  # "22/22", "-1/-1"
    cidr: str  # the source (ingress) or destination (egress) CIDR; "" when the peer is a group
    peer_group: str  # the source/destination group id; "" when the peer is a CIDR
    policy: str  # "accept" | "drop"
    priority: int
    nic_type: str
    description: str


def alibaba_rule(rule: Rule) -> GroupRule:
    """How the program writes one of the plan's rules into an Alibaba group."""
    return GroupRule(
        direction=rule.direction,
        ip_protocol=rule.protocol,
        port_range="-1/-1" if rule.port is None else f"{rule.port}/{rule.port}",
        cidr=rule.cidr,
        peer_group="",
        policy=rule.action,
        priority=_PRIORITY[rule.action],
        nic_type=NIC_TYPE,
        description=MARKER + rule.description,
    )


# ---------------------------------------------------------------------------------------
# Reading (the only part that asks the cloud)
# ---------------------------------------------------------------------------------------


def read_group_rules(group_id: str, opts: pulumi.InvokeOptions | None = None) -> list[GroupRule]:
    """The group's rules now, both directions, through the provider's data source."""
    result = alicloud.ecs.get_security_group_rules(group_id=group_id, nic_type=NIC_TYPE, opts=opts)
    rules: list[GroupRule] = []
    for found in result.rules or ():
        ingress = found.direction == "ingress"
        rules.append(
            GroupRule(
                direction=found.direction,
                ip_protocol=(found.ip_protocol or "").lower(),
                port_range=found.port_range or "",
                cidr=(found.source_cidr_ip if ingress else found.dest_cidr_ip) or "",
                peer_group=(found.source_group_id if ingress else found.dest_group_id) or "",
                policy=(found.policy or "").lower(),
                priority=int(found.priority),
                nic_type=found.nic_type or NIC_TYPE,
                description=found.description or "",
            )
        )
    return rules


# ---------------------------------------------------------------------------------------
# Judging (pure)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    rule: GroupRule
    reasons: tuple[str, ...]


def sensitive_ports(ports: PortPlan) -> dict[tuple[int, str], str]:
    """(port, protocol) -> what listens there: the workloads' ports and SSH, less what the plan itself makes public."""
    listening = {(ports.ssh_port, "tcp"): "SSH"}
    for workload in ports.workloads:
        for spec in workload.ports:
            listening.setdefault((spec.port, spec.protocol), workload.name)
    public = {(spec.port, spec.protocol) for w in ports.workloads for spec in w.ports if spec.expose == Exposure.PUBLIC}
    return {key: what for key, what in listening.items() if key not in public}


def defeating_rules(
    existing: Iterable[GroupRule], managed: Sequence[GroupRule], sensitive: Mapping[tuple[int, str], str]
) -> list[Finding]:
    """The hand-made rules (no ``MARKER``) that defeat the plan, each with why.

    Rules carrying the marker are the program's: the plan's own, or stale ones from an earlier
    plan that the engine deletes. A hand-made rule defeats the plan when it is identical to a
    managed rule (the program would take it over and later revoke it), an accept that beats the
    deny-all, or an ingress accept open to the world on a workload port or SSH.
    """
    identities = {_identity(rule) for rule in managed}
    hand_made = [rule for rule in existing if not rule["description"].startswith(MARKER)]
    joint = _jointly_open(hand_made, sensitive)
    findings = []
    for index, rule in enumerate(hand_made):
        reasons = (*_reasons(rule, identities, sensitive), *joint.get(index, ()))
        if reasons:
            findings.append(Finding(rule, reasons))
    return findings


def _jointly_open(rules: Sequence[GroupRule], sensitive: Mapping[tuple[int, str], str]) -> dict[int, list[str]]:
    """Rules none of which is the world alone, but whose sources together cover more than a /8 on a
    sensitive port (0.0.0.0/1 and 128.0.0.0/1 are all of IPv4): index -> why."""
    why: dict[int, list[str]] = {}
    for (port, protocol), what in sorted(sensitive.items()):
        opening = [
            (index, network)
            for index, rule in enumerate(rules)
            if rule["direction"] == "ingress" and rule["policy"] == "accept" and _opens(rule, port, protocol)
            if (network := _ipv4(rule["cidr"])) is not None and not reaches_world([network])
        ]
        if len(opening) > 1 and reaches_world(network for _, network in opening):
            for index, _ in opening:
                others = len(opening) - 1
                why.setdefault(index, []).append(
                    f"with {others} other hand-made rule{'s' if others != 1 else ''} opens {what} {port}/{protocol} "
                    f"to more than a /{WORLD_PREFIX_LENGTH} (the world)"
                )
    return why


def _ipv4(cidr: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:
        return None


def _reasons(
    rule: GroupRule, identities: set[tuple[object, ...]], sensitive: Mapping[tuple[int, str], str]
) -> tuple[str, ...]:
    if _identity(rule) in identities:
        return ("identical to a rule of the plan: `pulumi up` would take it over and a later plan would revoke it",)
    if rule["policy"] != "accept":
        return ()
    reasons = []
    if rule["priority"] < DENY_ALL_PRIORITY:
        reasons.append(f"beats the plan's deny-all at priority {DENY_ALL_PRIORITY}")
    if rule["direction"] == "ingress" and reaches_world([rule["cidr"]]):
        opened = [
            f"{what} {port}/{protocol}"
            for (port, protocol), what in sorted(sensitive.items())
            if _opens(rule, port, protocol)
        ]
        if opened:
            reasons.append(f"opens {', '.join(opened)} to the world")
    return tuple(reasons)


def _identity(rule: GroupRule) -> tuple[object, ...]:
    return (
        rule["direction"],
        rule["ip_protocol"],
        rule["port_range"],
        rule["cidr"],
        rule["peer_group"],
        rule["policy"],
        rule["priority"],
    )


def _opens(rule: GroupRule, port: int, protocol: str) -> bool:
    if rule["ip_protocol"] not in (protocol, "all"):
        return False
    low, _, high = rule["port_range"].partition("/")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        return False
    return (first, last) == (-1, -1) or first <= port <= last


# ---------------------------------------------------------------------------------------
# Explaining
# ---------------------------------------------------------------------------------------


def refusal(findings: Sequence[Finding], group_id: str, region: str | None) -> str:
    """A heading, one line per rule (what it is, why, the command that removes it), the console way."""
    count = f"{len(findings)} hand-made rule{'s' if len(findings) != 1 else ''}"
    lines = [
        f"{NAMESPACE}:firewall.securityGroupId {group_id}: the adopted group holds {count} that defeat the plan; "
        f"remove each with the command on its line, or set {NAMESPACE}:firewall.allowUnmanagedRules: true "
        "to proceed knowingly:",
        *(
            f"- {describe(f.rule)}: {'; '.join(f.reasons)}. Remove: {revoke_command(f.rule, group_id, region)}"
            for f in findings
        ),
        f"Or in the ECS console: Network & Security > Security Groups > {group_id} > Manage Rules, "
        "delete each rule above on its Inbound or Outbound tab.",
    ]
    return "\n".join(lines)


def describe(rule: GroupRule) -> str:
    """``ingress tcp 22/22 from 0.0.0.0/0 accept priority 1 "description"``."""
    peer = rule["cidr"] or rule["peer_group"] or "?"
    way = "from" if rule["direction"] == "ingress" else "to"
    description = json.dumps(rule["description"], ensure_ascii=False)
    return (
        f"{rule['direction']} {rule['ip_protocol']} {rule['port_range']} {way} {peer} "
        f"{rule['policy']} priority {rule['priority']} {description}"
    )


def revoke_command(rule: GroupRule, group_id: str, region: str | None) -> str:
    """The ``aliyun`` CLI call that removes exactly this rule."""
    ingress = rule["direction"] == "ingress"
    if rule["cidr"]:
        peer = ["--SourceCidrIp" if ingress else "--DestCidrIp", rule["cidr"]]
    else:
        peer = ["--SourceGroupId" if ingress else "--DestGroupId", rule["peer_group"]]
    words = [
        *("aliyun", "ecs", "RevokeSecurityGroup" if ingress else "RevokeSecurityGroupEgress"),
        *("--SecurityGroupId", group_id),
        *("--IpProtocol", rule["ip_protocol"]),
        *("--PortRange", rule["port_range"]),
        *peer,
        *("--Policy", rule["policy"]),
        *("--Priority", str(rule["priority"])),
        *("--NicType", rule["nic_type"]),
    ]
    # The region goes first, unquoted when it is the placeholder the reader fills in.
    region_words = f"--RegionId {shlex.quote(region) if region else '<region>'}"
    quoted = [shlex.quote(word) for word in words]
    return " ".join([*quoted[:3], region_words, *quoted[3:]])
