"""What ``pulumi up`` would do to a stack: the steps the engine derives from two runs' registrations.

``steps(old, new)`` takes the run that produced the stack's state (OLD: an earlier stack file or
git revision, evaluated under the mock engine) and the run a merge would deploy (NEW), and applies
the engine's own rules, per resource:

- match NEW to OLD by URN, or by one of the NEW registration's ``aliases`` (a rename with an alias
  is the same resource); no match is a ``create`` (``retire`` for a workload's retire command),
  an OLD resource nothing matched is a ``delete``;
- compare inputs (secrets unwrapped, ``ignoreChanges`` paths dropped, ``"*"`` ignores all): no
  difference is ``same``; a difference covered by ``replaceOnChanges`` is a ``replace``, any other an
  ``update``. ``key`` and ``key[*]`` cover any change of the top-level ``key`` (added or removed
  included: pulumi-command's provider marks ``triggers`` replace-on-change in its schema, so even
  dropping every trigger replaces), ``key.sub`` the value at that path;
- what runs on the host, for ``command:remote:Command``: create runs the new ``create``, update the
  new ``update`` (else ``create``), replace the new ``create`` and then the OLD ``delete`` (first,
  with ``deleteBeforeReplace``) unless the OLD one was ``retainOnDelete``, delete the OLD ``delete``
  unless retained;
- order: creates, updates and replacements in registration order (dependencies register first),
  then the deletes, the deferred deletes of replaced resources among them, in reverse OLD
  registration order. Each run carries its place in that order.

What this cannot know:

- Providers' own diffs, beyond ``preflight/providers.py``: a table read from the Terraform schemas
  behind the SDKs of every input whose change replaces a resource (ForceNew) or stops its instance on
  the way (an instance type, a system disk), each entry citing its source. A changed input the table
  does not name is an ``update``. pulumi-command's provider replaces on nothing but ``triggers``, so a
  command's op is the engine's. A certificate due for renewal is replaced by pulumi-tls without any
  input changing: not seen here (its dependents' stdin is then new).
- The real state. OLD is re-evaluated from code and config; a failed or partial ``up``, a
  ``pulumi state`` edit, a ``refresh`` or drift on the hosts are not seen.
- Outputs the cloud assigns (ids, addresses): the mocks derive them from names, so an input
  computed from a replaced resource's output shows no change here; nor are the dependents the
  engine replaces along with a ``deleteBeforeReplace`` resource listed.
- Components run nothing: a changed component input is an ``update`` that only rewrites state.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from policies._scan import command_script, workload_stops
from policies.facts import (
    ALIBABA_INSTANCE,
    COMMAND,
    OSS_BUCKET,
    PARAMETERS_HEADER,
    STEP,
    TENCENT_INSTANCE,
    step_record_name,
)
from preflight import providers
from preflight.engine import ARCHIVE_SIG, ASSET_SIG, SECRET_SIG_KEY, Registration, StackRun, unwrap
from preflight.inspect import HOST_COMPONENT, redacted
from preflight.markdown import cell
from preflight.tables import print_table

# Resources that hold data: replacing or deleting one loses a disk (or the host with its disks).
DATA_HOLDERS = frozenset(
    {
        ALIBABA_INSTANCE,
        "alicloud:ecs/disk:Disk",
        "alicloud:ecs/ecsDisk:EcsDisk",
        TENCENT_INSTANCE,
        "tencentcloud:Cbs/storage:Storage",
        OSS_BUCKET,
    }
)
OPS = ("same", "create", "update", "replace", "delete", "retire")
SCRIPTS = Path(__file__).resolve().parent.parent / "components" / "scripts"
_MISSING = object()


@dataclass(frozen=True)
class HostRun:
    """One command the engine runs on a host: the phase, in the engine's terms, and its text."""

    phase: str
    """create, update, delete, create-replacement or delete-replaced."""
    command: str
    """The command text with secrets masked."""
    order: int = 0
    """Its place among every run of the deployment (1 = first)."""


@dataclass(frozen=True)
class Step:
    name: str
    type: str
    op: str
    runs: tuple[HostRun, ...] = ()
    notes: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    """The top-level inputs that differ (after ignoreChanges)."""
    old: Registration | None = None
    new: Registration | None = None
    stops: tuple[tuple[str, str], ...] = ()
    """In-place changes the provider makes by stopping the instance, or that fail: (input path, effect)."""
    parameters: tuple[Mapping[str, str] | None, Mapping[str, str] | None] = (None, None)
    """A command's step parameters before and after, from the step records (None: no record)."""


@dataclass(frozen=True)
class Diff:
    stack: str
    steps: tuple[Step, ...]
    hazards: tuple[str, ...]
    notes: tuple[str, ...] = ()
    source: str = ""
    """What OLD was (``--from``): a stack file or a git revision."""
    scripts: Mapping[str, str] = field(default_factory=dict)
    """Script signatures (first comment line) -> file name, to name what a command runs."""

    def by_name(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.op != "same"]


# ---------------------------------------------------------------------------------------
# The steps
# ---------------------------------------------------------------------------------------


def steps(old: StackRun, new: StackRun) -> Diff:
    """The engine's steps from OLD's registrations (the state) to NEW's (the program)."""
    old_by_urn = {r.urn: r for r in old.resources}
    retired = {w["name"]: bool(w.get("purge")) for w in (_plan(new) or {}).get("retired") or []}
    matched: set[str] = set()
    forward: list[Step] = []
    for resource in new.resources:
        prior = _match(resource, old_by_urn, matched)
        if prior is None:
            forward.append(_created(resource, retired))
        else:
            matched.add(prior.urn)
            forward.append(_compared(prior, resource))
    deletes = [_deleted(r) for r in reversed(old.resources) if r.urn not in matched]
    before, after = step_parameters(old), step_parameters(new)
    forward = [
        dataclasses.replace(s, parameters=(before.get(_key(s.old)), after.get(_key(s.new))))
        if s.type == COMMAND and s.old is not None and s.new is not None
        else s
        for s in forward
    ]
    ordered = _number_runs(forward, deletes, old)
    hazards = [h for step in ordered for h in _hazards(step)]
    hazards += removals_without_intent(old, new)
    return Diff(new.stack, tuple(ordered), tuple(hazards))


def _match(resource: Registration, old_by_urn: dict[str, Registration], matched: set[str]) -> Registration | None:
    if resource.urn in old_by_urn:
        return old_by_urn[resource.urn]
    return next((old_by_urn[a] for a in resource.aliases if a in old_by_urn and a not in matched), None)


def _created(resource: Registration, retired: dict[str, bool]) -> Step:
    notes = []
    if resource.import_id:
        notes.append(f"imported (id {resource.import_id}): read into state, nothing is created")
    op = "create"
    workload = next((w for w in sorted(retired) if resource.name.endswith(f"-retire-{w}")), None)
    if resource.type == COMMAND and workload is not None:
        op = "retire"
        notes.append(f"retires {workload} (platform:retired): its create runs the removal")
        if retired[workload]:
            notes.append("purge: true: its data directory is deleted")
    runs = _runs(("create", _text(resource, "create")))
    return Step(resource.name, resource.type, op, runs, tuple(notes), new=resource)


def _compared(prior: Registration, resource: Registration) -> Step:
    notes = [f"renamed: was {prior.name} (matched by alias)"] if prior.urn != resource.urn else []
    old_inputs, new_inputs = _ignoring(prior, resource)
    changed = tuple(sorted(k for k in old_inputs.keys() | new_inputs.keys() if _differs(old_inputs, new_inputs, [k])))
    if not changed:
        return Step(resource.name, resource.type, "same", (), tuple(notes), (), prior, resource)
    notes.append(f"changed: {', '.join(changed)}")
    covered = [p for p in resource.replace_on_changes if _covers(p, old_inputs, new_inputs)]
    rules = providers.RULES.get(resource.type)
    by_provider = _provider_replaces(rules, changed, old_inputs, new_inputs)
    if covered or by_provider:
        if covered:
            notes.append(f"replaceOnChanges {', '.join(covered)}: replaced")
        if by_provider:
            assert rules is not None
            notes.append(f"the provider replaces it on a change to {', '.join(by_provider)} ({rules.source})")
        create = ("create-replacement", _text(resource, "create"))
        delete = ("delete-replaced", _delete_text(prior))
        if prior.retain_on_delete:
            notes.append("the old one is retained: its delete does not run")
        if resource.delete_before_replace:
            notes.append("deleteBeforeReplace: the old one is deleted first")
            runs = _runs(delete, create)
        else:
            notes.append("the old one is deleted after every create and update")
            runs = _runs(create, delete)
        return Step(resource.name, resource.type, "replace", runs, tuple(notes), changed, prior, resource)
    if resource.type == COMMAND:
        runs = _runs(("update", _text(resource, "update") or _text(resource, "create")))
    else:
        runs = ()
        if not resource.custom:
            notes.append("a component: nothing runs, its state is rewritten")
        elif rules is None:
            notes.append("the provider decides: it may replace on a field it forces")
        else:
            notes.append(f"updated in place ({rules.source})")
    stops = _provider_stops(rules, old_inputs, new_inputs)
    notes += [f"{path}: {effect}" for path, effect in stops]
    return Step(resource.name, resource.type, "update", runs, tuple(notes), changed, prior, resource, stops)


def _deleted(prior: Registration) -> Step:
    notes = []
    if prior.retain_on_delete:
        notes.append("retained: nothing runs" + ("" if prior.type.startswith("command:") else ", the cloud keeps it"))
    elif prior.type == COMMAND and _text(prior, "delete") is None:
        notes.append("no delete command: nothing runs")
    elif prior.custom and prior.type != COMMAND:
        notes.append("the provider deletes it")
    if prior.protect:
        notes.append("protected: the engine refuses to delete it")
    runs = _runs(("delete", _delete_text(prior)))
    return Step(prior.name, prior.type, "delete", runs, tuple(notes), old=prior)


def _number_runs(forward: list[Step], deletes: list[Step], old: StackRun) -> list[Step]:
    """Give every run its place: forward steps in order, then all deletes by reverse OLD order."""
    sequence: list[tuple[str, str]] = []  # (step name, phase)
    for step in forward:
        sequence += [(step.name, run.phase) for run in step.runs if run.phase != "delete-replaced" or _first(step)]
    position = {r.urn: i for i, r in enumerate(old.resources)}
    later = [s for s in forward if s.op == "replace" and not _first(s)] + deletes
    for step in sorted(later, key=lambda s: -position[s.old.urn] if s.old else 0):
        sequence += [(step.name, run.phase) for run in step.runs if run.phase in ("delete", "delete-replaced")]
    order = {key: index for index, key in enumerate(sequence, start=1)}

    def numbered(step: Step) -> Step:
        runs = tuple(HostRun(r.phase, r.command, order[(step.name, r.phase)]) for r in step.runs)
        return dataclasses.replace(step, runs=runs)

    return [numbered(s) for s in [*forward, *deletes]]


def _first(step: Step) -> bool:
    return step.new is not None and step.new.delete_before_replace


def _runs(*phases: tuple[str, str | None]) -> tuple[HostRun, ...]:
    return tuple(HostRun(phase, text) for phase, text in phases if text is not None)


def _text(resource: Registration, key: str) -> str | None:
    """A command's text for display (secrets masked); None when it has none or is no command."""
    if resource.type != COMMAND:
        return None
    value = redacted(resource.inputs.get(key))
    return value if isinstance(value, str) and value else None


def _delete_text(prior: Registration) -> str | None:
    return None if prior.retain_on_delete else _text(prior, "delete")


# ---------------------------------------------------------------------------------------
# Comparing inputs
# ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\[(\*|\d+|\"[^\"]*\")\]|([^.\[\]]+)")


def parse_path(text: str) -> list[str | int]:
    """``a.b[0]["c.d"][*]`` -> ``["a", "b", 0, "c.d", "*"]``."""
    parts: list[str | int] = []
    for match in _TOKEN.finditer(text):
        index, key = match.groups()
        if key is not None:
            parts.append(key)
        elif index.startswith('"'):
            parts.append(index[1:-1])
        else:
            parts.append("*" if index == "*" else int(index))
    return parts


def _ignoring(prior: Registration, resource: Registration) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides' plain inputs without the paths NEW's ignoreChanges lists (``*``: all), assets as
    the engine compares them."""
    old, new = _assets_compared(unwrap(prior.inputs), unwrap(resource.inputs))
    if "*" in resource.ignore_changes:
        return {}, {}
    for path in resource.ignore_changes:
        parts = parse_path(path)
        old, new = _without(old, parts), _without(new, parts)
    return old, new


def _assets_compared(old: Any, new: Any) -> tuple[Any, Any]:
    """Each asset or archive at the same place on both sides as what the engine compares: its
    content hash (sdk/go/common/resource/asset: ``Equals`` compares ``Hash`` only), so a release read
    from another checkout is no change. Where a side's file is not on this machine (an older
    revision's build), its path as the plan wrote it stands in."""
    if _is_asset(old) and _is_asset(new):
        if old.get("hash") and new.get("hash"):
            return f"content {old['hash']}", f"content {new['hash']}"
        return f"file {old.get('path')}", f"file {new.get('path')}"
    if isinstance(old, dict) and isinstance(new, dict):
        pairs = {k: _assets_compared(old.get(k), new.get(k)) for k in old.keys() & new.keys()}
        return (
            {k: pairs[k][0] if k in pairs else v for k, v in old.items()},
            {k: pairs[k][1] if k in pairs else v for k, v in new.items()},
        )
    if isinstance(old, list) and isinstance(new, list):
        pairs_list = [_assets_compared(a, b) for a, b in zip(old, new, strict=False)]
        return (
            [*(a for a, _ in pairs_list), *old[len(pairs_list) :]],
            [*(b for _, b in pairs_list), *new[len(pairs_list) :]],
        )
    return old, new


def _is_asset(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) in (ASSET_SIG, ARCHIVE_SIG)


def _without(value: Any, path: list[str | int]) -> Any:
    if not path:
        return _MISSING
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        keys = list(value) if head == "*" else [head] if head in value else []
        result = dict(value)
        for key in keys:
            inner = _without(value[key], rest)
            if inner is _MISSING:
                del result[key]
            else:
                result[key] = inner
        return result
    if isinstance(value, list):
        indexes = range(len(value)) if head == "*" else [head] if isinstance(head, int) and head < len(value) else []
        result_list = list(value)
        for index in indexes:
            inner = _without(value[index], rest)
            result_list[index] = None if inner is _MISSING else inner  # keep the other indexes in place
        return result_list
    return value


def _at(value: Any, key: str | int) -> Any:
    if isinstance(value, dict) and isinstance(key, str):
        return value.get(key, _MISSING)
    if isinstance(value, list) and isinstance(key, int):
        return value[key] if key < len(value) else _MISSING
    return _MISSING


def _differs(old: Any, new: Any, path: list[str | int]) -> bool:
    if not path:
        return old != new
    head, rest = path[0], path[1:]
    if head == "#":  # the number of elements
        return (len(old) if isinstance(old, list) else 0) != (len(new) if isinstance(new, list) else 0)
    if head == "*":
        if isinstance(old, list) or isinstance(new, list):
            olds, news = (v if isinstance(v, list) else [] for v in (old, new))
            return len(olds) != len(news) or any(_differs(a, b, rest) for a, b in zip(olds, news, strict=True))
        if isinstance(old, dict) or isinstance(new, dict):
            olds, news = (v if isinstance(v, dict) else {} for v in (old, new))
            return any(_differs(olds.get(k, _MISSING), news.get(k, _MISSING), rest) for k in olds.keys() | news.keys())
        return old != new
    return _differs(_at(old, head), _at(new, head), rest)


def _provider_replaces(
    rules: providers.ProviderRules | None, changed: tuple[str, ...], old: dict[str, Any], new: dict[str, Any]
) -> list[str]:
    """The changed inputs the provider answers with a replacement (its schema's ForceNew)."""
    if rules is None:
        return []
    if "*" in rules.replaces:
        return list(changed)
    return [path for path in rules.replaces if _differs(old, new, parse_path(path))]


def _provider_stops(
    rules: providers.ProviderRules | None, old: dict[str, Any], new: dict[str, Any]
) -> tuple[tuple[str, str], ...]:
    """In-place changes that stop the instance, and numbers the cloud only grows that would shrink:
    (input path, what happens). A change that neither stops nor shrinks is no hazard."""
    found: list[tuple[str, str]] = []
    for stop in rules.stops if rules is not None else ():
        parts = parse_path(stop.path)
        if not _differs(old, new, parts):
            continue
        if stop.grow_only and any(a > b for a, b in _numbers(old, new, parts)):
            found.append((stop.path, "fails at apply: the cloud only grows it, so `pulumi up` stops half-way"))
        elif stop.stops:
            found.append((stop.path, stop.effect))
    return tuple(found)


def _numbers(old: Any, new: Any, path: list[str | int]) -> list[tuple[float, float]]:
    """The (old, new) numbers at ``path`` on both sides (``*`` pairs list elements in order)."""
    if not path:
        both = isinstance(old, int | float) and isinstance(new, int | float)
        return [(float(old), float(new))] if both else []
    head, rest = path[0], path[1:]
    if head == "*" and isinstance(old, list) and isinstance(new, list):
        return [pair for a, b in zip(old, new, strict=False) for pair in _numbers(a, b, rest)]
    return _numbers(_at(old, head), _at(new, head), rest)


def _covers(pattern: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Does a replaceOnChanges path cover a difference? ``key``/``key[*]``: any change of ``key``."""
    parts = parse_path(pattern)
    if parts == ["*"]:
        return old != new
    if parts[1:] == ["*"] or len(parts) == 1:
        return _differs(old, new, parts[:1])
    return _differs(old, new, parts)


# ---------------------------------------------------------------------------------------
# Hazards
# ---------------------------------------------------------------------------------------


def _hazards(step: Step) -> list[str]:
    found = [f"update of {step.name} ({step.type}): {path} {effect}" for path, effect in step.stops]
    if step.op not in ("replace", "delete") or step.old is None:
        return found
    what = f"{step.op} of {step.name} ({step.type})"
    if step.op == "replace" and step.type in providers.NETWORKS:
        found.append(
            f"{what}: the instance lives in it; the cloud refuses to delete the old one while the instance is "
            "attached, so `pulumi up` fails after creating the new one"
        )
    if step.type in DATA_HOLDERS:
        kept = " (retained: the cloud keeps it, the stack no longer manages it)" if step.old.retain_on_delete else ""
        found.append(f"{what}: it holds data{kept}")
    delete = next((r for r in step.runs if r.phase in ("delete", "delete-replaced")), None)
    if delete is not None and (stops := workload_stops(command_script(delete.command))):
        found.append(f"{what} runs its old delete, which stops or removes a workload ({stops[0]})")
    if step.old.protect or (step.op == "replace" and step.new is not None and step.new.protect):
        found.append(f"{what}: it is protected, the engine refuses to {step.op} it and `pulumi up` fails")
    return found


def _plan(run: StackRun) -> dict[str, Any] | None:
    """The host's plan as its component registered it (None without a host component)."""
    hosts = run.of_type(HOST_COMPONENT)
    return unwrap(hosts[0].inputs.get("plan")) if hosts else None


def removals_without_intent(old: StackRun, new: StackRun) -> list[str]:
    """Databases and services that left the plan without being listed under platform:retired."""
    before, after = _plan(old), _plan(new)
    if before is None or after is None:
        return []
    staying = {w["name"] for w in after.get("workloads") or []} | {w["name"] for w in after.get("retired") or []}
    found = []
    for workload in before.get("workloads") or []:
        role = str(workload.get("role", ""))
        if not (role.startswith("database:") or role == "service") or workload["name"] in staying:
            continue
        kind = "databases" if role.startswith("database:") else "services"
        found.append(
            f"{workload['name']} ({role}) left the plan but is not under platform:retired: it keeps running on the "
            f"host unmanaged; list it under platform:retired.{kind}"
        )
    return found


# ---------------------------------------------------------------------------------------
# What a command runs: its scripts and rendered parameters
# ---------------------------------------------------------------------------------------


def script_signatures(*directories: Path) -> dict[str, str]:
    """Each script's first comment line (up to any single quote) -> its file name.

    The command line carries the script shell-quoted, so a quote would not match as written
    (``make bench`` names the scripts of each run with these too).
    """
    found: dict[str, str] = {}
    for directory in directories:
        for script in sorted(directory.glob("*.sh")):
            lines = script.read_text().splitlines()
            if len(lines) > 1 and lines[1].split("'")[0].strip():
                found.setdefault(lines[1].split("'")[0], script.name)
    return found


def scripts_in(command: str, signatures: Mapping[str, str]) -> list[str]:
    return sorted({name for signature, name in signatures.items() if signature in command})


def step_parameters(run: StackRun) -> dict[tuple[str, str], dict[str, str]]:
    """The step parameters of each record (components.provisioning.StepRecord), by (parent URN, record name)."""
    found = {}
    for record in run.of_type(STEP):
        parameters = unwrap(record.inputs.get("parameters"))
        if isinstance(parameters, Mapping):
            found[(record.parent, record.name)] = {str(k): str(v) for k, v in parameters.items()}
    return found


def _key(command: Registration) -> tuple[str, str]:
    """Where the command's step record is: same parent, ``step_record_name``."""
    return (command.parent, step_record_name(command.name))


def changed_parameters(old: str | None, new: str | None) -> list[str]:
    """Names (never values) of the parameters whose rendered values differ, read from two command
    texts: for a revision deployed before steps had records."""
    if old is None or new is None:
        return []
    before, after = rendered_parameters(old), rendered_parameters(new)
    return _changed(before, after)


def _changed(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


# A revision deployed before step records holds its parameters only in the command text:
# components.provisioning.render's block under PARAMETERS_HEADER, each value as shlex.quote wrote it.
_RENDERED = re.compile(r"([A-Z][A-Z0-9_]*)=((?:'[^']*'|\"'\"|[A-Za-z0-9@%+=:,./_-])*)(?:\n|$)")
_QUOTED_PART = re.compile(r"'([^']*)'|\"(')\"|([^'\"]+)")


def rendered_parameters(text: str) -> dict[str, str]:
    """The ``NAME=value`` block of a rendered command, values unquoted ({} without one)."""
    script = command_script(text)
    at = script.find(PARAMETERS_HEADER)
    if at < 0:
        return {}
    position = script.find("\n", at) + 1 if "\n" in script[at:] else len(script)
    params: dict[str, str] = {}
    while (found := _RENDERED.match(script, position)) is not None and found.end() > position:
        value = "".join(a or b or c for a, b, c in _QUOTED_PART.findall(found.group(2)))
        params.setdefault(found.group(1), value)
        position = found.end()
    return params


def summary(step: Step, signatures: Mapping[str, str]) -> list[str]:
    """One line per run: order, phase, the scripts it contains, the parameters that changed."""
    lines = []
    for run in step.runs:
        names = " + ".join(scripts_in(run.command, signatures)) or ("[secret]" if run.command == "[secret]" else "?")
        line = f"#{run.order} {run.phase}: {names}"
        if run.phase in ("update", "create-replacement") and step.old is not None and step.new is not None:
            before, after = _plain(step.old, run.phase), _plain(step.new, run.phase)
            recorded_before, recorded_after = step.parameters
            if recorded_before is not None and recorded_after is not None:
                changed = _changed(recorded_before, recorded_after)
            else:
                changed = changed_parameters(before, after)
            if changed:
                line += f" (changed: {', '.join(changed)})"
            elif before != after:
                line += " (same parameters, script changed)"
        lines.append(line)
    return lines


def _plain(resource: Registration, phase: str) -> str | None:
    """The unmasked text a phase runs, to compare parameters (only their names are ever shown)."""
    key = "update" if phase == "update" and resource.inputs.get("update") else "create"
    value = unwrap(resource.inputs.get(key))
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------


def as_json(diff: Diff) -> dict[str, Any]:
    return {
        "stack": diff.stack,
        "from": diff.source,
        "steps": [
            {
                "name": s.name,
                "type": s.type,
                "op": s.op,
                "runs": [{"phase": r.phase, "command": r.command, "order": r.order} for r in s.runs],
                "notes": list(s.notes),
            }
            for s in diff.steps
        ],
        "hazards": list(diff.hazards),
        "notes": list(diff.notes),
    }


_STYLE = {"same": "dim", "create": "green", "update": "yellow", "replace": "magenta", "delete": "red", "retire": "cyan"}


def print_text(diff: Diff, console: Console) -> None:
    """The changes as a table (``same`` only counted: ``--format json`` lists every step), then the hazards."""
    console.rule(f"[bold]stack {diff.stack}[/] from {escape(diff.source)}: what `pulumi up` would do")
    for note in diff.notes:
        console.print(escape(note))
    counts = {op: sum(s.op == op for s in diff.steps) for op in OPS}
    console.print(", ".join(f"{n} {op}" for op, n in counts.items() if n) or "no resources")
    if changes := diff.changes():
        table = Table(title_justify="left")
        for column in ("op", "type", "name", "runs on the host", "notes"):
            table.add_column(column, no_wrap=column in ("op", "type", "name"))
        for step in changes:
            table.add_row(
                f"[{_STYLE[step.op]}]{step.op}[/]",
                escape(step.type),
                escape(step.name),
                escape("\n".join(summary(step, diff.scripts))),
                escape("; ".join(step.notes)),
            )
        print_table(console, table)
    if diff.hazards:
        console.print(f"[bold red]{len(diff.hazards)} hazard(s):[/]")
        for hazard in diff.hazards:
            console.print(f"  [red]![/] {escape(hazard)}")
    else:
        console.print("[green]no hazards[/]")


def markdown(diffs: Iterable[Diff]) -> str:
    """A compact pull-request comment section: the changes, what each runs, the hazards."""
    out = []
    for diff in diffs:
        changes = diff.changes()
        components = [s for s in changes if s.op == "update" and s.new is not None and not s.new.custom]
        rows = [s for s in changes if s not in components]
        verdict = f"{len(diff.hazards)} hazard(s)" if diff.hazards else "no hazards"
        out.append(f"### `{diff.stack}`: what `pulumi up` would do, from `{diff.source}` ({verdict})\n")
        out += [f"_{note}_\n" for note in diff.notes]
        if rows:
            out.append("| op | resource | runs on the host |")
            out.append("|---|---|---|")
            for step in rows:
                runs = "<br>".join(cell(line) for line in summary(step, diff.scripts)) or "-"
                out.append(f"| {step.op} | `{step.name}` ({cell(step.type)}) | {runs} |")
            out.append("")
        if components:
            names = ", ".join(f"`{s.name}`" for s in components)
            out.append(f"Components whose props changed (nothing runs): {names}\n")
        if not changes:
            out.append("No changes.\n")
        out += [f"- :warning: {cell(h)}" for h in diff.hazards]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
