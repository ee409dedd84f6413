"""no-public-database: no rule of either cloud opens a database port or SSH to 0.0.0.0/0 or ::/0."""

from __future__ import annotations

from functools import cache

from tests.policies.shapes import (
    alibaba_rule,
    edit_inputs,
    flagged,
    resource,
    shipped,
    violations,
    with_plan,
    with_resources,
)

TENCENT_RULE = "tencentcloud:Security/groupRule:GroupRule"
TENCENT_LITE_RULE = "tencentcloud:Security/groupLiteRule:GroupLiteRule"


def _redis_from_ipv6_world(inputs):
    inputs["ingresses"].insert(0, {"action": "ACCEPT", "protocol": "TCP", "port": "6379", "ipv6CidrBlock": "::/0"})


def _mysql_public(plan):
    plan["workloads"][0]["ports"][0]["expose"] = "public"


@cache
def passing_resources():
    alibaba = shipped("alibaba")
    firewall = alibaba.named("alibaba-fw")
    return {
        "shipped_alibaba": alibaba,
        "shipped_tencent": shipped("tencent"),
        "alibaba_mysql_to_the_peer": with_resources(
            alibaba, alibaba_rule("peer-3306", firewall, cidrIp="101.33.251.158/32")
        ),
        "alibaba_https_to_the_world": with_resources(alibaba, alibaba_rule("web-443", firewall, portRange="443/443")),
        "alibaba_mysql_world_but_dropped": with_resources(
            alibaba, alibaba_rule("drop-3306", firewall, policy="drop", priority=100)
        ),
    }


@cache
def failing_resources():
    alibaba, tencent = shipped("alibaba"), shipped("tencent")
    firewall = alibaba.named("alibaba-fw")
    tencent_fw = tencent.named("tencent-fw")
    return {
        # The seeds' "for convenience" rules.
        "alibaba_mysql_to_the_world": with_resources(alibaba, alibaba_rule("convenience-3306", firewall)),
        "alibaba_ssh_to_the_world": with_resources(alibaba, alibaba_rule("ssh-22", firewall, portRange="22/22")),
        "tencent_rule_set_redis_to_ipv6_world": edit_inputs(tencent, "tencent-fw-rules", _redis_from_ipv6_world),
        "tencent_lite_rule_every_port": with_resources(
            tencent,
            resource(
                TENCENT_LITE_RULE,
                "lite",
                {"securityGroupId": "sg-example1", "ingresses": ["ACCEPT#0.0.0.0/0#ALL#ALL"]},
                parent=tencent_fw,
            ),
        ),
        "tencent_rule_range_covering_postgres": with_resources(
            tencent,
            resource(
                TENCENT_RULE,
                "range",
                {
                    "securityGroupId": "sg-example1",
                    "type": "ingress",
                    "cidrIp": "0.0.0.0/0",
                    "ipProtocol": "TCP",
                    "portRange": "5000-6000",
                    "policy": "ACCEPT",
                },
                parent=tencent_fw,
            ),
        ),
        "plan_declares_mysql_public": with_plan(alibaba, _mysql_public),
    }


def test_no_public_database_passes_and_fails_the_named_fixtures():
    fixtures = {**passing_resources(), **failing_resources()}
    assert flagged(fixtures, "no-public-database") == set(failing_resources())


def test_messages_name_the_rule_and_the_ports_it_opens():
    def messages(name):
        return [v.message for v in violations(failing_resources()[name], "no-public-database")]

    assert messages("alibaba_mysql_to_the_world") == [
        "convenience-3306: accept tcp 3306 from 0.0.0.0/0: opens 3306 (database) to the whole Internet"
    ]
    assert messages("alibaba_ssh_to_the_world") == [
        "ssh-22: accept tcp 22 from 0.0.0.0/0: opens 22 (SSH) to the whole Internet"
    ]
    assert messages("tencent_rule_set_redis_to_ipv6_world") == [
        "tencent-fw-rules ingresses[0]: accept tcp 6379 from ::/0: opens 6379 (database) to the whole Internet"
    ]
    assert messages("tencent_lite_rule_every_port") == [
        "lite ingresses[0]: accept all all ports from 0.0.0.0/0: opens every port, database and SSH ports included"
    ]
    assert messages("tencent_rule_range_covering_postgres") == [
        "range: accept tcp 5000-6000 from 0.0.0.0/0: opens 5432 (database), 5434 (database), 5435 (database), "
        "5436 (database), 5984 (database) to the whole Internet"
    ]
    assert messages("plan_declares_mysql_public") == [
        "plan: database production-mysql exposes port 3306 as public; use expose: peer (the peer host's /32) or admins"
    ]


def test_the_violation_is_mandatory_and_reported_on_the_rule_resource():
    (found,) = violations(failing_resources()["alibaba_mysql_to_the_world"], "no-public-database")
    assert found.level == "mandatory"
    assert found.urn.endswith("alicloud:ecs/securityGroupRule:SecurityGroupRule::convenience-3306")


def test_the_database_ports_are_pack_config():
    run = passing_resources()["alibaba_https_to_the_world"]
    assert violations(run, "no-public-database", {"no-public-database": {"databasePorts": [443]}}) != []
