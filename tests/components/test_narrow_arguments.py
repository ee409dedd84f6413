"""Components take the sections and views they read (plan/views.py), never the whole plan: a
component's signature says what a change to the stack file can reach. Only the composition roots
may hold a ``Plan``: the program, and the two components that lay out a host's steps."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.stacks import ROOT

# The classes that lay out a host's steps from its plan (and their arguments).
COMPOSITION_ROOTS = frozenset({"Databases", "DatabasesArgs", "Services", "ServicesArgs"})


def names_plan(annotation: ast.expr | None) -> bool:
    return annotation is not None and any(
        isinstance(node, ast.Name) and node.id == "Plan" for node in ast.walk(annotation)
    )


def whole_plan_takers(source: str) -> list[str]:
    """``Class.function`` or ``function`` for each function with a ``Plan`` parameter, and
    ``Class.field`` for each field annotated ``Plan``, outside the composition roots."""
    found: list[str] = []

    def visit(node: ast.AST, owner: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, child.name)
            elif isinstance(child, ast.FunctionDef):
                arguments = [*child.args.posonlyargs, *child.args.args, *child.args.kwonlyargs]
                if owner not in COMPOSITION_ROOTS and any(names_plan(a.annotation) for a in arguments):
                    found.append(f"{owner}.{child.name}" if owner else child.name)
                visit(child, owner)
            elif (
                isinstance(child, ast.AnnAssign)
                and owner not in COMPOSITION_ROOTS
                and names_plan(child.annotation)
                and isinstance(child.target, ast.Name)
            ):
                found.append(f"{owner}.{child.target.id}" if owner else child.target.id)

    visit(ast.parse(source), None)
    return found


def test_no_component_takes_the_whole_plan():
    takers = {
        str(path.relative_to(ROOT)): names
        for path in sorted((ROOT / "components").rglob("*.py"))
        if (names := whole_plan_takers(path.read_text(encoding="utf-8")))
    }
    assert takers == {}, "take the sections or a view (plan/views.py) instead of Plan"


def test_the_check_finds_a_function_field_or_method_that_takes_the_plan():
    source = (
        "def helper(name: str, plan: Plan) -> str: ...\n"
        "def narrow(paths: Paths) -> str: ...\n"
        "class FooArgs:\n    plan: Plan\n"
        "class Foo:\n    def _step(self, plan: Plan | None = None) -> None: ...\n"
        "class Services:\n    def _replicas(self, plan: Plan) -> None: ...\n"
        "class ServicesArgs:\n    plan: Plan\n"
    )
    assert whole_plan_takers(source) == ["helper", "FooArgs.plan", "Foo._step"]


def test_the_roots_exist_where_the_check_exempts_them():
    """An exemption for a class that no longer exists would exempt its successor silently."""
    defined = {
        node.name
        for path in (ROOT / "components").glob("*.py")
        for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
    }
    assert defined >= COMPOSITION_ROOTS
