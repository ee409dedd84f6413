"""A stack's security group as an nftables ruleset, for the kernel of the namespace that plays its host.

The rules are the ones the program registers (read by ``policies._rules``, the shape the policy pack
reads), evaluated as each cloud documents:

- **Alibaba** (ECS API AuthorizeSecurityGroup / AuthorizeSecurityGroupEgress; "Security group
  rules", help.aliyun.com/en/ecs/user-guide/security-group-rules): priority 1-100, a smaller
  number first; at equal priority a drop rule wins. Stateful: a packet of an allowed session is
  allowed both ways. A basic group's implicit rules deny what no rule admits inbound and allow all
  outbound.
- **Tencent** ("Security Group", intl.cloud.tencent.com/document/product/213/18197): the rules top
  to bottom, the first that matches decides. Stateful as above. A group with no rule that matches
  rejects the traffic, inbound and outbound.

``policies._rules.Rule.order`` already sorts both clouds' rules into "the first match decides", so
each rule becomes one nftables rule in that order, and the cloud's implicit rule becomes the chain's
policy. A security group filters the instance's network interface, not its loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from policies._rules import Rule
from policies.facts import is_world

# What a packet that no rule matches gets, per cloud and direction (the docs above).
IMPLICIT = {
    "alibaba": {"ingress": "drop", "egress": "accept"},
    "tencent": {"ingress": "drop", "egress": "drop"},
}
HOOKS = {"ingress": ("input", "iifname"), "egress": ("output", "oifname")}


class UntranslatableError(ValueError):
    """A rule the namespace cannot enforce as the cloud would (another group as the peer, ...)."""


def ruleset(rules: Sequence[Rule], cloud: str, table: str = "security_group") -> str:
    """The nftables script (``nft -f``) that enforces ``rules`` as ``cloud`` does, replacing any
    earlier table of that name."""
    if cloud not in IMPLICIT:
        raise UntranslatableError(f"unknown cloud {cloud!r}; clouds: {', '.join(IMPLICIT)}")
    lines = [f"table inet {table}", f"delete table inet {table}", f"table inet {table} {{"]
    for direction, (hook, interface) in HOOKS.items():
        lines += [
            f"  chain {direction} {{",
            f"    type filter hook {hook} priority filter; policy {IMPLICIT[cloud][direction]};",
            '    ct state established,related accept comment "stateful: the reply of an allowed session"',
            f'    {interface} "lo" accept comment "the group filters the network interface, not loopback"',
        ]
        ordered = sorted((rule for rule in rules if rule.direction == direction), key=lambda rule: rule.order)
        lines += [f"    {statement(rule)}" for rule in ordered]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def statement(rule: Rule) -> str:
    """One rule as one nftables rule, with where it came from as its comment."""
    parts = []
    if rule.cidr is None:
        raise UntranslatableError(f"{rule.where}: names {rule.peer}, not an address block")
    if not is_world(rule.cidr):
        network = ipaddress.ip_network(rule.cidr, strict=False)
        family = "ip" if network.version == 4 else "ip6"
        parts.append(f"{family} {'saddr' if rule.direction == 'ingress' else 'daddr'} {network}")
    elif ":" in rule.cidr:
        parts.append("meta nfproto ipv6")
    else:
        parts.append("meta nfproto ipv4")
    if rule.protocol in ("tcp", "udp"):
        if rule.ports is None:
            parts.append(f"meta l4proto {rule.protocol}")
        else:
            ports = ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in rule.ports)
            parts.append(f"{rule.protocol} dport {{ {ports} }}")
    elif rule.protocol in ("icmp", "icmpv6"):
        parts.append(f"meta l4proto {rule.protocol}")
    elif rule.protocol != "all":
        raise UntranslatableError(f"{rule.where}: protocol {rule.protocol!r}")
    if rule.action not in ("accept", "drop"):
        raise UntranslatableError(f"{rule.where}: action {rule.action!r}")
    comment = rule.where.replace('"', "'")[:120]
    return f'{" ".join(parts)} {rule.action} comment "{comment}"'
