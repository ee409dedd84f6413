"""port-plan: one port per workload, services inside their family's range, disjoint ranges."""

from __future__ import annotations

from functools import cache

import pytest

from policies.facts import HOST
from tests.policies.shapes import flagged, shipped, violations, with_plan

# Seed 004's port plan as written: Zervigo DAO's 9200-9299 holds Elasticsearch's 9200 and the
# isolated 9202-9204.
SEEDS_PORT_PLAN = {
    "port-plan": {
        "families": {
            "looma-crm": {"first": 8700, "last": 8799},
            "zervigo-future": {"first": 8200, "last": 8299},
            "zervigo-dao": {"first": 9200, "last": 9299},
            "zervigo-blockchain": {"first": 8300, "last": 8599},
        },
        "reservedPorts": {
            "zervigo-future-databases": [3308, 6381, 5434, 7476, 7689, 9202],
            "zervigo-dao-databases": [3309, 6382, 5435, 7477, 7690, 9203],
            "zervigo-blockchain-databases": [3310, 6383, 5436, 7478, 7691, 9204],
        },
    }
}


def _service(name: str, **fields):
    def edit(plan):
        workload = next(w for w in plan["workloads"] if w["name"] == name)
        if "port" in fields:
            workload["ports"][0]["port"] = float(fields["port"])
        if "family" in fields:
            workload["family"] = fields["family"]

    return edit


@cache
def passing_resources():
    return {"shipped_alibaba": shipped("alibaba"), "shipped_tencent": shipped("tencent")}


@cache
def failing_resources():
    return {
        # The seeds' "reuse 8207" for the shared service: a clash the plan model refuses, so
        # this fixture is the registered plan edited in the engine's shape.
        "shared_service_reuses_8207": with_plan(shipped("tencent"), _service("shared-service", port=8207)),
        "looma_crm_outside_its_range": with_plan(shipped("tencent"), _service("looma-crm", port=8800)),
        "service_of_a_family_with_no_range": with_plan(shipped("tencent"), _service("zervigo", family="zervigo-dao")),
        "weaviate_inside_a_service_range": with_plan(shipped("alibaba"), _service("production-weaviate", port=8250)),
    }


def test_port_plan_passes_and_fails_the_named_fixtures():
    fixtures = {**passing_resources(), **failing_resources()}
    assert flagged(fixtures, "port-plan") == set(failing_resources())


def test_a_shared_port_names_both_workloads():
    messages = [v.message for v in violations(failing_resources()["shared_service_reuses_8207"], "port-plan")]
    assert messages == [
        "port 8207/tcp is declared by both zervigo and shared-service: one port belongs to one workload on a host",
        "service shared-service: port 8207 is outside its family shared's range 8120-8139",
    ]


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        (
            "looma_crm_outside_its_range",
            "service looma-crm: port 8800 is outside its family looma-crm's range 8700-8799",
        ),
        (
            "service_of_a_family_with_no_range",
            "service zervigo: family 'zervigo-dao' has no port range in the port plan",
        ),
        (
            "weaviate_inside_a_service_range",
            "port 8250 of production-weaviate (database:weaviate) lies in family zervigo-future's range 8200-8299",
        ),
    ],
)
def test_each_failure_says_what_and_where(fixture, message):
    found = violations(failing_resources()[fixture], "port-plan")
    assert any(v.message.startswith(message) for v in found), [v.message for v in found]
    # A resource policy reports against the resource it read: the Host component and its plan.
    kinds = {(v.level, v.urn.rsplit("$", 1)[-1].split("::")[0]) for v in found}
    assert kinds == {("mandatory", HOST)}


def test_the_seeds_port_plan_is_caught_where_dao_overlaps_elasticsearch_and_the_isolated_ports():
    messages = {v.message for v in violations(shipped("alibaba"), "port-plan", SEEDS_PORT_PLAN)}
    assert messages == {
        "port plan: family zervigo-dao range 9200-9299 contains port 9202 reserved for zervigo-future-databases",
        "port plan: family zervigo-dao range 9200-9299 contains port 9203 reserved for zervigo-dao-databases",
        "port plan: family zervigo-dao range 9200-9299 contains port 9204 reserved for zervigo-blockchain-databases",
        "port 9200 of production-elasticsearch (database:elasticsearch) lies in family zervigo-dao's range "
        "9200-9299: a zervigo-dao service could be given it",
    }


def test_overlapping_ranges_in_the_pack_config_are_refused():
    families = {"ai": {"first": 8100, "last": 8150}, "shared": {"first": 8120, "last": 8139}}
    found = violations(shipped("tencent"), "port-plan", {"port-plan": {"families": families}})
    overlap = "port plan: family ai 8100-8150 overlaps family shared 8120-8139 (shared 8120-8139)"
    assert [v.message for v in found if v.message.startswith("port plan")] == [
        f"{overlap}: give each family its own range"
    ]


def test_a_narrower_range_in_the_pack_config_makes_the_tencent_stack_fail():
    families = {
        "ai": {"first": 8100, "last": 8119},
        "shared": {"first": 8120, "last": 8139},
        "zervigo-future": {"first": 8200, "last": 8299},
        "looma-crm": {"first": 8750, "last": 8799},
    }
    found = violations(shipped("tencent"), "port-plan", {"port-plan": {"families": families}})
    assert [v.message for v in found] == [
        "service looma-crm: port 8700 is outside its family looma-crm's range 8750-8799"
    ]


def test_a_port_reserved_twice_is_refused():
    reserved = {"a": [3308], "b": [3308]}
    found = violations(shipped("alibaba"), "port-plan", {"port-plan": {"reservedPorts": reserved}})
    assert [v.message for v in found] == ["port plan: reserved port 3308 is listed by both a and b"]
