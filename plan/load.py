"""From stack config to a plan: decoding, the one-line errors, and the config the plan came from."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from difflib import get_close_matches
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ValidationError,
)

from plan.defaults import PATCHED_SECTIONS, elsewhere, with_defaults
from plan.model import Plan
from plan.schema import NAMESPACE, NAMESPACES, PATTERN_WORDS, SECRET_KEYS, PlanError, Receiver
from plan_values import (
    NAME_PATTERN,
    looks_secret_key,
    shown,
)

_FIELDS = {field.alias or name for name, field in Plan.model_fields.items()}


def load_plan(config: Mapping[str, str], secret_keys: set[str] | frozenset[str] = frozenset()) -> Plan:
    """Build the plan from raw stack config (``{"platform:host": "<json>", ...}``).

    Raises ``PlanError`` with one line naming the key, the value (unless it may be a secret) and
    what is valid; never another exception, whatever the config holds.
    """
    prefix = f"{NAMESPACE}:"
    values: dict[str, Any] = {}
    for full_key, raw in config.items():
        check_config_key(full_key, secret_keys)
        if not full_key.startswith(prefix) or full_key[len(prefix) :] in SECRET_KEYS:
            continue
        key = full_key[len(prefix) :]
        if key not in _FIELDS:
            valid = ", ".join(sorted(f"{prefix}{f}" for f in _FIELDS | set(SECRET_KEYS)))
            raise PlanError(f"{full_key}: unknown config key; valid keys: {valid}")
        values[key] = _decode(raw)
    try:
        values = with_defaults(values)
        return Plan.model_validate(values)
    except ValueError as error:  # with_defaults: a key that names itself
        if not isinstance(error, ValidationError):
            raise PlanError(str(error)) from None
        raise PlanError(_first_error(error, values)) from None
    except RecursionError:
        raise PlanError(f"{NAMESPACE}: config nested too deeply to be a plan") from None


def effective_config(plan: Plan) -> dict[str, Any]:
    """The plan as a stack file that spells every default out: ``python -m preflight STACK --plan``.
    Read back, it gives the same plan (omitted defaults stay omitted)."""
    values = plan.model_dump(mode="json", by_alias=True)
    if not any(values["omit"].values()):
        del values["omit"]
    return {"config": {f"{NAMESPACE}:{key}": value for key, value in values.items()}}


def check_config_key(full_key: Any, secret_keys: set[str] | frozenset[str]) -> None:
    """A key in a namespace this project reads, and stored as a secret when it names one."""
    if not isinstance(full_key, str) or ":" not in full_key:
        raise PlanError(f"config key {shown(full_key)}: expected '<namespace>:<name>', e.g. {NAMESPACE}:cloud")
    namespace, _, name = full_key.partition(":")
    if namespace not in NAMESPACES:
        guess = get_close_matches(namespace, NAMESPACES, n=1)
        hint = f"; did you mean {guess[0]}:{name}?" if guess else ""
        raise PlanError(
            f"{shown(full_key)}: unknown namespace {shown(namespace)}; this project reads "
            f"{', '.join(f'{n}:' for n in NAMESPACES)}{hint}"
        )
    if (name in SECRET_KEYS or looks_secret_key(name)) and full_key not in secret_keys:
        raise PlanError(
            f"{full_key} is stored in plain text: set it with "
            f"`pulumi config set --secret {full_key} ...` (or --secret --path for one field)"
        )


def check_secrets_present(plan: Plan, config: Mapping[str, str]) -> None:
    """Every database has its password and every service secret its value (only the key names
    are read, never the values)."""
    key = f"{NAMESPACE}:serviceSecrets"
    raw = _decode(config.get(key, "{}"))
    names = set(raw) if isinstance(raw, dict) else set()
    for service in plan.services:
        for name in service.secrets:
            if name not in names:
                raise PlanError(
                    f"{key}.{name}: not set (services {service.name} reads it); run "
                    f"`pulumi config set --secret --path '{key}.{name}' <value>`"
                )
    key = f"{NAMESPACE}:alertWebhook"
    example = (
        "https://oapi.dingtalk.com/robot/send?access_token=..."
        if plan.monitoring.receiver == Receiver.DINGTALK
        else "https://hooks.slack.com/services/..."
    )
    if plan.runs_prometheus and key not in config:
        raise PlanError(
            f"{key}: not set; Alertmanager on this host posts alerts there: run "
            f"`pulumi config set --secret {key} {example}`"
        )
    if plan.runs_prometheus:
        _check_webhook(config, example)
    _check_heartbeat(plan, config)
    if not plan.databases:
        return
    key = f"{NAMESPACE}:dbPasswords"
    raw = _decode(config.get(key, "{}"))
    names = set(raw) if isinstance(raw, dict) else set()
    for db in plan.databases:
        if db.name not in names:
            raise PlanError(
                f"{key}.{db.name}: not set; run `pulumi config set --secret --path '{key}.{db.name}' <password>`"
            )


# What a webhook URL may be: https, one line, no spaces (the monitoring step writes it to a file).
_WEBHOOK_URL = re.compile(r"https://[^\s/]+/\S*")


def _check_webhook(config: Mapping[str, str], example: str) -> None:
    """The webhook secrets' types, before anything is written: never their values (they are secrets)."""
    key = f"{NAMESPACE}:alertWebhook"
    url = _decode(config[key])
    if not isinstance(url, str):
        raise PlanError(
            f"{key}: {_kind(url)}, not a URL; set one https URL: `pulumi config set --secret {key} {example}`"
        )
    if not _WEBHOOK_URL.fullmatch(url.strip()):
        raise PlanError(
            f"{key}: not an https URL on one line (the value is a secret and not shown); set one: "
            f"`pulumi config set --secret {key} {example}`"
        )
    key = f"{NAMESPACE}:alertSigningSecret"
    if key in config and isinstance(signing := _decode(config[key]), dict | list):
        raise PlanError(f"{key}: {_kind(signing)}, not the robot's signing secret (one string, SEC...)")


# A heartbeat URL: https, one line, and nothing that would need escaping in curl's configuration.
_HEARTBEAT_URL = re.compile(r'https://[^\s/"\\]+/[^\s"\\]*')


def _check_heartbeat(plan: Plan, config: Mapping[str, str]) -> None:
    """The dead man's switch's URL: on a host with a watcher to watch (it runs Prometheus, or the
    peer's Prometheus scrapes it), and one https URL (never shown)."""
    key = f"{NAMESPACE}:heartbeatUrl"
    if key not in config:
        return
    if not (plan.runs_prometheus or plan.metrics_login):
        raise PlanError(
            f"{key}: set on a host that neither runs Prometheus nor is scraped by the peer's (monitoring off, or a "
            f"Tencent host without Prometheus), so its heartbeat would never be sent: `pulumi config rm {key}`"
        )
    url = _decode(config[key])
    if not isinstance(url, str) or not _HEARTBEAT_URL.fullmatch(url.strip()):
        what = f"{_kind(url)}, not a URL" if not isinstance(url, str) else "not an https URL on one line"
        raise PlanError(
            f"{key}: {what} (the value is a secret and not shown); set the ping URL of a heartbeat service: "
            f"`pulumi config set --secret {key} https://hc-ping.com/<uuid>`"
        )


def _kind(value: Any) -> str:
    """What a decoded config value is, in the CLI's words, without the value."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


def _decode(raw: str) -> Any:
    """Pulumi hands objects and lists over as JSON text, plain strings as they are."""
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _first_error(error: ValidationError, values: Mapping[str, Any] | None = None) -> str:
    detail = error.errors(include_url=False)[0]
    loc = tuple(detail["loc"])
    of_key = bool(loc) and loc[-1] == "[key]"  # pydantic's mark for a mapping's key, not its value
    if of_key:
        loc = loc[:-2]
    location = _location(_named(loc, values or {}))
    key = loc_name(loc)
    value = detail["input"]
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "string_pattern_mismatch":
        words = _PATTERN_HELP.get(key) if not of_key else None
        words = words or PATTERN_WORDS.get(str(detail.get("ctx", {}).get("pattern")), "")
        what = f"the key {shown(value)}" if of_key else shown(value, key)
        if words:
            return f"{location}: {what} is not valid; expected {words}"
        return f"{location}: {what} is not in the form this field takes (README: 'What a value may hold')"
    if detail["type"] == "missing":
        hint = _MISSING_HELP.get(key, "")
        if (entry := _entry(loc, values or {})) is not None:
            hint += elsewhere(str(loc[0]), entry.get("name"), (values or {}).get("cloud"))
        return f"{location}: required but not set{hint}"
    if detail["type"] == "extra_forbidden":  # the value may be a secret pasted in the wrong place
        known = fields_at(loc[:-1])
        guess = get_close_matches(key.lower(), [f.lower() for f in known], n=1, cutoff=0.6)
        hint = next((f for f in known if guess and f.lower() == guess[0]), None)
        if hint is not None and _PLAIN_KEY.match(key):
            return f"{location}: unknown field; did you mean {hint}? (README.md lists each field)"
        return f"{location}: unknown field; check the spelling against README.md"
    if detail["type"] == "union_tag_invalid":
        return f"{location}: mode {shown(value.get('mode'))} is not valid; expected 'create' or 'adopt'"
    if detail["type"] == "union_tag_not_found":
        return f"{location}: mode is required; expected 'create' or 'adopt'"
    if detail["type"] == "enum":
        return f"{location}: {shown(value, key)} is not valid; {message.lower()}"
    if message.startswith(f"{NAMESPACE}:"):  # a cross-field check that names its own key
        return message
    if isinstance(value, dict | list | tuple):  # a check over a whole block
        return f"{location}: {message}"
    return f"{location}: {message} (got {shown(value, key)})"


_MISSING_HELP = {
    # replicaOf.source: a patch of a default replica replaces its replicaOf whole.
    "source": (
        "; replicaOf takes its source and kind with any other field, a patch's too "
        "(e.g. {source: production-redis, kind: redis, discard: true})"
    ),
    "release": (
        "; where the service's build comes from: {version, artifact: <an https URL>, sha256: <its digest>} "
        "(the host downloads it) or {version, upload: <a file or directory built on this machine>}"
    ),
}
# Phrases by field, for a pattern several fields share with different meanings (``plan.schema.PATTERN_WORDS``
# says the rest, by pattern).
_PATTERN_HELP = {
    "family": "a port-plan family name: lower-case letters, digits and '-'",
    "instanceType": "the cloud's instance type, e.g. ecs.t6-c1m1.large or S5.MEDIUM4",
    "imageId": "the cloud's image id: letters, digits and _ . -",
    "keyPairName": "the cloud's key pair name or id: letters, digits and _ . -",
}
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The fields (as a stack file spells them) of the plan section at ``loc``: what a typo there
    was meant to be. Empty where ``loc`` is no section of the schema."""
    model: Any = Plan
    for part in loc:
        model = _inner(model, part)
        if model is None:
            return []
    model = _model(model)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _model(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (``Proxy | None`` holds ``Proxy``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _model(args[0])
    if origin in (Union, UnionType):
        models = [m for a in args if (m := _model(a)) is not None]
        return models[0] if len(models) == 1 else None
    return None


def _inner(annotation: Any, part: int | str) -> Any:
    """The type one step into ``annotation``: a model's field, a list's item, a mapping's value, the
    member of a tagged union named by ``part``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _inner(args[0], part)
    if origin in (Union, UnionType):
        members = [a for a in args if a is not type(None)]
        tagged = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel) and part in _tags(m)]
        if tagged:
            return tagged[0]
        found = [inner for m in members if (inner := _inner(m, part)) is not None]
        return found[0] if found else None
    if origin in (tuple, list) and isinstance(part, int):
        return args[0] if args else None
    if origin is dict and isinstance(part, str):
        return args[1] if len(args) == 2 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(part, str):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
    return None


def _tags(model: type[BaseModel]) -> tuple[str, ...]:
    mode = model.model_fields.get("mode")
    return get_args(mode.annotation) if mode is not None else ()


def loc_name(loc: tuple[int | str, ...]) -> str:
    return next((str(part) for part in reversed(loc) if isinstance(part, str)), "")


def _named(loc: tuple[int | str, ...], values: Mapping[str, Any]) -> tuple[int | str, ...]:
    """A workload's index in a patched list (which the stack file never wrote) as the workload's name:
    ``databases[3]`` -> ``databases[production-neo4j]``."""
    entry = _entry(loc, values)
    name = entry.get("name") if entry is not None else None
    if not isinstance(name, str) or not _NAME_IN_KEY.match(name):
        return loc
    return (loc[0], _WorkloadIndex(name), *loc[2:])


def _entry(loc: tuple[int | str, ...], values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The workload entry of a patched list that ``loc`` points into (after the defaults are filled in)."""
    if len(loc) < 2 or loc[0] not in PATCHED_SECTIONS or not isinstance(loc[1], int):
        return None
    entries = values.get(str(loc[0]))
    entry = entries[loc[1]] if isinstance(entries, list | tuple) and loc[1] < len(entries) else None
    return entry if isinstance(entry, dict) else None


class _WorkloadIndex(str):
    """A list position shown by the workload's name."""


_NAME_IN_KEY = re.compile(NAME_PATTERN)


def _location(loc: tuple[int | str, ...]) -> str:
    text = f"{NAMESPACE}:"
    parts = [p for p in loc if p not in ("create", "adopt")]  # discriminator tags are not config keys
    for index, part in enumerate(parts):
        if isinstance(part, int | _WorkloadIndex):
            text += f"[{part}]"
        else:
            # A key is shown as written only when it is plain (a key with a newline stays one line).
            name = part if _PLAIN_KEY.match(part) else f"[{shown(part)}]"
            text += name if index == 0 else f".{name}"
    return text
