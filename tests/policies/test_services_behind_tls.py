"""services-behind-tls: services are reached through the TLS proxy, never in plain HTTP from the Internet."""

from __future__ import annotations

from functools import cache

from tests.policies.shapes import flagged, shipped, violations, with_plan


def _service_public(plan):
    service = next(w for w in plan["workloads"] if w["role"] == "service")
    service["ports"][0]["expose"] = "public"


def _nginx_closed(plan):
    nginx = next(w for w in plan["workloads"] if w["name"] == "nginx")
    nginx["ports"] = [{**p, "expose": "none"} for p in nginx["ports"]]


def _route_to_nowhere(plan):
    plan["proxy"]["routes"]["/gone/"] = 8999


@cache
def fixtures():
    tencent = shipped("tencent")
    return {
        "shipped_tencent": tencent,
        "shipped_alibaba": shipped("alibaba"),
        "tencent_service_public": with_plan(tencent, _service_public),
        "tencent_nginx_closed": with_plan(tencent, _nginx_closed),
        "tencent_route_to_nowhere": with_plan(tencent, _route_to_nowhere),
    }


def test_the_shipped_stacks_pass_and_each_hole_is_refused():
    assert flagged(fixtures(), "services-behind-tls") == {
        "tencent_service_public",
        "tencent_nginx_closed",
        "tencent_route_to_nowhere",
    }


def test_a_public_service_port_is_a_mandatory_violation_naming_it():
    (found,) = violations(fixtures()["tencent_service_public"], "services-behind-tls")
    assert found.level == "mandatory"
    assert "service zervigo exposes port 8207 as public in plain HTTP" in found.message
