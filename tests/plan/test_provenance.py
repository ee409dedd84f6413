"""docs/PROVENANCE.md: every default figure, with the same value as the code and a source.

The expected figures are read from the code (the plan's defaults and constants, the engine
settings and Quadlet keys rendered for the default databases, the policies' defaults, the
committed stack files), so a changed, added or removed default fails here until its row in
the document says the same.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

import plan
from components.backups import DRILL_SCRATCH_MIN_MIB
from components.engines import POSTGRES_SUPERUSER, engine, quadlet_unit
from components.rules import ANYWHERE, firewall_rules
from plan import defaults, load, props, schema, validation
from plan import model as plan_model
from policies import facts
from policies._common import ISOLATED_DATABASE_PORTS
from policies.memory_budget import DEFAULT_HEADROOM_PERCENT, DEFAULT_OS_RESERVE_MIB
from policies.port_plan import DEFAULT_FAMILIES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "PROVENANCE.md"
SEEDS = ROOT.parent / "shared" / "seeds"
STACKS = ("alibaba", "tencent")

# Keys of a default workload that name or describe it rather than size or place it.
NOT_FIGURES = frozenset({"kind", "name", "description", "purpose", "expose", "family", "startCommand", "database"})
# Release sources are paths made from the name and the version (the version has its own row).
RELEASE_PATHS = frozenset({"artifact", "upload"})
# Quadlet keys that carry the plan's own figures (ports, memory, image) or commands, not settings.
QUADLET_PLAN_KEYS = frozenset(
    {"ContainerName", "Description", "Environment", "Exec", "HealthCmd", "Image", "PodmanArgs", "PublishPort", "Secret"}
)
# Not numbers, but facts of the seeds the document states as well.
NAMED_DEFAULTS = (("HostCommon", "sshUser"), ("Service", "healthPath"))

SEED_QUOTE = re.compile(r'(\d{3}) "([^"]+)"')
SECRET_LABEL = re.compile(r"(password|passwd|pwd|passphrase|密码|口令)\s*[:=：]\s*\S", re.IGNORECASE)
SECRET_WORDS = ("password", "passwd", "密码", "secret", "token", "key=")


# ---------------------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _unquoted(cell: str) -> str:
    assert len(cell) > 2, f"expected `...` in {cell!r}"
    assert cell.startswith("`"), f"expected `...` in {cell!r}"
    assert cell.endswith("`"), f"expected `...` in {cell!r}"
    return cell[1:-1]


def doc_rows() -> list[tuple[str, str, str, str]]:
    """(figure, value, source, reason) of every table row, in document order."""
    rows = []
    header = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = False
            continue
        cells = _cells(line)
        if cells[0] == "figure":
            assert cells == ["figure", "value", "source", "reason"], f"table header: {line}"
            header = True
            continue
        if set(line) <= set("|- "):
            continue
        assert header, f"a table row outside a figure/value/source/reason table: {line}"
        assert len(cells) == 4, f"expected 4 cells: {line}"
        figure, value, source, reason = cells
        rows.append((_unquoted(figure), _unquoted(value), source, reason))
    return rows


def documented() -> dict[str, str]:
    figures: dict[str, str] = {}
    for figure, value, _, _ in doc_rows():
        assert figure not in figures, f"{figure} has two rows"
        figures[figure] = value
    return figures


# ---------------------------------------------------------------------------------------
# The code
# ---------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value)
    return str(value)


def _is_figure(value: Any) -> bool:
    """An int, or a string holding a digit that is not a path."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and any(c.isdigit() for c in value) and not value.startswith("/")


def _workload_figures(section: str, entries: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, str]]:
    for entry in entries:
        yield from _entry_figures(f"{section} {entry['name']}", entry)


def _entry_figures(prefix: str, entry: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, str]]:
    for key, value in entry.items():
        if key in NOT_FIGURES or key in RELEASE_PATHS or isinstance(value, bool):
            continue
        where = f"{path}{key}"
        if key == "ports":
            for spec in value:
                assert spec.get("protocol", "tcp") == "tcp", f"{prefix} ports: a udp port needs its own row format"
            yield f"{prefix} ports", _shown([spec["port"] for spec in value])
        elif isinstance(value, Mapping):
            yield from _entry_figures(prefix, value, f"{where}.")
        else:
            yield f"{prefix} {where}", _shown(value)


# The plan package's modules that bind figures (plan/__init__.py only re-exports them).
PLAN_MODULES = (schema, defaults, validation, plan_model, props, load)


def _module_int_constants(module: Any) -> Iterator[tuple[str, str]]:
    """Upper-case names the module itself binds to an int (imports excluded)."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper():
                value = getattr(module, target.id)
                if isinstance(value, int) and not isinstance(value, bool):
                    yield target.id, str(value)


def _plan_models() -> Iterator[type[BaseModel]]:
    for value in vars(plan).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__.startswith("plan."):
            yield value


def _model_defaults() -> Iterator[tuple[str, str]]:
    """Defaults of the plan's models that are figures, named <Model>.<configKey> where declared."""
    for model in _plan_models():
        own = inspect.get_annotations(model)
        for name, info in model.model_fields.items():
            if name not in own or info.default is PydanticUndefined:
                continue
            key = info.alias or name
            if _is_figure(info.default) or (model.__name__, key) in NAMED_DEFAULTS:
                yield f"{model.__name__}.{key}", str(info.default)


def _settings(words: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """An engine's argv as settings: --key=value, --key value and postgres's -c key=value."""
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-c":
            key, _, value = words[index + 1].partition("=")
            yield key, value
            index += 2
        elif word.startswith("--") and "=" in word:
            key, _, value = word.partition("=")
            yield key, value
            index += 1
        elif word.startswith("--") and index + 1 < len(words) and not words[index + 1].startswith("--"):
            yield word, words[index + 1]
            index += 2
        else:  # a positional word: the program, its config file
            index += 1


def default_databases() -> list[plan.Database]:
    return [plan.Database.model_validate(entry) for entry in plan.DEFAULT_DATABASES]


def _engine_figures() -> Iterator[tuple[str, str]]:
    quadlet: dict[str, str] | None = None
    for db in default_databases():
        spec = engine(db)
        for key, value in (*_settings(spec.exec_args), *spec.environment.items()):
            if _is_figure(value):
                yield f"engines.py {db.name} {key}", value
        unit = dict(
            line.split("=", 1)
            for line in quadlet_unit(db, plan.Paths()).splitlines()
            if "=" in line and not line.startswith("#")
        )
        settings = {k: v for k, v in unit.items() if k not in QUADLET_PLAN_KEYS and _is_figure(v)}
        assert quadlet in (None, settings), f"{db.name}: its Quadlet settings differ from the others' ({settings})"
        quadlet = settings
    for key, value in (quadlet or {}).items():
        yield f"engines.py quadlet {key}", value


def stack_config(stack: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    return {
        key.removeprefix("platform:"): value for key, value in document["config"].items() if key.startswith("platform:")
    }


def stack_plan(stack: str) -> plan.Plan:
    return plan.Plan.model_validate(stack_config(stack))


def _stack_figures() -> Iterator[tuple[str, str]]:
    for stack in STACKS:
        for key, value in stack_config(stack)["host"].items():
            if isinstance(value, int) and not isinstance(value, bool):
                yield f"Pulumi.{stack}.yaml host.{key}", str(value)


def _budget_figures() -> Iterator[tuple[str, str]]:
    for stack in STACKS:
        host = stack_plan(stack)
        transient = sum(t["memoryMib"] for t in host.transient)
        free = host.free_mib
        if stack == "alibaba":
            yield "budget alibaba workloads", str(sum(db.memory_mib for db in host.databases))
            yield "budget alibaba transient", str(transient)
        else:
            yield "budget tencent services", str(sum(s.memory_mib for s in host.services))
            yield "budget tencent existing", str(sum(w.memory_mib for w in host.existing))
        yield f"budget {stack} monitoring", str(sum(w.memory_mib for w in host.monitoring_workloads))
        yield f"budget {stack} free", str(free)


def _egress_figures() -> Iterator[tuple[str, str]]:
    for rule in firewall_rules(stack_plan("alibaba").port_plan):
        if rule.direction == "egress" and rule.action == "accept" and rule.cidr == ANYWHERE:
            yield f"rules.py egress {rule.description}", f"{rule.port}/{rule.protocol}"


def expected() -> dict[str, str]:
    figures = [
        *_stack_figures(),
        *_model_defaults(),
        *(figure for module in PLAN_MODULES for figure in _module_int_constants(module)),
        *((f"facts {name}", value) for name, value in _module_int_constants(facts)),
        ("REPLICATION_USER", plan.REPLICATION_USER),
        ("DEFAULT_REPLICATED_POSTGRES_DATABASE", plan.DEFAULT_REPLICATED_POSTGRES_DATABASE),
        ("engines.py POSTGRES_SUPERUSER", POSTGRES_SUPERUSER),
        *((f"ENGINE_PORTS {kind.value}", _shown(ports)) for kind, ports in plan.ENGINE_PORTS.items()),
        *_workload_figures("DEFAULT_DATABASES", plan.DEFAULT_DATABASES),
        *_workload_figures("DEFAULT_SERVICES", plan.DEFAULT_SERVICES),
        *_workload_figures("DEFAULT_EXISTING", plan.DEFAULT_EXISTING),
        ("DEFAULT_BATCHES", "; ".join(", ".join(batch) for batch in plan.DEFAULT_BATCHES)),
        *_engine_figures(),
        *((f"DRILL_SCRATCH_MIN_MIB {kind.value}", str(mib)) for kind, mib in DRILL_SCRATCH_MIN_MIB.items()),
        *((f"MONITORING_PROGRAMS {name} port", str(port)) for name, (port, _) in plan.MONITORING_PROGRAMS.items()),
        *((f"MONITORING_PROGRAMS {name} memoryMib", str(mib)) for name, (_, mib) in plan.MONITORING_PROGRAMS.items()),
        ("memory_budget DEFAULT_OS_RESERVE_MIB", str(DEFAULT_OS_RESERVE_MIB)),
        ("memory_budget DEFAULT_HEADROOM_PERCENT", str(DEFAULT_HEADROOM_PERCENT)),
        *((f"port_plan family {name}", f"{r['first']}-{r['last']}") for name, r in DEFAULT_FAMILIES.items()),
        *(
            (f"_common ISOLATED_DATABASE_PORTS {group}", _shown(ports))
            for group, ports in ISOLATED_DATABASE_PORTS.items()
        ),
        *_egress_figures(),
        *_budget_figures(),
    ]
    result: dict[str, str] = {}
    for figure, value in figures:
        assert result.get(figure, value) == value, f"{figure} is derived twice, as {result[figure]} and {value}"
        result[figure] = value
    return result


# ---------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------


def test_every_default_figure_has_its_row_with_the_code_s_value():
    code, doc = expected(), documented()
    missing = sorted(f"{figure} = {value}" for figure, value in code.items() if figure not in doc)
    assert not missing, "figures in the code with no row in docs/PROVENANCE.md:\n" + "\n".join(missing)
    differ = sorted(f"{f}: code {code[f]!r}, document {doc[f]!r}" for f in code if doc[f] != code[f])
    assert not differ, "the document's value is not the code's:\n" + "\n".join(differ)


def test_every_row_is_still_a_figure_of_the_code():
    stale = sorted(set(documented()) - set(expected()))
    assert not stale, "rows for figures the code no longer has (remove or rename them):\n" + "\n".join(stale)


def test_every_row_names_its_source():
    for figure, _, source, reason in doc_rows():
        if source == "chosen here":
            assert reason, f"{figure}: a chosen figure needs its reason"
        else:
            assert source.startswith("seeds: "), f"{figure}: source is 'chosen here' or 'seeds: NNN \"...\"'"
            quotes = SEED_QUOTE.findall(source)
            assert quotes, f'{figure}: a seeds source quotes its fact: seeds: 000 "..."'
            assert SEED_QUOTE.sub("", source.removeprefix("seeds: ")).strip(" ;") == "", f"{figure}: {source}"


def test_seed_quotes_are_the_seeds_words():
    if not SEEDS.is_dir():
        pytest.skip(f"the planning documents are not at {SEEDS} (kept out of the repository: they hold passwords)")
    texts = {path.name[:3]: path.read_text(encoding="utf-8") for path in SEEDS.glob("[0-9][0-9][0-9]_*.txt")}
    for figure, _, source, _ in doc_rows():
        for number, quote in SEED_QUOTE.findall(source):
            assert number in texts, f"{figure}: no seed document {number}"
            assert quote in texts[number], f"{figure}: seed {number} does not say {quote!r}"


def test_the_document_quotes_no_credential():
    for number, line in enumerate(DOC.read_text(encoding="utf-8").splitlines(), start=1):
        # The line number only: a message must not repeat what may be a credential.
        assert not SECRET_LABEL.search(line), f"docs/PROVENANCE.md:{number}: a labelled credential"
    for figure, _, source, _ in doc_rows():
        for _, quote in SEED_QUOTE.findall(source):
            lowered = quote.lower()
            assert not any(word in lowered for word in SECRET_WORDS), f"{figure}: a quote names a credential"
