"""Run the Pulumi program under ``pulumi.runtime.set_mocks`` and record what the engine sees.

Every registration is kept as the engine would receive it: inputs as protobuf-JSON (camelCase
keys, numbers as floats, secrets wrapped), components included with their props, and the
options that matter here (parent, protect, import id, ignore_changes, dependencies) and the
ones that decide what a later ``up`` does with it (replaceOnChanges, deleteBeforeReplace,
retainOnDelete, aliases).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import heapq
import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings, stack
from pulumi.runtime.sync_await import _sync_await

from policies.facts import ALIBABA_GROUP_RULES, ALIBABA_INSTANCE, COMMAND, STACK, STACK_REFERENCE, TENCENT_INSTANCE

# The wrapper the engine puts around a secret value.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105 - a signature, not a secret
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - a signature, not a secret
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
# The signatures of an asset and an archive (sdk/go/common/resource/asset, archive).
ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"

# A created instance has no address until the cloud gives it one: the preview shows this
# documentation address (RFC 5737) instead.
MOCK_PUBLIC_IP = "192.0.2.10"

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"  # noqa: S105 - a type token
TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
TLS_CERT_REQUEST = "tls:index/certRequest:CertRequest"
TLS_CERTIFICATES = ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert")
# What a generated secret reads as in the preview: labelled, like the config placeholders
# (preflight/stackfile.py), so a leak of one into a script or a log is recognisable.
GENERATED_PLACEHOLDER = "PLACEHOLDER-SECRET-generated-"


def fake_pem(label: str, name: str) -> str:
    """A PEM block that parses as one but holds only the resource's name: nothing real to leak.

    The header is assembled here, at run time: no file of the project holds a key block header
    (secret scanners rightly flag even a fake one).
    """
    body = base64.b64encode(f"mock {label.lower()} of {name}".encode()).decode()
    dashes = "-" * 5
    return f"{dashes}BEGIN {label}{dashes}\n{body}\n{dashes}END {label}{dashes}\n"


def content_digest(path: Path) -> str | None:
    """A file's or a directory's content as one sha256 (names relative to the directory, then bytes);
    None when it is not on this machine. Equal content gives an equal digest wherever it lies."""
    if not (path.is_file() or path.is_dir()):
        return None
    digest = hashlib.sha256()
    for entry in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        digest.update(entry.relative_to(path).as_posix().encode() + b"\0" if path.is_dir() else b"")
        with entry.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StackOutputs:
    """A referenced stack's outputs as a ``StackReference`` reads them: plain values, and which are secret."""

    outputs: dict[str, Any]
    secret_names: tuple[str, ...] = ()


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
    replace_on_changes: list[str] = field(default_factory=list)
    """Input paths whose change replaces the resource (the SDK may force some: pulumi-command's triggers)."""
    delete_before_replace: bool = False
    aliases: list[str] = field(default_factory=list)
    """Earlier URNs of this resource, as the SDK computes them (children inherit their parent's)."""


@dataclass
class StackRun:
    project: str
    stack: str
    resources: list[Registration]
    outputs: dict[str, Any]
    warnings: tuple[str, ...] = ()
    """What the program logged as a warning or an error (``pulumi.log``), as the CLI would show it."""

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registration:
        return next(r for r in self.resources if r.name == name)

    def as_reference(self) -> StackOutputs:
        """The outputs as another stack's ``StackReference`` reads them."""
        secret = tuple(sorted(name for name, value in self.outputs.items() if is_secret(value)))
        return StackOutputs(outputs=unwrap(self.outputs), secret_names=secret)


class CloudMocks(pulumi.runtime.Mocks):
    """Stands in for the cloud: ids from names, the outputs the program reads.

    ``group_rules`` holds what the Alibaba data source ``getSecurityGroupRules`` reads, per
    security-group id, as the provider returns each rule (camelCase keys); a group not listed
    is empty, as a freshly adopted group with no rule would be. Every invoke is kept in ``calls``.

    ``stack_outputs`` holds, per fully-qualified stack name, what a ``StackReference`` to it reads
    (``preflight/references.py`` evaluates the referenced stack's own file for it). pulumi-tls
    keys and certificates read as labelled fake PEM blocks, pulumi-random passwords as labelled
    placeholders.
    """

    def __init__(
        self,
        group_rules: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        stack_outputs: Mapping[str, StackOutputs] | None = None,
    ) -> None:
        self.group_rules = {group: [dict(rule) for rule in rules] for group, rules in (group_rules or {}).items()}
        self.stack_outputs = dict(stack_outputs or {})
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ in (ALIBABA_INSTANCE, TENCENT_INSTANCE):
            state.setdefault("publicIp", MOCK_PUBLIC_IP)
        if args.typ == COMMAND:
            state.update(stdout="", stderr="")
        if args.typ == STACK_REFERENCE:
            state.update(self._stack_reference(str(args.inputs.get("name") or args.resource_id)))
        state.update(generated_outputs(args.typ, args.name))
        resource_id = args.resource_id or (f"{args.name}-id" if args.custom else "")
        return resource_id, state

    def _stack_reference(self, stack: str) -> dict[str, Any]:
        if stack not in self.stack_outputs:
            known = ", ".join(sorted(self.stack_outputs)) or "none"
            raise LookupError(f"StackReference {stack!r}: no such stack evaluated for the preview (evaluated: {known})")
        found = self.stack_outputs[stack]
        return {"name": stack, "outputs": found.outputs, "secretOutputNames": list(found.secret_names)}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.calls.append((args.token, dict(args.args)))
        # No check failures: an empty list, since the mock monitor iterates it (None would raise).
        if args.token == ALIBABA_GROUP_RULES:
            return self._alibaba_group_rules(args.args), []
        return {}, []

    def _alibaba_group_rules(self, query: Mapping[str, Any]) -> dict[str, Any]:
        # As the provider answers: DescribeSecurityGroupAttribute filtered by nicType and direction,
        # then by ipProtocol and policy (lower-cased), the group's name and description beside.
        group_id = query["groupId"]
        wanted = {key: query.get(key) for key in ("nicType", "direction", "ipProtocol", "policy") if query.get(key)}
        rules = [r for r in self.group_rules.get(group_id, []) if all(r.get(k) == v for k, v in wanted.items())]
        return {
            **{key: value for key, value in query.items() if value is not None},
            "groupId": group_id,
            "id": group_id,
            "groupName": f"{group_id} (adopted)",
            "groupDesc": "",
            "rules": rules,
        }


def generated_outputs(type_: str, name: str) -> dict[str, Any]:
    """The outputs pulumi-tls and pulumi-random would compute, as recognisable stand-ins."""
    if type_ == RANDOM_PASSWORD:
        return {"result": f"{GENERATED_PLACEHOLDER}{name}", "bcryptHash": f"{GENERATED_PLACEHOLDER}{name}-bcrypt"}
    if type_ == TLS_PRIVATE_KEY:
        private = "EC " + "PRIVATE KEY"
        return {
            "privateKeyPem": fake_pem(private, name),
            "privateKeyPemPkcs8": fake_pem("PRIVATE" + " KEY", name),
            "privateKeyOpenssh": fake_pem("OPENSSH " + "PRIVATE KEY", name),
            "publicKeyPem": fake_pem("PUBLIC KEY", name),
            "publicKeyOpenssh": f"ecdsa-sha2-nistp256 mock-{name}",
            "publicKeyFingerprintSha256": f"SHA256:mock-{name}",
        }
    if type_ == TLS_CERT_REQUEST:
        return {"certRequestPem": fake_pem("CERTIFICATE REQUEST", name)}
    if type_ in TLS_CERTIFICATES:
        return {
            "certPem": fake_pem("CERTIFICATE", name),
            "readyForRenewal": False,
            "validityStartTime": "2025-01-01T00:00:00Z",
            "validityEndTime": "2026-01-01T00:00:00Z",
        }
    return {}


class DuplicateUrnError(Exception):
    """Two resources with one URN: the engine refuses the whole run."""


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self._urns: set[str] = set()
        self.failure: Exception | None = None
        self.asset_root = Path.cwd()
        """Where a relative asset path is read from: the program's directory, the CLI's working directory."""
        self.registrations: list[Registration] = []
        self.stack_outputs: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        urn = self.make_urn(request.parent, request.type, request.name)
        # The mock runtime registers the stack itself twice (set_mocks, then run_in_stack).
        if urn in self._urns and request.type != STACK:
            # As the engine refuses it (pkg/resource/deploy/step_generator.go: GetDuplicateResourceURNError).
            self.failure = DuplicateUrnError(f"Duplicate resource URN '{urn}'; try giving it a unique name")
            raise self.failure
        self._urns.add(urn)
        response = super().RegisterResource(request)
        self.registrations.append(
            Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                custom=request.custom,
                parent=request.parent,
                inputs=self._hashed_assets(json_format.MessageToDict(request.object)),
                protect=request.protect,
                retain_on_delete=request.retainOnDelete,
                import_id=request.importId,
                ignore_changes=list(request.ignoreChanges),
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                additional_secret_outputs=list(request.additionalSecretOutputs),
                replace_on_changes=list(request.replaceOnChanges),
                delete_before_replace=request.deleteBeforeReplace,
                aliases=self._alias_urns(request),
            )
        )
        return response

    def _hashed_assets(self, value: Any) -> Any:
        """Inputs with each file asset's or archive's content hash beside its path, as the engine
        computes it at registration (it diffs assets by that hash, never by path)."""
        if isinstance(value, dict):
            if value.get(SECRET_SIG_KEY) in (ASSET_SIG, ARCHIVE_SIG) and isinstance(value.get("path"), str):
                digest = content_digest(self.asset_root / value["path"])
                return {**value, "hash": digest} if digest else value
            return {k: self._hashed_assets(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._hashed_assets(v) for v in value]
        return value

    def _alias_urns(self, request: Any) -> list[str]:
        """The earlier URNs the engine would match in its state, from the alias specs the SDK sends.

        As the engine does: an alias's unset fields default to the resource's own (its parent
        too, unless ``noParent``), and a child inherits every alias of its parent, with the
        parent's old name in place of its new one where the child's name starts with it. URNs
        are formed the mock engine's way (``make_urn``), so they compare with its recorded ones.
        Aliases to another stack or project are not followed (this program makes none).
        """
        found: set[str] = set(request.aliasURNs)
        for alias in request.aliases:
            if alias.urn:
                found.add(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            found.add(self.make_urn(parent, spec.type or request.type, spec.name or request.name))
        parent = next((r for r in self.registrations if r.urn == request.parent), None)
        for parent_alias in parent.aliases if parent is not None else ():
            name = request.name
            if parent is not None and name.startswith(parent.name):
                name = parent_alias.rsplit("::", 1)[1] + name[len(parent.name) :]
            found.add(self.make_urn(parent_alias, request.type, name))
        return sorted(found)

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
    references: Mapping[str, StackOutputs] | None = None,
    *,
    offline: bool = True,
    checkout: Path | None = None,
) -> StackRun:
    """Evaluate the program once for a stack; raises what the program raises.

    ``checkout``: the project directory the CLI would run the program in (default: the program's
    own), where a release to upload is read from (``release.upload``) and assets are hashed.

    ``references``: what each ``StackReference`` the program makes reads (see CloudMocks).
    ``offline``: the program runs as the offline gate runs it, listing a stack file's example values
    instead of refusing them (``program.main``); ``False`` runs it exactly as the Pulumi CLI would.
    Nothing else is stood in for: a release to upload that is not on this machine fails here as it
    fails under the CLI.
    """
    import program  # imported here: importing it registers nothing, running it does

    monitor = monitor or RecordingMonitor(CloudMocks())
    own = Path(program.__file__).resolve().parent
    monitor.asset_root = checkout or own
    if hasattr(program, "PROJECT_DIR"):
        program.PROJECT_DIR = checkout or own
    if references and isinstance(monitor.mocks, CloudMocks):
        monitor.mocks.stack_outputs.update(references)
    logged = _Logged()
    pulumi.runtime.set_mocks(
        monitor.mocks, project=project, stack=stack_name, preview=True, monitor=monitor, logger=logged.logger
    )
    settings.set_root_resource(None)  # type: ignore[arg-type]  # run_in_stack registers its own Stack
    pulumi.runtime.set_all_config(config, sorted(secret_keys))
    main = program.main
    # A revision from before the offline flag (``--from``) has no example values to list.
    if "offline" in inspect.signature(main).parameters:
        main = functools.partial(main, offline=offline)
    try:
        _sync_await(stack.run_in_stack(main))
    except Exception:
        if monitor.failure is not None:  # what the engine would have said first
            raise monitor.failure from None
        raise
    if monitor.failure is not None:
        raise monitor.failure
    resources = stable_order([r for r in monitor.registrations if r.type != STACK])
    return StackRun(project, stack_name, resources, monitor.stack_outputs, tuple(logged.messages))


class _Logged(logging.Handler):
    """The program's log, kept for the report instead of written to stderr (where it would precede,
    and muddle, the one line of a failure)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []
        self.logger = logging.Logger(f"preflight-program-{id(self)}", level=logging.WARNING)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def stable_order(resources: Sequence[Registration]) -> list[Registration]:
    """The resources in an order that depends only on what they are: each after its parent and its
    dependencies (as the engine needs them), otherwise by URN. Registration order does not serve: it
    follows the asyncio scheduling of the program's outputs, which varies from run to run."""
    by_urn = {r.urn: r for r in resources}
    waiting: dict[str, int] = {}
    unlocks: dict[str, list[str]] = {}
    for resource in resources:
        before = {resource.parent, *resource.dependencies}
        before |= {u for urns in resource.property_dependencies.values() for u in urns}
        before = (before & by_urn.keys()) - {resource.urn}
        waiting[resource.urn] = len(before)
        for urn in before:
            unlocks.setdefault(urn, []).append(resource.urn)
    ready = [urn for urn, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    done: list[Registration] = []
    while ready:
        urn = heapq.heappop(ready)
        done.append(by_urn[urn])
        for later in unlocks.get(urn, ()):
            waiting[later] -= 1
            if waiting[later] == 0:
                heapq.heappush(ready, later)
    placed = {r.urn for r in done}
    return done + [r for r in resources if r.urn not in placed]  # a cycle cannot be registered


def is_secret(value: Any) -> bool:
    """True when an engine-shaped property is wrapped as a secret."""
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def unwrap(value: Any) -> Any:
    """The plain value of an engine-shaped property (secrets unwrapped)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value
