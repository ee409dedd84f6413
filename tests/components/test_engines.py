"""One package per engine kind (components/engines/<kind>/), its shell beside it, and the one table of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from components import engines, exporters
from components.clients import STEP_KINDS as CLIENT_STEP_KINDS
from plan import DatabaseKind
from policies.facts import ENGINE_PORTS, EXPORTER_OF_KIND, REPLICABLE_KINDS
from tests.stacks import plan_of

ENGINES = Path(engines.__file__).parent


def test_every_kind_has_its_module_and_every_module_its_kind():
    assert set(engines.KINDS) == set(DatabaseKind)
    assert {kind.value: module.__name__ for kind, module in engines.KINDS.items()} == {
        kind.value: f"components.engines.{kind.value}" for kind in DatabaseKind
    }
    modules = {p.parent.name for p in ENGINES.glob("*/__init__.py")}
    assert modules == {kind.value for kind in DatabaseKind} == set(ENGINE_PORTS)


def test_each_module_says_what_the_platform_asks_of_an_engine():
    for kind, module in engines.KINDS.items():
        assert callable(module.settings), kind
        assert isinstance(module.BACKUP_USER, str), kind
    replicating = {kind.value for kind, module in engines.KINDS.items() if hasattr(module, "replication_args")}
    assert replicating == set(REPLICABLE_KINDS)
    exported = {kind.value for kind, module in engines.KINDS.items() if hasattr(module, "exporter_arguments")}
    credentials = {kind.value for kind, module in engines.KINDS.items() if hasattr(module, "EXPORTER_CREDENTIAL")}
    assert exported == credentials == set(EXPORTER_OF_KIND)
    assert {
        EXPORTER_OF_KIND[kind.value]: module.EXPORTER_CREDENTIAL
        for kind, module in engines.KINDS.items()
        if kind.value in EXPORTER_OF_KIND
    } == exporters.CREDENTIAL


def test_no_per_kind_match_is_left_in_the_shared_modules():
    for module in (ENGINES / "__init__.py", ENGINES.parent / "exporters.py"):
        text = module.read_text()
        assert "match db.kind" not in text, module.name
        assert "match exporter" not in text, module.name
        assert "case DatabaseKind." not in text, module.name


def test_an_exporter_is_asked_of_its_own_engine_only():
    mysql = next(db for db in plan_of("alibaba").databases if db.kind == DatabaseKind.MYSQL)
    assert exporters.arguments("mysqld-exporter", mysql, tls_only=False) == (
        ["--config.my-cnf=%d/mysqld-exporter.cnf"],
        [],
    )
    with pytest.raises(ValueError, match="redis-exporter is not the exporter of production-mysql"):
        exporters.arguments("redis-exporter", mysql, tls_only=False)


def test_each_engine_has_its_shell_for_the_parts_it_takes_part_in():
    for kind in engines.KINDS:
        parts = {p.stem for p in (ENGINES / kind.value).glob("*.sh")}
        expected = {"backup"}
        if kind.value in REPLICABLE_KINDS:
            expected |= {"source", "replica"}
        if kind.value in EXPORTER_OF_KIND:
            expected.add("exporter")
        if kind in CLIENT_STEP_KINDS:  # Redis's clients are lines of its auth file
            expected.add("clients")
        assert parts == expected, kind
        for part in parts:
            text = (ENGINES / kind.value / f"{part}.sh").read_text()
            # The program calls <part>_<kind> (backup_<kind>, source_<kind>, ...): never a case on KIND.
            assert f"{part}_{kind.value}() {{" in text, (kind, part)
            assert 'case "${KIND}"' not in text


def test_no_script_dispatches_on_the_engine_kind_with_a_case():
    scripts = ENGINES.parent / "scripts"
    found = [p.name for p in [*scripts.glob("*.sh"), *scripts.glob("lib/*.sh")] if 'case "${KIND}"' in p.read_text()]
    assert found == []
