"""no-public-database: no rule of either cloud opens a database port or SSH to the whole Internet.

The whole Internet: 0.0.0.0/0, ::/0, or sources that together (per group and per port, overlaps
counted once) hold more addresses than a /8 (``worldPrefixLength``): more than 2**24 IPv4 or
2**120 IPv6 addresses. Exactly a /8's worth is allowed.
"""

from __future__ import annotations

from functools import cache

import pytest

from policies.facts import reaches_world
from preflight.policy import PackConfigError, load_pack
from tests.policies.shapes import (
    alibaba_rule,
    created,
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
        **passing_address_spaces(),
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
        **failing_address_spaces(),
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


# ---------------------------------------------------------------------------------------
# The world by address space: sources that together hold more than a /8
# ---------------------------------------------------------------------------------------

HALVES = ("0.0.0.0/1", "128.0.0.0/1")
# 203.0.0.0/8 as 256 /16s; the shipped stacks' admins (203.0.113.0/24) lie inside it.
SIXTEENS = tuple(f"203.{i}.0.0/16" for i in range(256))


def _alibaba_sources(port: int, *cidrs: str, prefix: str = "wide"):
    """The shipped Alibaba stack with one accept rule per source on ``port`` (in the adopted group)."""
    alibaba = shipped("alibaba")
    firewall = alibaba.named("alibaba-fw")
    rules = [
        alibaba_rule(f"{prefix}-{port}-{index}", firewall, portRange=f"{port}/{port}", cidrIp=cidr)
        for index, cidr in enumerate(cidrs)
    ]
    return with_resources(alibaba, *rules)


def _tencent_entries(*entries: dict, at: int = 0):
    """The shipped Tencent rule set with ``entries`` inserted at ``at`` (0: evaluated first)."""

    def edit(inputs):
        inputs["ingresses"][at:at] = list(entries)

    return edit_inputs(shipped("tencent"), "tencent-fw-rules", edit)


def _accept(port: int | str, cidr: str) -> dict:
    key = "ipv6CidrBlock" if ":" in cidr else "cidrBlock"
    return {"action": "ACCEPT", "protocol": "TCP", "port": str(port), key: cidr}


def _drop(port: int | str, cidr: str) -> dict:
    return {**_accept(port, cidr), "action": "DROP"}


def _three_rules_opening_22_from(cidr: str):
    """Three overlapping rules (22 alone, 20-25, 22 and 3306) from one /7: counted once."""
    return _tencent_entries(_accept(22, cidr), _accept("20-25", cidr), _accept("22,3306", cidr))


def _plan(**fields):
    def edit(plan):
        plan.update(fields)

    return edit


def _mysql_exposed_to_admins(admins):
    def edit(plan):
        plan["adminCidrs"] = list(admins)
        plan["workloads"][0]["ports"][0]["expose"] = "admins"

    return edit


@cache
def passing_address_spaces():
    alibaba = shipped("alibaba")
    return {
        # Port 80 is neither SSH nor a database: a set as wide as the world is fine there.
        "both_halves_on_http": _alibaba_sources(80, *HALVES),
        # Exactly a /8's worth (2**24 addresses, the admins' /24 inside) is not more than a /8.
        "sixteens_summing_to_a_slash_8_on_ssh": _tencent_entries(*(_accept(22, c) for c in SIXTEENS)),
        # A /9 + a /9 elsewhere: 2**23 + 2**23 = 2**24, exactly a /8's worth (the admins' /24 lies
        # inside 203.0.0.0/9): not the world.
        "a_ninth_and_a_ninth_elsewhere_on_ssh": _tencent_entries(
            _accept(22, "203.0.0.0/9"), _accept(22, "10.128.0.0/9")
        ),
        # Overlaps count once: these add up to 1.5 * 2**24 but cover 203.0.0.0/8 only.
        "overlapping_sources_covering_a_slash_8": _tencent_entries(
            *(_accept(22, c) for c in ("203.0.0.0/9", "203.128.0.0/9", "203.0.0.0/10", "203.64.0.0/10"))
        ),
        # A drop evaluated first takes its sources out: 11.0.0.0/9 and the admins remain.
        "sources_a_drop_takes_first": _tencent_entries(
            _drop(22, "10.0.0.0/8"), *(_accept(22, c) for c in ("10.0.0.0/9", "10.128.0.0/9", "11.0.0.0/9"))
        ),
        # IPv6: two /9s are 2**120 addresses, exactly the /8 share; IPv4 and IPv6 are not added up.
        "ipv6_two_ninths_on_redis": _tencent_entries(_accept(6379, "2400::/9"), _accept(6379, "2480::/9")),
        "plan_admins_exactly_a_slash_8": with_plan(alibaba, _mysql_exposed_to_admins(["203.0.0.0/9", "10.128.0.0/9"])),
    }


@cache
def failing_address_spaces():
    alibaba = shipped("alibaba")
    return {
        "both_halves_on_ssh": _alibaba_sources(22, *HALVES),
        "both_halves_on_mysql": _alibaba_sources(3306, *HALVES),
        "three_overlapping_sevenths_on_ssh": _three_rules_opening_22_from("10.0.0.0/7"),
        # One address more than a /8: 2**24 + 1.
        "sixteens_and_one_address_on_ssh": _tencent_entries(
            *(_accept(22, c) for c in SIXTEENS), _accept(22, "198.51.100.7/32")
        ),
        # A drop after the accepts comes too late to take anything.
        "sources_a_later_drop_cannot_take": _tencent_entries(
            *(_accept(22, c) for c in ("10.0.0.0/9", "10.128.0.0/9", "11.0.0.0/9")), _drop(22, "10.0.0.0/8"), at=1
        ),
        # IPv6: 2**119 + 2**119 + 2**112 is more than 2**120.
        "ipv6_more_than_a_slash_8_on_redis": _tencent_entries(
            _accept(6379, "2400::/9"), _accept(6379, "2480::/9"), _accept(6379, "2600::/16")
        ),
        # Every IPv4 address written as IPv4-mapped IPv6.
        "ipv4_mapped_ipv6_on_ssh": _tencent_entries(_accept(22, "::ffff:0:0/96")),
        # The plan's own SSH port is guarded, not only the configured 22.
        "wide_source_on_the_plans_ssh_port": with_resources(
            with_plan(alibaba, _plan(sshPort=2222)),
            alibaba_rule("ssh-2222", alibaba.named("alibaba-fw"), portRange="2222/2222", cidrIp="10.0.0.0/7"),
        ),
        "plan_admins_are_both_halves": with_plan(alibaba, _plan(adminCidrs=list(HALVES))),
        "plan_database_exposed_to_admins_wider_than_a_slash_8": with_plan(
            alibaba, _mysql_exposed_to_admins(["203.0.0.0/8", "198.51.100.0/24"])
        ),
        "plan_peer_cidr_wider_than_a_slash_8": with_plan(alibaba, _plan(peerCidr="100.0.0.0/7")),
    }


def _messages(run, config=None):
    return [v.message for v in violations(run, "no-public-database", config)]


def test_a_rule_wider_than_a_slash_8_is_the_world_on_its_own():
    assert _messages(failing_address_spaces()["both_halves_on_ssh"]) == [
        "wide-22-0: accept tcp 22 from 0.0.0.0/1: opens 22 (SSH) to the whole Internet (0.0.0.0/1 is wider than a /8)",
        "wide-22-1: accept tcp 22 from 128.0.0.0/1: opens 22 (SSH) to the whole Internet "
        "(128.0.0.0/1 is wider than a /8)",
    ]
    assert len(_messages(failing_address_spaces()["three_overlapping_sevenths_on_ssh"])) == 3
    assert _messages(failing_address_spaces()["ipv4_mapped_ipv6_on_ssh"]) == [
        "tencent-fw-rules ingresses[0]: accept tcp 22 from ::ffff:0:0/96: opens 22 (SSH) to the whole Internet "
        "(::ffff:0:0/96 is wider than a /8)"
    ]


def test_narrow_rules_that_add_up_to_the_world_are_named_together_with_the_ports():
    assert _messages(failing_address_spaces()["sixteens_and_one_address_on_ssh"]) == [
        "group sg-example1: 258 accept rules (tencent-fw-rules ingresses[0], tencent-fw-rules ingresses[1], "
        "tencent-fw-rules ingresses[2] and 255 more) together open 22/tcp (SSH) to 16,777,217 IPv4 addresses "
        "(more than a /8): that is the whole Internet"
    ]
    assert _messages(failing_address_spaces()["ipv6_more_than_a_slash_8_on_redis"]) == [
        "group sg-example1: 3 accept rules (tencent-fw-rules ingresses[0], tencent-fw-rules ingresses[1], "
        "tencent-fw-rules ingresses[2]) together open 6379/tcp (database) to over 2^120 IPv6 addresses "
        "(more than a /8): that is the whole Internet"
    ]


def test_the_union_is_reported_on_the_group_when_the_stack_creates_it():
    run = created("alibaba")
    group, firewall = run.named("alibaba-fw-sg"), run.named("alibaba-fw")
    rules = [alibaba_rule(f"x-{i}", firewall, group, portRange="3306/3306", cidrIp=f"10.{i}.0.0/9") for i in (0, 128)]
    rules.append(alibaba_rule("x-2", firewall, group, portRange="3306/3306", cidrIp="11.0.0.0/16"))
    (found,) = violations(with_resources(run, *rules), "no-public-database")
    assert found.urn == group.urn
    assert found.message == (
        "group alibaba-fw-sg: 4 accept rules (alibaba-fw-in-accept-tcp-3306-101-33-251-158-32, x-0, x-128 and 1 "
        "more) together open 3306/tcp (database) to 16,842,753 IPv4 addresses (more than a /8): that is the whole "
        "Internet"
    )


def test_the_plans_exposures_name_the_sources_that_add_up_to_the_world():
    assert _messages(failing_address_spaces()["plan_admins_are_both_halves"]) == [
        "plan: adminCidrs (0.0.0.0/1, 128.0.0.0/1) together hold 2^32 IPv4 addresses (all of IPv4): they open "
        "SSH (port 22) to the whole Internet; list the admins' own"
    ]
    assert _messages(failing_address_spaces()["plan_database_exposed_to_admins_wider_than_a_slash_8"]) == [
        "plan: database production-mysql exposes port 3306 to admins (203.0.0.0/8, 198.51.100.0/24), together "
        "16,777,472 IPv4 addresses (more than a /8): that is the whole Internet; give it the peer host's /32 or "
        "the admins' own CIDRs",
        "plan: adminCidrs (203.0.0.0/8, 198.51.100.0/24) together hold 16,777,472 IPv4 addresses (more than a /8): "
        "they open SSH (port 22) to the whole Internet; list the admins' own",
    ]
    assert len(_messages(failing_address_spaces()["plan_peer_cidr_wider_than_a_slash_8"])) == 8  # every database port


def test_world_prefix_length_is_pack_config():
    # A /12 on MySQL: 2**20 addresses, fine under the default, the world when a /16 is the limit.
    run = _alibaba_sources(3306, "101.32.0.0/12")
    assert _messages(run) == []
    assert _messages(run, {"no-public-database": {"worldPrefixLength": 16}}) == [
        "wide-3306-0: accept tcp 3306 from 101.32.0.0/12: opens 3306 (database) to the whole Internet "
        "(101.32.0.0/12 is wider than a /16)"
    ]


def test_overlapping_rules_count_once_under_a_wider_limit():
    # Three rules from one /7 hold 2**25 addresses, not 3 * 2**25: under a /6 limit (2**26) not the world.
    run = _three_rules_opening_22_from("10.0.0.0/7")
    assert _messages(run, {"no-public-database": {"worldPrefixLength": 6}}) == []
    assert _messages(_three_rules_opening_22_from("8.0.0.0/6"), {"no-public-database": {"worldPrefixLength": 6}})


def test_at_prefix_length_0_only_the_whole_space_is_the_world_however_it_is_split():
    config = {"no-public-database": {"worldPrefixLength": 0}}
    assert _messages(_alibaba_sources(22, "0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2"), config) == []
    assert _messages(failing_address_spaces()["both_halves_on_ssh"], config) == [
        "group sg-wz9example000000001: 4 accept rules (alibaba-fw-in-accept-tcp-22-101-33-251-158-32, "
        "alibaba-fw-in-accept-tcp-22-203-0-113-0-24, wide-22-0 and 1 more) together open 22/tcp (SSH) to 2^32 IPv4 "
        "addresses (all of IPv4): that is the whole Internet"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (33, "no-public-database: worldPrefixLength: 33 is greater than the maximum of 32"),
        (-1, "no-public-database: worldPrefixLength: -1 is less than the minimum of 0"),
    ],
)
def test_world_prefix_length_outside_0_to_32_is_refused(value, message):
    with pytest.raises(PackConfigError) as error:
        load_pack(config={"no-public-database": {"worldPrefixLength": value}})
    assert str(error.value).startswith(message)


def test_each_address_space_case_is_flagged_by_itself():
    """Every failing input above fails for the reason it is named after: its passing twin passes."""
    assert not flagged(passing_address_spaces(), "no-public-database")
    assert flagged(failing_address_spaces(), "no-public-database") == set(failing_address_spaces())


@pytest.mark.parametrize(
    ("cidrs", "world"),
    [
        (HALVES, True),
        (("10.0.0.0/7",) * 3, True),  # 2**25 (counted once) > 2**24
        (SIXTEENS, False),  # 256 * 2**16 = 2**24: exactly a /8 is allowed
        ((*SIXTEENS, "198.51.100.7/32"), True),  # 2**24 + 1
        (("10.0.0.0/9", "20.0.0.0/9"), False),  # 2**23 + 2**23 = 2**24 exactly
        (("10.0.0.0/9", "20.0.0.0/9", "30.0.0.0/32"), True),
        (("2400::/9", "2480::/9"), False),  # 2**120 exactly
        (("2400::/9", "2480::/9", "2600::/128"), True),
        (("10.0.0.0/8", "2400::/8"), False),  # IPv4 and IPv6 are not added up
        (("0.0.0.0/0",), True),
        (("::/0",), True),
        (("not-a-cidr", None), False),
    ],
)
def test_what_counts_as_the_world(cidrs, world):
    assert reaches_world(cidrs) is world
