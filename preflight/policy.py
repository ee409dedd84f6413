"""Run the policy pack over a recorded stack exactly as ``pulumi preview --policy-pack`` would.

The pack is driven through pulumi-policy's own analyzer servicer, the object the CLI talks to
over gRPC, with the requests the engine sends:
- ``Analyze`` once per resource (components and the stack included) with its *inputs* and the
  options the engine passes (protect, ignoreChanges, deleteBeforeReplace, additionalSecretOutputs,
  aliases, parent);
- ``AnalyzeStack`` once with every resource's *outputs*, parents and (property) dependencies;
- ``Configure`` first, with the pack config the CLI reconciles: each policy's schema defaults,
  then ``all``, then per-policy levels and properties from ``--policy-pack-config``, validated
  against the schemas (sdk/go/common/resource/plugin: ReconcilePolicyPackConfig).

Known differences: the engine calls the provider's ``Check`` before ``Analyze`` (it may add
provider defaults to inputs), and passes the default provider resources; offline there is no
provider plugin, so policies see the program's inputs as the SDK sent them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import proto
from pulumi_policy.policy import _PolicyAnalyzerServicer  # the SDK's analyzer: what the CLI runs

from policies import pack as policies
from policies.facts import STACK
from preflight.engine import RecordingMonitor, Registration, StackRun

PACK_DIR = Path(policies.__file__).resolve().parent
LEVELS = {
    "advisory": proto.ADVISORY,
    "mandatory": proto.MANDATORY,
    "remediate": proto.REMEDIATE,
    "disabled": proto.DISABLED,
}
_LEVEL_NAMES = {value: name for name, value in LEVELS.items()}
_SEVERITIES = {1: "low", 2: "medium", 3: "high", 4: "critical"}


class PackConfigError(Exception):
    """A --policy-pack-config the CLI would refuse (one line naming the policy and the problem)."""


class OutputMonitor(RecordingMonitor):
    """Records what a custom resource's provider returns: the outputs stack policies read."""

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        if request.custom:
            outputs = json_format.MessageToDict(response.object)
            for registration in reversed(self.registrations):
                if registration.urn == response.urn:
                    registration.outputs = outputs
                    break
        return response


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str  # "mandatory" | "advisory" (a remediate level reports as mandatory, as the CLI does)
    severity: str
    urn: str
    message: str
    description: str

    def as_json(self) -> dict[str, str]:
        return {"policy": self.policy, "level": self.level, "urn": self.urn, "message": self.message}


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    description: str
    level: str
    severity: str
    kind: str  # "resource" | "stack"
    remediation: str
    schema: dict[str, Any]


@dataclass
class Pack:
    """The pack, configured: what ``Configure`` received and what each policy is."""

    version: str
    policies: dict[str, PolicyInfo]
    config: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def level(self, policy: str) -> str:
        return self.config[policy][0]

    def properties(self, policy: str) -> dict[str, Any]:
        return dict(self.config[policy][1])


def load_pack(config_file: Path | None = None, *, config: Mapping[str, Any] | None = None) -> Pack:
    """The pack's policies (as its analyzer describes them) with the reconciled config.

    ``config_file`` is a ``--policy-pack-config`` file; ``config`` the same document, parsed.
    """
    version = str(yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text()).get("version", "0.0.1"))
    info = _servicer(version).GetAnalyzerInfo(None, None)
    described = {p.name: _describe(p) for p in info.policies}
    given = read_pack_config(config_file) if config_file else parse_pack_config(config or {}, "config")
    return Pack(version, described, reconcile(described, given))


def read_pack_config(path: Path) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """A ``--policy-pack-config`` file, parsed as the CLI does (an empty file is no config)."""
    text = path.read_text()
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError as error:
        raise PackConfigError(f"{path}: not valid JSON ({error})") from None
    return parse_pack_config(document, str(path))


def parse_pack_config(document: object, source: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """``{"policy": "advisory"}`` sets a level; ``{"policy": {"enforcementLevel": ..., "key": value}}``
    sets a level and properties; ``"all"`` sets every policy's level."""
    if not isinstance(document, dict):
        raise PackConfigError(f"{source}: must be a JSON object of policy name -> level or settings")
    given: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for name, value in document.items():
        if isinstance(value, str):
            given[name] = (_level(name, value), {})
        elif isinstance(value, dict):
            properties = dict(value)
            level = properties.pop("enforcementLevel", None)
            given[name] = (None if level is None else _level(name, level), properties)
        else:
            raise PackConfigError(f"{source}: {name}: {value!r} is not valid; give a level or an object")
    return given


def reconcile(
    described: Mapping[str, PolicyInfo], given: Mapping[str, tuple[str | None, dict[str, Any]]]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Schema defaults, then ``all``, then each policy's level and properties; then validated."""
    unknown = sorted(set(given) - set(described) - {"all"})
    if unknown:
        # The CLI ignores these silently; offline a misspelt policy name is worth a stop.
        raise PackConfigError(f"unknown policy {', '.join(unknown)}; policies: {', '.join(described)}")
    result = {
        name: (info.level, {k: v["default"] for k, v in info.schema.get("properties", {}).items() if "default" in v})
        for name, info in described.items()
    }
    all_level = given.get("all", (None, {}))[0]
    if all_level is not None:
        result = {name: (all_level, props) for name, (_, props) in result.items()}
    for name, (level, properties) in given.items():
        if name == "all":
            continue
        old_level, props = result[name]
        result[name] = (level or old_level, {**props, **properties})
    if given:  # the defaults alone are valid (tests/policies/test_runner.py): skip the validator's import
        validate_config(described, result)
    return result


def validate_config(described: Mapping[str, PolicyInfo], config: Mapping[str, tuple[str, dict[str, Any]]]) -> None:
    import jsonschema  # the CLI validates with gojsonschema; this is the same JSON Schema check

    for name, (_, props) in config.items():
        schema = {"type": "object", **described[name].schema}
        for error in jsonschema.Draft7Validator(schema).iter_errors(props):
            where = ".".join(str(p) for p in error.absolute_path) or "(config)"
            raise PackConfigError(f"{name}: {where}: {error.message}")


class Analyzer(Protocol):
    """The analyzer service's calls, as the engine makes them (the in-process servicer, or a gRPC stub)."""

    def Configure(self, request: Any, context: Any, /) -> Any: ...  # noqa: N802 - the gRPC method names
    def Analyze(self, request: Any, context: Any, /) -> Any: ...  # noqa: N802
    def AnalyzeStack(self, request: Any, context: Any, /) -> Any: ...  # noqa: N802


def evaluate(run: StackRun, pack: Pack, analyzer: Analyzer | None = None) -> list[Violation]:
    """Every violation the pack reports for one stack, resource policies first."""
    service: Analyzer = analyzer or _servicer(pack.version)
    service.Configure(_configure_request(pack), None)
    stack_urn = f"urn:pulumi:{run.stack}::{run.project}::pulumi:pulumi:Stack::{run.project}-{run.stack}"
    stack = Registration(
        type=STACK, name=f"{run.project}-{run.stack}", urn=stack_urn, custom=False, parent="",
        inputs={}, protect=False, retain_on_delete=False, import_id="", ignore_changes=[], dependencies=[],
        property_dependencies={}, additional_secret_outputs=[], outputs=dict(run.outputs),
    )  # fmt: skip
    resources = [stack, *run.resources]
    found: list[Violation] = []
    for resource in resources:
        request = proto.AnalyzeRequest(
            type=resource.type,
            properties=_struct(resource.inputs),
            urn=resource.urn,
            name=resource.name,
            options=_options(resource, with_parent=True),
        )
        found += _violations(service.Analyze(request, None), pack, default_urn=resource.urn)
    request = proto.AnalyzeStackRequest(resources=[_stack_resource(r) for r in resources])
    return found + _violations(service.AnalyzeStack(request, None), pack, default_urn=stack_urn)


def _servicer(version: str) -> _PolicyAnalyzerServicer:
    return _PolicyAnalyzerServicer(policies.PACK_NAME, version, list(policies.POLICIES), policies.DEFAULT_LEVEL)


def _describe(info: Any) -> PolicyInfo:
    schema: dict[str, Any] = {}
    if info.HasField("configSchema"):
        schema = json_format.MessageToDict(info.configSchema, preserving_proto_field_name=True)
    return PolicyInfo(
        name=info.name,
        description=info.description,
        level=_LEVEL_NAMES[info.enforcementLevel],
        severity=_SEVERITIES.get(info.severity, ""),
        kind="stack" if info.policy_type == proto.PolicyType.POLICY_TYPE_STACK else "resource",
        remediation=info.remediation_steps,
        schema=_integral(schema),
    )


def _integral(value: Any) -> Any:
    """Protobuf numbers are floats; a schema's ``minimum: 1.0`` means the integer 1."""
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _level(policy: str, value: Any) -> str:
    if value not in LEVELS:
        raise PackConfigError(f"{policy}: {value!r} is not a valid enforcement level; use one of {', '.join(LEVELS)}")
    return str(value)


def _configure_request(pack: Pack) -> Any:
    request = proto.ConfigureAnalyzerRequest()
    for name, (level, properties) in pack.config.items():
        request.policyConfig[name].CopyFrom(
            proto.PolicyConfig(enforcementLevel=LEVELS[level], properties=_struct(properties))
        )
    return request


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(dict(values), struct)
    return struct


def _options(resource: Registration, with_parent: bool) -> Any:
    # Analyze gets the parent in its options; AnalyzeStack gets it on the resource instead.
    return proto.AnalyzerResourceOptions(
        protect=resource.protect,
        ignoreChanges=resource.ignore_changes,
        additionalSecretOutputs=resource.additional_secret_outputs,
        deleteBeforeReplace=resource.delete_before_replace,
        deleteBeforeReplaceDefined=resource.delete_before_replace,
        aliases=resource.aliases,
        parent=resource.parent if with_parent else "",
    )


def _stack_resource(resource: Registration) -> Any:
    analyzed = proto.AnalyzerResource(
        type=resource.type,
        properties=_struct(resource.outputs),
        urn=resource.urn,
        name=resource.name,
        options=_options(resource, with_parent=False),
        parent=resource.parent,
        dependencies=resource.dependencies,
    )
    for key, urns in resource.property_dependencies.items():
        analyzed.propertyDependencies[key].CopyFrom(proto.AnalyzerPropertyDependencies(urns=urns))
    return analyzed


def _violations(response: Any, pack: Pack, default_urn: str) -> list[Violation]:
    found = []
    for diagnostic in response.diagnostics:
        # The SDK prefixes the policy's description to every message; keep the specific part.
        message = diagnostic.message.removeprefix(diagnostic.description).lstrip("\n") or diagnostic.description
        level = _LEVEL_NAMES[diagnostic.enforcementLevel]
        found.append(
            Violation(
                policy=diagnostic.policyName,
                level="mandatory" if level == "remediate" else level,
                severity=_SEVERITIES.get(diagnostic.severity, pack.policies[diagnostic.policyName].severity),
                urn=diagnostic.urn or default_urn,
                message=message,
                description=diagnostic.description,
            )
        )
    return found
