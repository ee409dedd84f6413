"""firewall-matches-plan: a host's ingress rules open exactly what its plan exposes."""

from __future__ import annotations

from functools import cache

from policies.facts import ALIBABA_GROUP, ALIBABA_RULE
from tests.policies.shapes import (
    alibaba_rule,
    created,
    edit_inputs,
    flagged,
    shipped,
    shipped_and_created_groups,
    violations,
    with_resources,
)


def _drop_ingress(port: str):
    def edit(inputs):
        inputs["ingresses"] = [e for e in inputs["ingresses"] if e["port"] != port]

    return edit


def _deny_first(inputs):
    inputs["ingresses"] = inputs["ingresses"][-1:] + inputs["ingresses"][:-1]


def _with_created_group_rule():
    run = created("alibaba")
    group = run.named("alibaba-fw-sg")
    firewall = run.named("alibaba-fw")
    extra = alibaba_rule("hand-made-8443", firewall, group, portRange="8443/8443", cidrIp="203.0.113.0/24")
    return with_resources(run, extra)


@cache
def passing_resources():
    return shipped_and_created_groups()


@cache
def failing_resources():
    alibaba = shipped("alibaba")
    firewall = alibaba.named("alibaba-fw")
    return {
        # The seeds' "for convenience" rule: MySQL open to everyone.
        "alibaba_mysql_open_to_the_world": with_resources(alibaba, alibaba_rule("convenience-3306", firewall)),
        "tencent_rule_set_without_https": edit_inputs(shipped("tencent"), "tencent-fw-rules", _drop_ingress("443")),
        "tencent_deny_all_before_the_allows": edit_inputs(shipped("tencent"), "tencent-fw-rules", _deny_first),
        "alibaba_rule_in_an_unmanaged_group": with_resources(
            alibaba, alibaba_rule("elsewhere-22", firewall, portRange="22/22", securityGroupId="sg-unmanaged")
        ),
        "created_alibaba_group_with_a_hand_made_rule": _with_created_group_rule(),
    }


def test_firewall_matches_plan_passes_and_fails_the_named_fixtures():
    fixtures = {**passing_resources(), **failing_resources()}
    assert flagged(fixtures, "firewall-matches-plan") == set(failing_resources())


def test_created_groups_link_their_rules_through_property_dependencies():
    run = created("alibaba")
    rules = run.of_type(ALIBABA_RULE)
    (group,) = run.of_type(ALIBABA_GROUP)
    assert rules
    assert all(r.property_dependencies["securityGroupId"] == [group.urn] for r in rules)
    assert violations(run, "firewall-matches-plan") == []


def test_an_extra_rule_names_what_it_opens_beyond_the_plan():
    (found,) = violations(failing_resources()["alibaba_mysql_open_to_the_world"], "firewall-matches-plan")
    assert found.message == (
        "alibaba-fw: convenience-3306: accept tcp 3306 from 0.0.0.0/0 opens tcp 3306 to 0.0.0.0/0, "
        "which the plan does not expose"
    )
    assert found.urn.endswith("SecurityGroupRule::convenience-3306")


def test_a_missing_rule_names_the_workload_that_exposes_the_port():
    (found,) = violations(failing_resources()["tencent_rule_set_without_https"], "firewall-matches-plan")
    assert found.message == "tencent-fw: the plan exposes 443/tcp to 0.0.0.0/0 for nginx (public), but no rule opens it"


def test_allows_behind_a_deny_all_never_take_effect():
    found = violations(failing_resources()["tencent_deny_all_before_the_allows"], "firewall-matches-plan")
    shadowed = [v for v in found if "never takes effect" in v.message]
    missing = [v for v in found if "no rule opens it" in v.message]
    # SSH, three replica ports, Nginx 80 and 443 (the services are behind it): six allows, all dead.
    assert (len(shadowed), len(missing)) == (6, 6)
    assert "comes first" in shadowed[0].message


def test_rules_in_a_group_no_plan_governs_are_reported():
    found = violations(failing_resources()["alibaba_rule_in_an_unmanaged_group"], "firewall-matches-plan")
    assert [v.message for v in found] == [
        "rules of group sg-unmanaged are linked to no host's plan (no property dependency on a group the stack "
        "manages and no group id it exports), so nothing checks what they open"
    ]
