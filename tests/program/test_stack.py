"""Whole stacks: determinism, secrets never in plain text, outputs that carry the plan."""

from __future__ import annotations

import json

import pytest

from policies._common import settings
from policies.memory_budget import BUDGET_SCHEMA, assess
from preflight.engine import SECRET_SIG_KEY, unwrap
from tests.stacks import evaluate


def plain_text(value, inside_secret=False):
    """Every string in engine-shaped inputs that is not inside a secret wrapper."""
    if isinstance(value, dict):
        secret = inside_secret or SECRET_SIG_KEY in value
        for item in value.values():
            yield from plain_text(item, secret)
    elif isinstance(value, list):
        for item in value:
            yield from plain_text(item, inside_secret)
    elif isinstance(value, str) and not inside_secret:
        yield value


@pytest.mark.parametrize("stack", ["alibaba", "tencent"])
def test_no_placeholder_secret_appears_in_plain_text_in_any_input_or_output(stack):
    run = evaluate(stack)
    for resource in run.resources:
        for text in plain_text(resource.inputs):
            assert "PLACEHOLDER-SECRET" not in text, resource.name
    assert "PLACEHOLDER-SECRET" not in json.dumps(list(plain_text(run.outputs)))


@pytest.mark.parametrize("stack", ["alibaba", "tencent"])
def test_evaluating_a_stack_twice_yields_identical_inputs(stack):
    first, second = evaluate(stack), evaluate(stack)
    assert {r.name: r.inputs for r in first.resources} == {r.name: r.inputs for r in second.resources}


@pytest.mark.parametrize("stack", ["alibaba", "tencent"])
def test_stack_outputs_carry_the_plan_and_its_memory_figures(stack):
    run = evaluate(stack)
    memory = run.outputs["memory"]
    assert memory["usedMib"] + memory["osReserveMib"] + memory["freeMib"] == memory["limitMib"]
    # One figure of free memory: the output is what the pack's capacity report computes.
    found = assess(stack, unwrap(run.outputs["plan"]), settings(BUDGET_SCHEMA, {}))
    assert (memory["freeMib"], memory["osReserveMib"]) == (found.free_mib, found.reserve_mib)
    assert {"plan", "publicIp", "instanceId", "securityGroupId"} <= set(run.outputs)


# The providers that need no cloud credentials of their own (they run locally or over SSH).
CREDENTIAL_FREE_PACKAGES = {"command", "random", "tls", "pulumi", "platform"}


@pytest.mark.parametrize(("stack", "cloud_package"), [("alibaba", "alicloud"), ("tencent", "tencentcloud")])
def test_each_stack_needs_only_its_own_clouds_credentials(stack, cloud_package):
    """Why a CI job gets one cloud's keys: every resource of a stack is its cloud's or credential-free
    (also with replication on, which reads the peer through the StackReference, not its cloud)."""
    for run in (evaluate(stack), evaluate(stack, databaseStack="alibaba") if stack == "tencent" else None):
        if run is None:
            continue
        packages = {resource.type.split(":", 1)[0] for resource in run.resources}
        assert cloud_package in packages
        assert packages - CREDENTIAL_FREE_PACKAGES == {cloud_package}, packages
