"""One definition per fact (policies/facts.py): the program, preflight, the tests and the pack read
each list and type token from there, and none writes one again."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import plan
import plan_values
from policies import data_protection, facts, memory_budget, public_database
from tests.stacks import ROOT

# The names a second definition would go by: none may be bound to a literal outside facts.py.
FACT_NAMES = frozenset(
    {
        "SYSTEM_DIRECTORIES",
        "ENGINE_PORTS",
        "MONITORING_PORTS",
        "EXPORTER_OF_KIND",
        "EXPORTER_PORTS",
        "PEER_EXPORTER_PORTS",
        "OS_RESERVE_MIB",
        "DEFAULT_OS_RESERVE_MIB",
        "WORLD_PREFIX",
        "WORLD_PREFIX_LENGTH",
        "REPLICABLE_KINDS",
        "DATA_PARAMETERS",
        "DATA_DIRECTORIES",
    }
)
TYPE_TOKENS = {
    value: name
    for name, value in vars(facts).items()
    if name.isupper() and isinstance(value, str) and value.count(":") >= 2 and " " not in value
}


def python_files() -> list[Path]:
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return [ROOT / name for name in tracked if name != "policies/facts.py" and (ROOT / name).exists()]


def _is_literal(node: ast.AST) -> bool:
    """A constant, or a tuple, list, set, dict or frozenset(...) built of constants only."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(_is_literal(e) or (isinstance(e, ast.Starred) and _is_literal(e.value)) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or _is_literal(k) for k in node.keys) and all(_is_literal(v) for v in node.values)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("frozenset", "tuple"):
        return all(_is_literal(a) for a in node.args)
    return False


def test_no_file_writes_a_type_token_again():
    found = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in TYPE_TOKENS:
                found.append(
                    f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r} is facts.{TYPE_TOKENS[node.value]}"
                )
    assert found == []


def test_no_file_defines_a_fact_a_second_time():
    found = []
    for path in python_files():
        for node in ast.parse(path.read_text(), str(path)).body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            value = getattr(node, "value", None)
            for target in targets:
                if (
                    isinstance(target, ast.Name)
                    and target.id in FACT_NAMES
                    and value is not None
                    and _is_literal(value)
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {target.id}")
    assert found == []


def test_the_plan_and_the_pack_apply_one_rule_for_system_directories_and_the_world():
    assert plan_values.system_directory is facts.system_directory
    assert data_protection.system_directory is facts.system_directory
    assert public_database.reaches_world is facts.reaches_world
    assert plan.reaches_world is facts.reaches_world
    assert plan.OS_RESERVE_MIB == memory_budget.DEFAULT_OS_RESERVE_MIB == facts.OS_RESERVE_MIB
    assert {kind.value: ports for kind, ports in plan.ENGINE_PORTS.items()} == facts.ENGINE_PORTS
    assert {name: port for name, (port, _) in plan.MONITORING_PROGRAMS.items()} == facts.MONITORING_PORTS


def test_a_path_the_pack_refuses_to_remove_the_plan_refuses_to_own():
    """The lists disagreed once (35 entries against 48): /var/lib/mysql passed one side."""
    for directory in sorted(facts.SYSTEM_DIRECTORIES - {"/"}):
        assert facts.system_directory(directory) == directory
        assert facts.system_directory(directory + "/platform") is None  # a directory of the platform's own
    assert facts.system_directory("/var/lib") == "/var/lib"
    assert facts.system_directory("/var") == "/var"
    assert facts.system_directory("/lib64") == "/lib64"


def test_the_pack_reads_step_parameters_from_records_not_from_shell_text():
    """No policy imports shlex: parameters come from each step's record (platform:provisioning:Step)."""
    importing = []
    for path in sorted((ROOT / "policies").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            importing += [f"{path.relative_to(ROOT)}:{node.lineno}" for name in names if name.split(".")[0] == "shlex"]
    assert importing == []


def test_the_rendered_parameter_header_is_written_once():
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in python_files()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and facts.PARAMETERS_HEADER in node.value
    ]
    assert found == []
