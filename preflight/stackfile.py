"""Read ``Pulumi.<stack>.yaml`` into the config map the engine would hand the program."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from plan import NAMESPACE

# Offline there is no passphrase or cloud KMS to decrypt `secure:` values, so every secret
# is replaced by a labelled placeholder, marked secret like the real one.
PLACEHOLDER_PREFIX = "PLACEHOLDER-SECRET-"


def placeholder(key: str) -> str:
    return f"{PLACEHOLDER_PREFIX}{key.replace(':', '-').replace('.', '-')}"


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


def read_stack(root: Path, stack: str) -> StackConfig:
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        valid = ", ".join(available_stacks(root)) or "none"
        raise StackFileError(f"stack {stack!r}: no {path.name} here; stacks: {valid}")
    return read_stack_file(path, project_name(root), stack)


def read_stack_file(path: Path, project: str, stack: str) -> StackConfig:
    """Any stack file's config, as the engine would hand it to ``project``'s program for ``stack``."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise StackFileError(f"{path.name}: not valid YAML ({str(error).splitlines()[0]})") from None
    raw: Any = (document.get("config") or {}) if isinstance(document, dict) else None
    if not isinstance(raw, dict):
        raise StackFileError(f"{path.name}: not a Pulumi stack file (expected a mapping with a config: mapping)")
    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    placeholders: set[str] = set()
    for key, value in raw.items():
        if _has_secure(value):  # the whole value, or a field of it, set with --secret
            value = _replace_secure(value, key)
            secret_keys.add(key)
            placeholders.add(key)
        config[key] = _encode(value)
    return StackConfig(project, stack, config, frozenset(secret_keys), frozenset(placeholders))


def check_project_keys(stack: StackConfig) -> None:
    """A stack file of this project sets ``platform:cloud``; another project's keys use its own namespace."""
    if f"{NAMESPACE}:cloud" in stack.config:
        return
    namespaces = sorted({key.partition(":")[0] for key in stack.config if ":" in key})
    found = f"; its keys are under {', '.join(f'{n}:' for n in namespaces)}" if namespaces else "; it sets no config"
    raise StackFileError(f"not a stack file of project {stack.project!r}: it has no {NAMESPACE}:cloud{found}")


def with_missing_secrets(stack: StackConfig, database_names: tuple[str, ...]) -> StackConfig:
    """The secrets a user sets with --secret are not in a committed file: stand in for them."""
    config, secret_keys, placeholders = dict(stack.config), set(stack.secret_keys), set(stack.placeholders)
    key = f"{NAMESPACE}:sshPrivateKey"
    if key not in config:
        config[key] = placeholder(key)
        secret_keys.add(key)
        placeholders.add(key)
    key = f"{NAMESPACE}:dbPasswords"
    if key not in config and database_names:
        config[key] = json.dumps({name: placeholder(f"{key}.{name}") for name in database_names})
        secret_keys.add(key)
        placeholders.add(key)
    return StackConfig(stack.project, stack.stack, config, frozenset(secret_keys), frozenset(placeholders))


def _encode(value: Any) -> str:
    """Pulumi passes strings as they are and everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


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
