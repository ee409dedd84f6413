"""memory-budget (mandatory) and memory-headroom (advisory): the seeds' capacity analysis."""

from __future__ import annotations

from functools import cache

from tests.policies.shapes import ROOT, flagged, run_program, shipped, violations, with_plan

FIXTURES = ROOT / "tests" / "policies" / "fixtures"


def _grow(name: str, memory: int):
    def edit(plan):
        next(w for w in plan["workloads"] if w["name"] == name)["memoryMib"] = float(memory)

    return edit


def _host_memory(memory: int):
    def edit(plan):
        plan["hostMemoryMib"] = float(memory)

    return edit


@cache
def passing_resources():
    return {
        "shipped_alibaba": shipped("alibaba"),
        "shipped_tencent": shipped("tencent"),
        "alibaba_on_a_4gib_host": with_plan(shipped("alibaba"), _host_memory(3686)),
    }


@cache
def failing_resources():
    return {
        "five_services_on_alibaba": run_program("services-on-alibaba", root=FIXTURES),
        "alibaba_neo4j_grown_to_1gib": with_plan(shipped("alibaba"), _grow("production-neo4j", 1024)),
        "tencent_on_a_3gib_host": with_plan(shipped("tencent"), _host_memory(3300)),
    }


def test_memory_budget_passes_and_fails_the_named_fixtures():
    fixtures = {**passing_resources(), **failing_resources()}
    assert flagged(fixtures, "memory-budget") == set(failing_resources())


def test_the_five_services_on_the_alibaba_host_are_refused_with_the_shortfall():
    (violation,) = violations(failing_resources()["five_services_on_alibaba"], "memory-budget")
    assert violation.level == "mandatory"
    assert violation.urn.endswith("platform:compute:Host::services-on-alibaba-host")
    # 1504 MiB of databases + 80 MiB of backup jobs + 1900 MiB of services + 256 MiB reserve on 1843 MiB usable.
    assert "used 3480 MiB + OS reserve 256 MiB = 3736 MiB of limit 1843 MiB: short by 1893 MiB" in violation.message
    assert "Largest workloads (MiB): ai-service-1 600, ai-service-2 600, production-neo4j 544" in violation.message


def test_the_tencent_host_holds_the_five_services_with_a_buffer_below_the_headroom():
    (warning,) = violations(shipped("tencent"), "memory-headroom")
    assert warning.level == "advisory"
    assert warning.message.startswith(
        "tencent-host (tencent): used 3420 MiB + OS reserve 256 MiB of limit 3686 MiB, free 10 MiB "
        "(0.3% of usable, below the 10% headroom)"
    )
    assert "ai-service-1 600, ai-service-2 600, mysql 384" in warning.message


def test_headroom_warns_on_the_tight_shipped_hosts_only():
    fixtures = passing_resources()
    assert flagged(fixtures, "memory-headroom") == {"shipped_alibaba", "shipped_tencent"}
    # A refused plan is memory-budget's: headroom speaks only of plans that fit.
    assert flagged(failing_resources(), "memory-headroom") == set()


def test_a_larger_os_reserve_in_the_pack_config_makes_the_alibaba_stack_fail():
    config = {"memory-budget": {"osReserveMib": 400}}
    floor, short = (v.message for v in violations(shipped("alibaba"), "memory-budget", config))
    # The plan's own reserve (256) is below the pack's floor: refused, and assessed with the floor.
    assert "the plan reserves 256 MiB for the OS, the pack requires at least 400" in floor
    assert "set platform:host.osReserveMib to 400 or more" in floor
    assert "OS reserve 400 MiB = 1980 MiB of limit 1843 MiB: short by 137 MiB" in short


def test_the_plan_s_own_reserve_is_the_one_the_pack_assesses():
    """One figure: a plan that reserves more than the pack's floor is assessed with its own reserve."""
    from tests.policies.shapes import run_program

    (violation,) = violations(run_program("alibaba", host={"osReserveMib": 400}), "memory-budget")
    assert "OS reserve 400 MiB = 1980 MiB of limit 1843 MiB: short by 137 MiB" in violation.message


def test_a_per_cloud_reserve_overrides_the_default_for_that_cloud_only():
    config = {"memory-budget": {"reserveByCloudMib": {"tencent": 600}}}
    assert violations(shipped("alibaba"), "memory-budget", config) == []
    floor, short = (v.message for v in violations(shipped("tencent"), "memory-budget", config))
    assert "the pack requires at least 600" in floor
    assert "short by 334 MiB" in short  # 600 - 256 = 344 more than the 10 left


def test_a_lower_headroom_silences_the_warning_and_a_disabled_policy_reports_nothing():
    # The shipped Tencent host keeps 0.27 % free (10 of 3686 MiB): a headroom of 0.2 % is met.
    assert violations(shipped("tencent"), "memory-headroom", {"memory-headroom": {"headroomPercent": 0.2}}) == []
    assert violations(shipped("tencent"), "memory-headroom", {"memory-headroom": {"headroomPercent": 0.3}}) != []
    assert violations(shipped("tencent"), "memory-headroom", {"memory-headroom": "disabled"}) == []
