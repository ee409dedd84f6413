"""The host's security group and its rules, derived from the plan by ``rules.firewall_rules``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import pulumi
import pulumi_alicloud as alicloud
from tencentcloud_iac_pulumi import security as tc_security

from components import adopted_rules
from components.rules import Rule, default_peer_ports, exported_peer_ports, firewall_rules
from plan import Cloud, PortPlan
from policies.facts import FIREWALL


@dataclass(frozen=True)
class FirewallArgs:
    cloud: Cloud
    ports: PortPlan
    props: dict[str, Any]
    """The plan's props (``plan.props()``), registered for the policy pack."""
    vpc_id: pulumi.Input[str] | None
    """Where a new group is created; None when the plan names an existing group."""
    peer_ingress: pulumi.Output[Any] | None = None
    """What the peer's firewall opens to this host, as its stack exports it (``peerIngress``), on a
    Tencent host with ``platform:databaseStack``: its egress to the peer follows what the peer runs.
    None, or an output that resolves to None (a peer stack without it yet): the peer's default plan
    (``rules.default_peer_ports``)."""


class Firewall(pulumi.ComponentResource):
    security_group_id: pulumi.Output[str]
    """The group the rules live in (created here, or the adopted one)."""

    def __init__(self, name: str, args: FirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        port_plan = args.ports
        self.rule_list = firewall_rules(port_plan)  # in priority order, as the plan derives them
        rules: pulumi.Input[tuple[Rule, ...]] = self.rule_list
        peer_ports: pulumi.Input[list[int]] = sorted({p.port for p in default_peer_ports(port_plan)})
        if args.cloud == Cloud.TENCENT and args.peer_ingress is not None:
            exported = args.peer_ingress.apply(
                lambda ingress: default_peer_ports(port_plan) if ingress is None else exported_peer_ports(ingress)
            )
            rules = exported.apply(lambda ports: firewall_rules(port_plan, ports))
            peer_ports = exported.apply(lambda ports: sorted({p.port for p in ports}))
        rule_props = pulumi.Output.from_input(rules).apply(_rules_props)
        props = {"plan": args.props, "rules": rule_props, "peerPorts": peer_ports}
        super().__init__(FIREWALL, name, props, opts)
        if args.cloud == Cloud.ALIBABA:
            self.security_group_id = self._alibaba(name, port_plan, args.vpc_id)
        else:
            self.security_group_id = self._tencent(name, port_plan, pulumi.Output.from_input(rules))
        self.register_outputs(
            {
                "security_group_id": self.security_group_id,
                "rules": rule_props,
                "plan": args.props,
                "peerPorts": peer_ports,
            }
        )

    def _alibaba(self, name: str, port_plan: PortPlan, vpc_id: pulumi.Input[str] | None) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        if port_plan.firewall.security_group_id is not None:
            self._check_adopted_alibaba_group(port_plan, port_plan.firewall.security_group_id)
            group_id = pulumi.Output.from_input(port_plan.firewall.security_group_id)
        else:
            group = alicloud.ecs.SecurityGroup(
                f"{name}-sg",
                security_group_name=name,
                description=f"{name}: managed by Pulumi from the platform plan",
                vpc_id=vpc_id,
                inner_access_policy="Drop",
                opts=child,
            )
            group_id = group.id
        for rule in self.rule_list:
            # Its description carries the marker that tells the program's rules from hand-made ones.
            form = adopted_rules.alibaba_rule(rule)
            alicloud.ecs.SecurityGroupRule(
                f"{name}-{rule.slug}",
                security_group_id=group_id,
                type=form["direction"],
                ip_protocol=form["ip_protocol"],
                port_range=form["port_range"],
                cidr_ip=form["cidr"],
                policy=form["policy"],
                priority=form["priority"],
                nic_type=form["nic_type"],
                description=form["description"],
                opts=child,
            )
        return group_id

    def _check_adopted_alibaba_group(self, port_plan: PortPlan, group_id: str) -> None:
        """Refuse (or, with allowUnmanagedRules, warn) while hand-made rules in the group defeat the plan."""
        existing = adopted_rules.read_group_rules(group_id, pulumi.InvokeOptions(parent=self))
        managed = [adopted_rules.alibaba_rule(rule) for rule in self.rule_list]
        findings = adopted_rules.defeating_rules(existing, managed, adopted_rules.sensitive_ports(port_plan))
        if not findings:
            return
        message = adopted_rules.refusal(findings, group_id, pulumi.Config("alicloud").get("region"))
        if not port_plan.firewall.allow_unmanaged_rules:
            raise pulumi.RunError(message)
        pulumi.log.warn(message, resource=self)

    def _tencent(self, name: str, port_plan: PortPlan, rules: pulumi.Output[tuple[Rule, ...]]) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        if port_plan.firewall.security_group_id is not None:
            group_id = pulumi.Output.from_input(port_plan.firewall.security_group_id)
        else:
            group = tc_security.Group(f"{name}-sg", name=name, description=f"{name}: managed by Pulumi", opts=child)
            group_id = group.id
        # Deleting the rule set writes an empty one, which on Tencent blocks all traffic, SSH
        # included. On an adopted group a destroy, a rename or a corrected group id must not do
        # that: protect it, and leave the group's rules as they are when it leaves the stack. A
        # created group's rule set needs neither: it goes with the group it was made for.
        adopted = port_plan.firewall.security_group_id is not None
        # One ordered, authoritative rule set: the first matching rule wins, so the deny goes last.
        tc_security.GroupRuleSet(
            f"{name}-rules",
            security_group_id=group_id,
            ingresses=[
                _tencent_rule(tc_security.GroupRuleSetIngressArgs, r)
                for r in self.rule_list
                if r.direction == "ingress"
            ],
            egresses=rules.apply(
                lambda current: [
                    _tencent_rule(tc_security.GroupRuleSetEgressArgs, r) for r in current if r.direction == "egress"
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self, protect=adopted, retain_on_delete=adopted),
        )
        return group_id


_RuleArgs = TypeVar("_RuleArgs", tc_security.GroupRuleSetIngressArgs, tc_security.GroupRuleSetEgressArgs)


def _tencent_rule(args_type: type[_RuleArgs], rule: Rule) -> _RuleArgs:
    return args_type(
        action=rule.action.upper(),
        protocol=rule.protocol.upper(),
        port="ALL" if rule.port is None else str(rule.port),
        cidr_block=rule.cidr,
        description=rule.description,
    )


def _rules_props(rules: tuple[Rule, ...]) -> list[dict[str, object]]:
    return [
        {"direction": r.direction, "protocol": r.protocol, "port": r.port, "cidr": r.cidr, "action": r.action}
        for r in rules
    ]
