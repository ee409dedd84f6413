"""Run the Pulumi program under ``pulumi.runtime.set_mocks`` and record what the engine sees.

Every registration is kept as the engine would receive it: inputs as protobuf-JSON (camelCase
keys, numbers as floats, secrets wrapped), components included with their props, and the
options that matter here (parent, protect, import id, ignore_changes, dependencies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings, stack
from pulumi.runtime.sync_await import _sync_await

# The wrapper the engine puts around a secret value.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105 - a signature, not a secret
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a signature, not a secret
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# A created instance has no address until the cloud gives it one: the preview shows this
# documentation address (RFC 5737) instead.
MOCK_PUBLIC_IP = "192.0.2.10"


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    custom: bool
    parent: str
    inputs: dict[str, Any]
    protect: bool
    retain_on_delete: bool
    import_id: str
    ignore_changes: list[str]
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    additional_secret_outputs: list[str]
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class StackRun:
    project: str
    stack: str
    resources: list[Registration]
    outputs: dict[str, Any]

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registration:
        return next(r for r in self.resources if r.name == name)


class CloudMocks(pulumi.runtime.Mocks):
    """Stands in for the cloud: ids from names, the outputs the program reads."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ in ("alicloud:ecs/instance:Instance", "tencentcloud:Instance/instance:Instance"):
            state.setdefault("publicIp", MOCK_PUBLIC_IP)
        if args.typ == "command:remote:Command":
            state.update(stdout="", stderr="")
        resource_id = args.resource_id or (f"{args.name}-id" if args.custom else "")
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self.stack_outputs: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        self.registrations.append(
            Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                custom=request.custom,
                parent=request.parent,
                inputs=json_format.MessageToDict(request.object),
                protect=request.protect,
                retain_on_delete=request.retainOnDelete,
                import_id=request.importId,
                ignore_changes=list(request.ignoreChanges),
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                additional_secret_outputs=list(request.additionalSecretOutputs),
            )
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        outputs = json_format.MessageToDict(request.outputs)
        for registration in self.registrations:
            if registration.urn == request.urn:
                registration.outputs = outputs
        if "::pulumi:pulumi:Stack::" in request.urn:
            self.stack_outputs = outputs
        return super().RegisterResourceOutputs(request)


def run_stack(
    project: str,
    stack_name: str,
    config: dict[str, str],
    secret_keys: set[str],
    monitor: RecordingMonitor | None = None,
) -> StackRun:
    """Evaluate the program once for a stack; raises what the program raises."""
    import program  # imported here: importing it registers nothing, running it does

    monitor = monitor or RecordingMonitor(CloudMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack_name, preview=True, monitor=monitor)
    settings.set_root_resource(None)  # type: ignore[arg-type]  # run_in_stack registers its own Stack
    pulumi.runtime.set_all_config(config, sorted(secret_keys))
    _sync_await(stack.run_in_stack(program.main))
    resources = [r for r in monitor.registrations if r.type != "pulumi:pulumi:Stack"]
    return StackRun(project, stack_name, resources, monitor.stack_outputs)


def unwrap(value: Any) -> Any:
    """The plain value of an engine-shaped property (secrets unwrapped)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value
