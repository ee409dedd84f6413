"""Firewall: the exact rules each stack registers, derived from the plan."""

from __future__ import annotations

import pytest

from preflight.inspect import firewall_rules
from tests.stacks import CREATED_ALIBABA_HOST, cache_database, evaluate, inputs

ALIBABA = "47.115.168.107/32"
TENCENT = "101.33.251.158/32"
ADMINS = "203.0.113.0/24"
WORLD = "0.0.0.0/0"
DATABASE_PORTS = (3306, 5432, 6379, 7474, 7687, 9200, 9300, 8080)
EGRESS_ALLOWLIST = {
    ("udp", 53, WORLD),
    ("tcp", 53, WORLD),
    ("tcp", 80, WORLD),
    ("tcp", 443, WORLD),
    ("udp", 123, WORLD),
}


def rule_set(rules, direction, action="accept"):
    return {
        (r["protocol"], r["port"], r["cidr"]) for r in rules if r["direction"] == direction and r["action"] == action
    }


@pytest.fixture(scope="module")
def alibaba():
    return evaluate("alibaba")


@pytest.fixture(scope="module")
def tencent():
    return evaluate("tencent")


def test_alibaba_ingress_is_exactly_the_eight_database_ports_from_the_peer_and_ssh_from_admins(alibaba):
    rules = firewall_rules(alibaba)
    assert rule_set(rules, "ingress") == {("tcp", port, TENCENT) for port in DATABASE_PORTS} | {("tcp", 22, ADMINS)}
    assert rule_set(rules, "ingress", "drop") == {("all", None, WORLD)}


def test_alibaba_egress_is_the_allowlist_then_deny_all_at_the_lowest_priority(alibaba):
    rules = firewall_rules(alibaba)
    peer_replicas = {("tcp", port, TENCENT) for port in (3306, 5432, 6379)}
    assert rule_set(rules, "egress") == EGRESS_ALLOWLIST | peer_replicas
    deny = [r for r in rules if r["direction"] == "egress" and r["action"] == "drop"]
    assert [(r["protocol"], r["port"], r["cidr"], r["order"]) for r in deny] == [("all", None, WORLD, 100)]
    assert all(r["order"] == 1 for r in rules if r["action"] == "accept")


def test_alibaba_rules_live_in_the_adopted_group_and_are_named_by_identity(alibaba):
    rules = alibaba.of_type("alicloud:ecs/securityGroupRule:SecurityGroupRule")
    assert len(rules) == 19
    assert {inputs(r)["securityGroupId"] for r in rules} == {"sg-wz9example000000001"}
    assert {inputs(r)["nicType"] for r in rules} == {"intranet"}
    mysql = alibaba.named("alibaba-fw-in-accept-tcp-3306-101-33-251-158-32")
    assert inputs(mysql) | {"description": ""} == {
        "type": "ingress",
        "ipProtocol": "tcp",
        "portRange": "3306/3306",
        "cidrIp": TENCENT,
        "policy": "accept",
        "priority": 1.0,
        "nicType": "intranet",
        "securityGroupId": "sg-wz9example000000001",
        "description": "",
    }


def test_tencent_ingress_exposes_the_plan_and_ssh_then_denies(tencent):
    rules = firewall_rules(tencent)
    public = {("tcp", port, WORLD) for port in (80, 443, 8207, 8120, 8100, 8110, 8700)}
    replicas = {("tcp", port, ALIBABA) for port in (3306, 5432, 6379)}
    assert rule_set(rules, "ingress") == public | replicas | {("tcp", 22, ADMINS)}
    ingress = [r for r in rules if r["direction"] == "ingress"]
    assert ingress[-1]["action"] == "drop"
    assert ingress[-1]["port"] is None


def test_tencent_egress_reaches_the_alibaba_databases_only_on_their_ports(tencent):
    rules = firewall_rules(tencent)
    databases = {("tcp", port, ALIBABA) for port in DATABASE_PORTS}
    assert rule_set(rules, "egress") == EGRESS_ALLOWLIST | databases
    egress = [r for r in rules if r["direction"] == "egress"]
    assert (egress[-1]["action"], egress[-1]["protocol"], egress[-1]["port"]) == ("drop", "all", None)


def test_tencent_rules_are_one_ordered_rule_set_in_the_adopted_group(tencent):
    (rule_set_resource,) = tencent.of_type("tencentcloud:Security/groupRuleSet:GroupRuleSet")
    values = inputs(rule_set_resource)
    assert values["securityGroupId"] == "sg-example1"
    assert values["ingresses"][0] == {
        "action": "ACCEPT",
        "protocol": "TCP",
        "port": "22",
        "cidrBlock": ADMINS,
        "description": "SSH from admins",
    }
    assert values["egresses"][-1]["port"] == "ALL"
    assert values["egresses"][-1]["action"] == "DROP"


def test_a_port_added_to_the_plan_gets_its_rule_and_nothing_else_changes(alibaba):
    grown = evaluate(
        "alibaba",
        databases=[cache_database()],
    )
    assert rule_set(firewall_rules(grown), "ingress") == {("tcp", 6380, TENCENT), ("tcp", 22, ADMINS)}


def test_a_created_host_gets_a_new_group_in_the_created_vpc():
    run = evaluate(
        "alibaba",
        host=CREATED_ALIBABA_HOST,
        firewall={"securityGroupId": None},
    )
    (group,) = run.of_type("alicloud:ecs/securityGroup:SecurityGroup")
    (vpc,) = run.of_type("alicloud:vpc/network:Network")
    assert inputs(group)["vpcId"] == f"{vpc.name}-id"
    assert inputs(group)["innerAccessPolicy"] == "Drop"
    rules = run.of_type("alicloud:ecs/securityGroupRule:SecurityGroupRule")
    assert {inputs(r)["securityGroupId"] for r in rules} == {f"{group.name}-id"}
