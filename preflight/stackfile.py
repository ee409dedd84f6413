"""Read ``Pulumi.<stack>.yaml`` into the config map the engine would hand the program."""

from __future__ import annotations

import datetime
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from plan import NAMESPACE, SECRET_KEYS
from plan_values import looks_secret_key, shown

# Offline there is no passphrase or cloud KMS to decrypt `secure:` values, so every secret
# is replaced by a labelled placeholder, marked secret like the real one.
PLACEHOLDER_PREFIX = "PLACEHOLDER-SECRET-"


# A secret whose type the program checks (a URL) stands in as one of that type.
URL_SECRETS = (f"{NAMESPACE}:alertWebhook", f"{NAMESPACE}:heartbeatUrl")


def placeholder(key: str) -> str:
    label = f"{PLACEHOLDER_PREFIX}{key.replace(':', '-').replace('.', '-')}"
    return f"https://placeholder.invalid/{label}" if key in URL_SECRETS else label


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    config: dict[str, str]
    secret_keys: frozenset[str]
    placeholders: frozenset[str]
    """Config keys whose value is a labelled placeholder, not the user's secret."""


class StackFileError(Exception):
    pass


def project_name(root: Path) -> str:
    return yaml.safe_load((root / "Pulumi.yaml").read_text())["name"]


def available_stacks(root: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


# Pulumi's own rule for stack names; the name also lands in resource names and the PR comment.
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
# Bounds that keep a hostile file from costing more than a glance: real stack files are a few KiB.
MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 32


def read_stack(root: Path, stack: str) -> StackConfig:
    if not _STACK_NAME.match(stack):
        raise StackFileError(f"stack {shown(stack)}: a stack name holds letters, digits and _ . - only")
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        valid = ", ".join(available_stacks(root)) or "none"
        raise StackFileError(f"stack {stack!r}: no {path.name} here; stacks: {valid}")
    return read_stack_file(path, project_name(root), stack)


def read_stack_file(path: Path, project: str, stack: str) -> StackConfig:
    """Any stack file's config, as the engine would hand it to ``project``'s program for ``stack``."""
    document = load_yaml(path)
    raw: Any = (document.get("config") or {}) if isinstance(document, dict) else None
    if not isinstance(raw, dict):
        raise StackFileError(f"{path.name}: not a Pulumi stack file (expected a mapping with a config: mapping)")
    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    placeholders: set[str] = set()
    for key, value in raw.items():
        _check_plain_secrets(key, value, secret=key.partition(":")[2] in SECRET_KEYS)
        if _has_secure(value):  # the whole value, or a field of it, set with --secret
            value = _replace_secure(value, key)
            secret_keys.add(key)
            placeholders.add(key)
        config[key] = _encode(key, value)
    return StackConfig(project, stack, config, frozenset(secret_keys), frozenset(placeholders))


def load_yaml(path: Path) -> Any:
    """The file's YAML, refusing what would let a reviewer read one thing and the engine another."""
    try:
        data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            raise StackFileError(f"{path.name}: {len(data)} bytes; a stack file is at most {MAX_FILE_BYTES}")
        return yaml.load(data.decode("utf-8"), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        if "tag:yaml.org,2002:merge" in str(error) and mark is not None:
            raise StackFileError(
                f"{path.name}: line {mark.line + 1}: the merge key '<<' is not allowed in a stack file; write the "
                "keys out, as a reviewer reads them"
            ) from None
        raise StackFileError(f"{path.name}: not valid YAML ({_first_line(error)})") from None
    except UnicodeDecodeError:
        raise StackFileError(f"{path.name}: not UTF-8 text") from None
    except (ValueError, RecursionError) as error:  # e.g. an integer literal too long to convert
        raise StackFileError(f"{path.name}: a value cannot be read ({type(error).__name__})") from None


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe subset, minus what a stack file never needs and an attacker would use:
    duplicate keys (YAML keeps the last silently), non-string keys, aliases (exponential
    expansion), and nesting deeper than any plan. Plain scalars resolve as the Pulumi CLI's
    reader (gopkg.in/yaml.v3, ``_resolve_as_yaml_v3``) resolves them, not as YAML 1.1 would."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise StackFileError(
                f"line {_line(self.peek_event())}: YAML aliases (*name) are not allowed in a stack file"
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise StackFileError(f"line {_line(self.peek_event())}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise StackFileError(f"line {line}: key {shown(key)} is not a string; config keys are names")
            if key in seen:
                raise StackFileError(
                    f"line {line}: key {shown(key)} repeats the one on line {seen[key]}; YAML would silently keep "
                    "only the last, so remove one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


# gopkg.in/yaml.v3 v3.0.1 (the Pulumi CLI's reader: sdk/go/common/encoding/marshal.go) resolves a
# plain scalar by its first character (resolve.go:35-45), then: booleans only true/True/TRUE and
# false/False/FALSE (:52-53; on, yes, off and no are strings); null only ~, null/Null/NULL or empty
# (:54); a timestamp YYYY-M-D[...] (:292-326); an integer by Go's ParseInt(base 0) once every "_" is
# removed (:191-203: 0x, 0o, 0b, and a leading 0 for octal: 017 is 15); else a float
# (yamlStyleFloat, :124; 018 is 18.0) or .inf/.nan (:55-58). No base-60 (:165-167: 30:43 is a string).
_V3_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_V3_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_V3_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}.*)?$")
_V3_INT = re.compile(r"^[-+]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)$")
_V3_FLOAT = re.compile(r"^[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?$")
_V3_SPECIAL_FLOAT = re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def _resolve_as_yaml_v3(loader: type[yaml.SafeLoader]) -> None:
    loader.yaml_implicit_resolvers = {}
    loader.add_implicit_resolver("tag:yaml.org,2002:bool", _V3_BOOL, list("tTfF"))
    loader.add_implicit_resolver("tag:yaml.org,2002:null", _V3_NULL, ["~", "n", "N", ""])
    loader.add_implicit_resolver("tag:yaml.org,2002:timestamp", _V3_TIMESTAMP, list("0123456789"))
    loader.add_implicit_resolver("tag:yaml.org,2002:int", _V3_INT, list("-+0123456789"))
    loader.add_implicit_resolver("tag:yaml.org,2002:float", _V3_FLOAT, list("-+0123456789."))
    loader.add_implicit_resolver("tag:yaml.org,2002:float", _V3_SPECIAL_FLOAT, list("-+."))
    loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])


def _v3_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | float | str:
    written = str(loader.construct_scalar(node))
    text = written.replace("_", "")
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    try:
        value = sign * int(digits, 8 if re.fullmatch(r"0[0-7]+", digits) else 0)  # Go: a leading 0 is octal
        if -(2**63) <= value < 2**64:  # int64, then uint64 (resolve.go:192-203)
            return value
    except ValueError:  # 018 (no octal), or more digits than Python converts
        pass
    if _V3_FLOAT.match(text) and math.isfinite(number := sign * float(digits)):  # resolve.go:204-209
        return number
    return written  # out of every range: Go's parsers fail, so yaml.v3 keeps the text


def _v3_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text.lower().endswith(".nan"):
        return math.nan
    if text.lower().endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    return float(text)


_resolve_as_yaml_v3(_StrictLoader)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _v3_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _v3_float)


def _line(event: Any) -> int:
    return event.start_mark.line + 1


def _first_line(error: yaml.YAMLError) -> str:
    return " ".join(str(error).split())[:200]


def _check_plain_secrets(path: str, value: Any, secret: bool) -> None:
    """Every leaf under a secret-looking name, at any depth, is ``secure:`` on its own: one
    secure field does not make its plain siblings secret."""
    # A list's items go by the list's name: secrets[0] is an item of `secrets`.
    name = re.sub(r"(\[\d+\])+$", "", path.rpartition(".")[2].rpartition(":")[2])
    secret = secret or looks_secret_key(name)
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return
        for key, item in value.items():
            _check_plain_secrets(f"{path}.{key}", item, secret)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_plain_secrets(f"{path}[{index}]", item, secret)
    elif secret and value not in (None, ""):
        how = f"--path '{path}'" if "." in path or "[" in path else path
        raise StackFileError(
            f"{path} is stored in plain text: set it with `pulumi config set --secret {how} ...` "
            "(the value is not shown)"
        )


def check_project_keys(stack: StackConfig) -> None:
    """A stack file of this project sets ``platform:cloud``; another project's keys use its own namespace."""
    if f"{NAMESPACE}:cloud" in stack.config:
        return
    namespaces = sorted({key.partition(":")[0] for key in stack.config if ":" in key})
    found = f"; its keys are under {', '.join(f'{n}:' for n in namespaces)}" if namespaces else "; it sets no config"
    raise StackFileError(f"not a stack file of project {stack.project!r}: it has no {NAMESPACE}:cloud{found}")


def with_plan_secrets(stack: StackConfig, plan: Any) -> StackConfig:
    """``with_missing_secrets`` for what ``plan`` needs (a plan of an older revision lacks some fields)."""
    return with_missing_secrets(
        stack,
        tuple(db.name for db in plan.databases),
        service_secret_names(plan),
        bool(getattr(plan, "runs_prometheus", False)),
    )


def service_secret_names(plan: Any) -> tuple[str, ...]:
    """The secrets a plan's services read (none in a revision from before services had any)."""
    return tuple(sorted({name for service in plan.services for name in getattr(service, "secrets", ())}))


def with_missing_secrets(
    stack: StackConfig,
    database_names: tuple[str, ...],
    service_secrets: tuple[str, ...] = (),
    runs_prometheus: bool = False,
) -> StackConfig:
    """The secrets a user sets with --secret are not in a committed file: stand in for them
    (the SSH key, each database's password, each secret a service reads)."""
    config, secret_keys, placeholders = dict(stack.config), set(stack.secret_keys), set(stack.placeholders)

    def stand_in(key: str, value: str) -> None:
        config[key] = value
        secret_keys.add(key)
        placeholders.add(key)

    for name, wanted in (("sshPrivateKey", True), ("alertWebhook", runs_prometheus)):
        key = f"{NAMESPACE}:{name}"
        if wanted and key not in config:
            stand_in(key, placeholder(key))
    for name, fields in (("dbPasswords", database_names), ("serviceSecrets", service_secrets)):
        key = f"{NAMESPACE}:{name}"
        # Not in the file, or one secure: block for the whole object (its fields cannot be read offline).
        if fields and (key not in config or config[key].startswith(PLACEHOLDER_PREFIX)):
            stand_in(key, json.dumps({field: placeholder(f"{key}.{field}") for field in fields}))
    return StackConfig(stack.project, stack.stack, config, frozenset(secret_keys), frozenset(placeholders))


def _encode(key: str, value: Any) -> str:
    """What the Pulumi CLI hands the program (sdk/go/common/resource/config/object.go: MarshalString):
    a string as it is, a top-level null as "" (the CLI warns and treats it so), everything else as
    Go's JSON, where a float with no fraction is written without one (2.0 reads back as 2)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return json.dumps(_as_go_json(value), allow_nan=False)
    except (TypeError, ValueError):  # a YAML date, set, binary or .nan: nothing a config value can be
        raise StackFileError(f"{key}: {_unencodable(value)}") from None


def _unencodable(value: Any) -> str:
    """Why the Pulumi CLI would not hand ``value`` over as it reads."""
    leaves = [value]
    while leaves:
        leaf = leaves.pop()
        if isinstance(leaf, dict):
            leaves += leaf.values()
        elif isinstance(leaf, list):
            leaves += leaf
        elif isinstance(leaf, datetime.date):
            return (
                f"holds a date, which the Pulumi CLI hands the program as text such as "
                f"'{leaf.isoformat()[:10]} 00:00:00 +0000 UTC'; quote it to keep it as written"
            )
        elif isinstance(leaf, float) and not math.isfinite(leaf):
            return "holds .inf or .nan, which the Pulumi CLI refuses (JSON has no such number)"
    return "holds a value config cannot carry (a set or binary); use strings, numbers, booleans, lists and mappings"


def _as_go_json(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {k: _as_go_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_go_json(v) for v in value]
    return value


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _replace_secure(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return placeholder(path)
        return {k: _replace_secure(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value
