"""Policy fixtures in the engine's shape, and the real stacks run under the mock engine.

A fixture is a ``StackRun`` of ``Registration``s as the engine records them: protobuf-JSON
inputs (numbers as floats, secrets wrapped in the engine's signature), components included,
options alongside. ``violations`` runs the pack over it through pulumi-policy's own analyzer,
as ``preflight`` and the CLI do.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from components.provisioning import as_command, render
from policies.facts import (
    ALIBABA_RULE,
    COMMAND,
    HOST,
    STEP,
    step_record_name,
)
from preflight.engine import SECRET_SIG, SECRET_SIG_KEY, CloudMocks, Registration, StackRun, unwrap
from preflight.policy import OutputMonitor, Pack, Violation, evaluate, load_pack
from preflight.stackfile import read_stack
from tests.stacks import CREATED_HOST
from tests.stacks import evaluate as evaluate_stack

ROOT = Path(__file__).resolve().parents[2]
PROJECT, STACK = "platform", "fixture"
STACK_URN = f"urn:pulumi:{STACK}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{STACK}"


def secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG_KEY: SECRET_SIG, "value": value}


def engine(value: Any) -> Any:
    """Plain values as the engine carries them: every number a float."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return {k: engine(v) for k, v in value.items()}
    return [engine(v) for v in value]


def resource(
    type_: str,
    name: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    parent: Registration | None = None,
    protect: bool = False,
    ignore_changes: Sequence[str] = (),
    secret_outputs: Sequence[str] = (),
    outputs: Mapping[str, Any] | None = None,
    depends_on: Mapping[str, Sequence[Registration]] | None = None,
    delete_before_replace: bool = False,
) -> Registration:
    custom = not type_.startswith("platform:")
    chain = (parent.urn.split("::")[2] + "$" if parent else "pulumi:pulumi:Stack$") + type_
    return Registration(
        type=type_,
        name=name,
        urn=f"urn:pulumi:{STACK}::{PROJECT}::{chain}::{name}",
        custom=custom,
        parent=parent.urn if parent else STACK_URN,
        inputs=engine(dict(inputs or {})),
        protect=protect,
        retain_on_delete=protect,
        import_id="",
        ignore_changes=list(ignore_changes),
        dependencies=[r.urn for deps in (depends_on or {}).values() for r in deps],
        property_dependencies={key: [r.urn for r in deps] for key, deps in (depends_on or {}).items()},
        additional_secret_outputs=list(secret_outputs),
        delete_before_replace=delete_before_replace,
        # A custom resource's outputs in preview are its inputs; a component's what it registered.
        outputs=engine(dict(outputs if outputs is not None else (inputs or {}) if custom else {})),
    )


def run_of(*resources: Registration | tuple[Registration, ...], outputs: Mapping[str, Any] | None = None) -> StackRun:
    """A run of these registrations (a tuple: a step's record and command, from ``script_step``)."""
    flat = [r for item in resources for r in (item if isinstance(item, tuple) else (item,))]
    return StackRun(PROJECT, STACK, flat, engine(dict(outputs or {})))


@cache
def _pack(config_json: str) -> Pack:
    return load_pack(config=json.loads(config_json))


def violations(run: StackRun, policy: str | None = None, config: Mapping[str, Any] | None = None) -> list[Violation]:
    """What the pack reports for ``run``; with ``policy``, that policy's violations only.

    For one policy the others are disabled through the pack config (``"all": "disabled"``),
    as a user could: the CLI then skips them, and so does this run, which keeps tests fast.
    """
    given: dict[str, Any] = dict(config or {})
    if policy is not None:
        own = given.get(policy, {})
        own = {"enforcementLevel": own} if isinstance(own, str) else dict(own)
        own.setdefault("enforcementLevel", _pack("{}").policies[policy].level)
        given = {**given, "all": "disabled", policy: own}
    key = (id(run), json.dumps(given, sort_keys=True))
    if key not in _EVALUATED or _EVALUATED[key][0] is not run:
        _EVALUATED[key] = (run, evaluate(run, _pack(key[1])))  # holding the run keeps its id unique
    return [v for v in _EVALUATED[key][1] if policy is None or v.policy == policy]


# Fixture builders are cached per module, so a fixture is evaluated once per pack config.
_EVALUATED: dict[tuple[int, str], tuple[StackRun, list[Violation]]] = {}


def flagged(fixtures: Mapping[str, StackRun], policy: str, config: Mapping[str, Any] | None = None) -> set[str]:
    """The names of the fixtures the policy reports a violation for."""
    return {name for name, run in fixtures.items() if violations(run, policy, config)}


# ---------------------------------------------------------------------------------------
# The real program under the mock engine
# ---------------------------------------------------------------------------------------


def run_program(stack: str, root: Path = ROOT, **changes: Any) -> StackRun:
    """The real program for a stack file, with ``platform:*`` changes merged in (tests.stacks)."""
    return evaluate_stack(stack, root, monitor=OutputMonitor(CloudMocks()), **changes)


@cache
def _shipped(stack: str) -> StackRun:
    return run_program(stack)


def shipped(stack: str) -> StackRun:
    """The committed stack, run once per session (a deep copy: tests may edit it)."""
    return copy.deepcopy(_shipped(stack))


def created(stack: str):
    """The stack with a host (and so a group) the program creates, run once per session."""
    return copy.deepcopy(_created(stack))


@cache
def _created(stack: str):
    return run_program(stack, host=CREATED_HOST[stack], firewall={"securityGroupId": None})


def shipped_and_created_groups() -> dict[str, StackRun]:
    """The passing fixtures every firewall policy starts from: both stacks, adopted and created."""
    return {
        "shipped_alibaba": shipped("alibaba"),
        "shipped_tencent": shipped("tencent"),
        "created_alibaba_group": created("alibaba"),
        "created_tencent_group": created("tencent"),
    }


def committed(stack: str, key: str) -> Any:
    """A ``platform:*`` value of the committed stack file, decoded."""
    raw = read_stack(ROOT, stack).config[f"platform:{key}"]
    return json.loads(raw)


def host_plan(run: StackRun) -> dict[str, Any]:
    """The plan the run's Host component registered, as plain values."""
    return unwrap(run.of_type(HOST)[0].inputs["plan"])


def with_plan(run: StackRun, edit: Any) -> StackRun:
    """The run with ``edit(plan)`` applied to the plan every component and the stack carry."""
    edited = copy.deepcopy(run)
    plan = host_plan(edited)
    edit(plan)
    for registration in edited.resources:
        if "plan" in registration.inputs:
            registration.inputs["plan"] = engine(plan)
        if "plan" in registration.outputs:
            registration.outputs["plan"] = engine(plan)
    edited.outputs["plan"] = engine(plan)
    return edited


def with_resources(run: StackRun, *added: Registration) -> StackRun:
    edited = copy.deepcopy(run)
    edited.resources.extend(added)
    return edited


def without(run: StackRun, name: str) -> StackRun:
    edited = copy.deepcopy(run)
    edited.resources = [r for r in edited.resources if r.name != name]
    assert len(edited.resources) == len(run.resources) - 1, f"no resource named {name}"
    return edited


def edit_inputs(run: StackRun, name: str, edit: Any) -> StackRun:
    """The run with ``edit(inputs)`` applied to one resource's inputs (and, for a custom one or a step
    record, which registers its inputs as outputs, to its outputs)."""
    edited = copy.deepcopy(run)
    registration = edited.named(name)
    edit(registration.inputs)
    if registration.custom or registration.type == STEP:
        registration.outputs = copy.deepcopy(registration.inputs)
    return edited


def script_command(
    name: str,
    params: Mapping[str, Any],
    body: str,
    *,
    parent: Registration | None = None,
    **inputs: Any,
) -> Registration:
    """A remote command as provisioning.run_step registers it: ``bash -c '<rendered script>'``,
    the script being what components.provisioning.render writes (strict mode, the parameter block)
    followed by ``body``."""
    command = as_command(render([], params) + body, name, sudo=False)
    return resource(COMMAND, name, {"create": command, "update": command, **inputs}, parent=parent)


def script_step(
    name: str, params: Mapping[str, Any], body: str, *, parent: Registration | None = None
) -> tuple[Registration, Registration]:
    """``script_command`` with its step record beside it, as run_step registers both (``run_of`` takes the pair)."""
    props = {
        "scripts": [],
        "parameters": {key: str(value) for key, value in params.items()},
        "stops": [],
        "removes": [],
    }
    record = resource(STEP, step_record_name(name), props, parent=parent, outputs=props)
    return record, script_command(name, params, body, parent=parent)


def step_parameter(name: str, value: str | None) -> Any:
    """An edit for ``edit_inputs`` of a step record: its parameter ``name`` set to ``value`` (None: left out)."""

    def edit(inputs: dict[str, Any]) -> None:
        assert name in inputs["parameters"], f"the step renders no {name}"
        if value is None:
            del inputs["parameters"][name]
        else:
            inputs["parameters"][name] = value

    return edit


def edit_script(run: StackRun, name: str, edit: Any) -> StackRun:
    """The run with ``edit(script)`` applied to the script a real command runs (its create and update),
    wrapped again as components.provisioning.as_command wraps it."""

    def apply(inputs: dict[str, Any]) -> None:
        for key in ("create", "update"):
            words = shlex.split(inputs[key])
            at = words.index("-c")
            script = edit(words[at + 1])
            assert script != words[at + 1], f"the edit changed nothing in {name}"
            inputs[key] = as_command(script, words[at + 2], sudo=words[0] == "sudo")

    return edit_inputs(run, name, apply)


def parameter(name: str, value: str) -> Any:
    """An edit for ``edit_script``: the rendered parameter ``name`` set to ``value`` (quoted as render quotes it)."""

    def edit(script: str) -> str:
        return re.sub(rf"^{name}=.*$", lambda _: f"{name}={shlex.quote(value)}", script, count=1, flags=re.MULTILINE)

    return edit


def alibaba_rule(name: str, parent: Registration | None = None, group: Registration | None = None, **fields: Any):
    """An Alibaba rule as the provider SDK registers it (in the adopted group unless ``group``)."""
    inputs = {
        "type": "ingress",
        "ipProtocol": "tcp",
        "portRange": "3306/3306",
        "cidrIp": "0.0.0.0/0",
        "policy": "accept",
        "priority": 1,
        "nicType": "intranet",
        "securityGroupId": "sg-wz9example000000001" if group is None else f"{group.name}-id",
        **fields,
    }
    depends_on = {"securityGroupId": [group]} if group is not None else None
    return resource(ALIBABA_RULE, name, inputs, parent=parent, depends_on=depends_on)
