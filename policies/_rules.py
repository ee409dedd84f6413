"""Security-group rules of both clouds in one shape, with the order the cloud evaluates them in.

Alibaba: one ``SecurityGroupRule`` per rule; priority 1 is evaluated first, and at equal
priority a drop wins over an accept. Tencent: an ordered ``GroupRuleSet`` (first match wins),
single ``GroupRule`` resources, or ``GroupLiteRule`` strings ``ACTION#SOURCE#PORT#PROTOCOL``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pulumi_policy import PolicyResource

from ._common import UNKNOWN, as_int, covers, known
from .facts import ALIBABA_RULE, GROUPS, STACK, TENCENT_RULE_SET, is_world

TENCENT_RULE = "tencentcloud:Security/groupRule:GroupRule"
TENCENT_LITE_RULE = "tencentcloud:Security/groupLiteRule:GroupLiteRule"

PortRanges = tuple[tuple[int, int], ...]
GroupKey = tuple[str, str]  # ("urn", group resource), ("id", group id) or ("unlinked", rule resource)


@dataclass(frozen=True)
class Rule:
    direction: str  # "ingress" | "egress"
    action: str  # "accept" | "drop"
    protocol: str  # "tcp", "udp", "icmp", ... or "all"
    ports: PortRanges | None  # None: every port
    cidr: str | None  # the source (ingress) or destination (egress); None for a group or template
    peer: str  # what the rule names as its peer, for messages
    order: tuple[int, int]  # evaluation order: lower first
    where: str  # "resource-name" or "resource-name ingresses[3]"
    urn: str = ""  # the resource that declares it

    def opens(self, port: int, protocol: str = "tcp") -> bool:
        if self.protocol not in ("all", protocol):
            return False
        return self.ports is None or any(low <= port <= high for low, high in self.ports)

    @property
    def every_port(self) -> bool:
        return self.ports is None or self.protocol == "all"

    def port_text(self) -> str:
        if self.every_port:
            return "all ports"
        assert self.ports is not None
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports)

    def describe(self) -> str:
        way = "from" if self.direction == "ingress" else "to"
        return f"{self.where}: {self.action} {self.protocol} {self.port_text()} {way} {self.peer}"

    def shadowed_by(self, other: Rule) -> bool:
        """True when ``other`` is evaluated first and matches everything this rule matches."""
        if other.order >= self.order or other.direction != self.direction:
            return False
        if other.protocol not in ("all", self.protocol):
            return False
        if not other.every_port:
            if self.every_port:
                return False
            assert self.ports is not None
            assert other.ports is not None
            if not all(any(o_lo <= lo and hi <= o_hi for o_lo, o_hi in other.ports) for lo, hi in self.ports):
                return False
        return is_world(other.cidr) or covers(other.cidr, self.cidr)


def rules_of(resource_type: str, props: Mapping[str, Any], name: str, urn: str = "") -> list[Rule]:
    """The rules one resource declares (an empty list for any other resource type)."""
    return [replace(rule, urn=urn) for rule in _rules_of(resource_type, props, name)]


def _rules_of(resource_type: str, props: Mapping[str, Any], name: str) -> list[Rule]:
    if resource_type == ALIBABA_RULE:
        return [_alibaba(props, name)]
    if resource_type == TENCENT_RULE_SET:
        return [
            _tencent_entry(entry, direction, index, f"{name} {key}[{index}]")
            for direction, key in (("ingress", "ingresses"), ("egress", "egresses"))
            for index, entry in enumerate(props.get(key) or [])
        ]
    if resource_type == TENCENT_RULE:
        return [_tencent_rule(props, name)]
    if resource_type == TENCENT_LITE_RULE:
        return [
            _lite(str(text), direction, index, f"{name} {key}[{index}]")
            for direction, key in (("ingress", "ingresses"), ("egress", "egresses"))
            for index, text in enumerate(props.get(key) or [])
        ]
    return []


def group_key(resource: PolicyResource) -> GroupKey:
    """The group a rule resource belongs to: the group resource it depends on, or the literal id.

    A created group's id is unknown during preview, so the property dependency is the link;
    an adopted group is named by its id.
    """
    for dependency in resource.property_dependencies.get("securityGroupId", []):
        if dependency.resource_type in GROUPS:
            return ("urn", dependency.urn)
    value = known(resource.props, "securityGroupId")
    if value is UNKNOWN or value is None:
        return ("unlinked", resource.urn)
    return ("id", str(value))


def rules_by_group(resources: Iterable[PolicyResource]) -> dict[GroupKey, list[Rule]]:
    """Every rule in a stack policy's resources, by the group it belongs to, in evaluation order."""
    groups: dict[GroupKey, list[Rule]] = {}
    for resource in resources:
        rules = rules_of(resource.resource_type, resource.props, resource.name, resource.urn)
        if rules:
            groups.setdefault(group_key(resource), []).extend(rules)
    return {key: sorted(rules, key=lambda r: r.order) for key, rules in groups.items()}


def plan_groups(resources: Iterable[PolicyResource], plan_urn: str, plans: int) -> set[GroupKey]:
    """The groups a plan governs: the group ids exported by its resource (and, on a one-plan
    stack, by the stack), and the group resources it parents (on a one-plan stack, every group
    resource: a created group's id is unknown during preview, so the resource is the link)."""
    keys: set[GroupKey] = set()
    for resource in resources:
        if resource.urn == plan_urn or (plans == 1 and resource.resource_type == STACK):
            for name in ("securityGroupId", "security_group_id"):
                value = known(resource.props, name)
                if isinstance(value, str) and value:
                    keys.add(("id", value))
        if resource.resource_type in GROUPS:
            parent = resource.parent.urn if resource.parent is not None else None
            if plans == 1 or parent == plan_urn:
                keys.add(("urn", resource.urn))
    return keys


def _alibaba(props: Mapping[str, Any], name: str) -> Rule:
    protocol = str(props.get("ipProtocol") or "all").lower()
    start, _, end = str(props.get("portRange") or "-1/-1").partition("/")
    low, high = as_int(start), as_int(end or start)
    ports = None if protocol == "all" or low is None or low < 0 else ((low, high if high is not None else low),)
    action = str(props.get("policy") or "accept").lower()
    cidr = props.get("cidrIp") or props.get("ipv6CidrIp")
    peer = cidr or props.get("sourceSecurityGroupId") or props.get("prefixListId") or "?"
    priority = as_int(props.get("priority")) or 1
    return Rule(
        direction=str(props.get("type") or "ingress").lower(),
        action=action,
        protocol=protocol,
        ports=ports,
        cidr=cidr,
        peer=str(peer),
        # At equal priority Alibaba applies the drop first.
        order=(priority, 0 if action == "drop" else 1),
        where=name,
    )


def _tencent_entry(entry: Mapping[str, Any], direction: str, index: int, where: str) -> Rule:
    protocol = str(entry.get("protocol") or "all").lower()
    cidr = entry.get("cidrBlock") or entry.get("ipv6CidrBlock")
    peer = cidr or entry.get("sourceSecurityId") or entry.get("addressTemplateId") or entry.get("addressTemplateGroup")
    return Rule(
        direction=direction,
        action=str(entry.get("action") or "accept").lower(),
        protocol=protocol,
        ports=_tencent_ports(entry.get("port"), protocol),
        cidr=cidr,
        peer=str(peer or "?"),
        order=(index, 0),
        where=where,
    )


def _tencent_rule(props: Mapping[str, Any], name: str) -> Rule:
    protocol = str(props.get("ipProtocol") or "all").lower()
    cidr = props.get("cidrIp")
    peer = cidr or props.get("sourceSgid") or "?"
    return Rule(
        direction=str(props.get("type") or "ingress").lower(),
        action=str(props.get("policy") or "accept").lower(),
        protocol=protocol,
        ports=_tencent_ports(props.get("portRange"), protocol),
        cidr=cidr,
        peer=str(peer),
        order=(as_int(props.get("policyIndex")) or 0, 0),
        where=name,
    )


def _lite(text: str, direction: str, index: int, where: str) -> Rule:
    action, source, port, protocol = ([*text.split("#"), "", "", "", ""])[:4]
    protocol = (protocol or "all").lower()
    cidr = source if source and not source.startswith(("sg-", "ipm")) else None
    return Rule(
        direction=direction,
        action=(action or "accept").lower(),
        protocol=protocol,
        ports=_tencent_ports(port, protocol),
        cidr=cidr,
        peer=source or "?",
        order=(index, 0),
        where=where,
    )


def _tencent_ports(value: Any, protocol: str) -> PortRanges | None:
    """``80``, ``80,443``, ``80-90`` or ``ALL`` (also the default) as port ranges."""
    text = str(value or "ALL").strip()
    if protocol == "all" or text.upper() == "ALL":
        return None
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        start, _, end = part.strip().partition("-")
        low, high = as_int(start), as_int(end or start)
        if low is None or high is None:
            return None  # unreadable: treat as every port, the conservative reading
        ranges.append((low, high))
    return tuple(ranges)
