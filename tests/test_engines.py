"""One module per engine kind (components/engines/<kind>.py), and the one table of them."""

from __future__ import annotations

from pathlib import Path

from components import engines
from plan import DatabaseKind
from policies.facts import ENGINE_PORTS, REPLICABLE_KINDS

ENGINES = Path(engines.__file__).parent


def test_every_kind_has_its_module_and_every_module_its_kind():
    assert set(engines.KINDS) == set(DatabaseKind)
    assert {kind.value: module.__name__ for kind, module in engines.KINDS.items()} == {
        kind.value: f"components.engines.{kind.value}" for kind in DatabaseKind
    }
    modules = {p.stem for p in ENGINES.glob("*.py")} - {"__init__", "base"}
    assert modules == {kind.value for kind in DatabaseKind} == set(ENGINE_PORTS)


def test_each_module_says_what_the_platform_asks_of_an_engine():
    for kind, module in engines.KINDS.items():
        assert callable(module.settings), kind
        assert isinstance(module.CLIENT_USER, str), kind
        assert isinstance(module.BACKUP_USER, str), kind
    replicating = {kind.value for kind, module in engines.KINDS.items() if hasattr(module, "replication_args")}
    assert replicating == set(REPLICABLE_KINDS)


def test_no_per_kind_match_is_left_in_the_shared_module():
    text = (ENGINES / "__init__.py").read_text()
    assert "match db.kind" not in text
    assert "case DatabaseKind." not in text
