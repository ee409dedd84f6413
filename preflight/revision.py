"""The stack as a git revision left it: that revision's code and stack file, under today's recorder.

The state a merge updates was produced by the base revision's program, not today's. So the
revision is extracted (``git archive REV | tar -x``) into a temporary tree and its program is
evaluated in a subprocess (``python -P``, cwd the tree, the tree first on ``sys.path``), so that
``import program`` / ``plan`` / ``components`` find the revision's modules. The recorder is the
current one: ``preflight/engine.py`` and ``preflight/stackfile.py`` are loaded by file path
under private module names, so both sides are recorded the same way. The child writes the
registrations as JSON; the parent rebuilds them as ``Registration``s.

Run as a script, this module is that child (``python -P revision.py STACK OUT``). Its top level
imports nothing from ``preflight``: in the child, that name is the revision's own package.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from preflight.engine import StackRun

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 600


class RevisionError(Exception):
    """A revision that cannot be read or evaluated: one line for the user."""


@contextmanager
def checkout(root: Path, revision: str, project: str) -> Iterator[Path]:
    """The project folder of ``revision`` of the git repository holding ``root``, extracted."""
    try:
        inside = _git(root, "rev-parse", "--show-prefix")
    except FileNotFoundError:
        raise RevisionError("no such file, and git is not installed to read it as a revision") from None
    if inside.returncode != 0:
        raise RevisionError(f"no such file, and {root} is not inside a git repository to read it as a revision")
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if revision.startswith("-") or commit.returncode != 0:
        raise RevisionError("no such file or git revision")
    prefix = inside.stdout.strip()
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", commit.stdout.strip()],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise RevisionError(f"git archive failed: {_last_line(archive.stderr.decode())}")
    with tempfile.TemporaryDirectory(prefix="preflight-from-") as temp:
        untar = subprocess.run(["tar", "-x", "-C", temp], input=archive.stdout, capture_output=True, check=False)
        if untar.returncode != 0:
            raise RevisionError(f"tar -x failed: {_last_line(untar.stderr.decode())}")
        tree = Path(temp) / prefix
        _check_project(tree, revision, project, prefix)
        yield tree


def evaluate(tree: Path, stack: str, revision: str, root: Path | None = None) -> tuple[StackRun, tuple[str, ...]]:
    """The revision's registrations for ``stack`` and notes; no stack file there: empty state.

    ``root``: today's project folder, where a release the revision uploaded may still lie (``_uploads``).
    """
    from preflight.engine import Registration, StackRun

    project = yaml.safe_load((tree / "Pulumi.yaml").read_text())["name"]
    if not (tree / f"Pulumi.{stack}.yaml").exists():
        note = f"{revision} has no Pulumi.{stack}.yaml: the old state is empty, every resource is a create"
        return StackRun(project, stack, [], {}), (note,)
    out = tree / f".preflight-registrations-{stack}.json"
    out.unlink(missing_ok=True)
    try:
        child = subprocess.run(
            [sys.executable, "-P", str(Path(__file__).resolve()), stack, str(out), str(root or tree)],
            cwd=tree,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RevisionError(f"evaluating its program for stack {stack} took over {TIMEOUT_S} s") from None
    document: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"error": _last_line(child.stderr)}
    if "error" in document:
        raise RevisionError(f"its program fails for stack {stack}: {document['error']}")
    known = {f.name for f in dataclasses.fields(Registration)}
    resources = [Registration(**{k: v for k, v in r.items() if k in known}) for r in document["resources"]]
    return StackRun(project, stack, resources, document["outputs"]), ()


def _check_project(tree: Path, revision: str, project: str, prefix: str) -> None:
    where = f"{prefix.rstrip('/')}/Pulumi.yaml" if prefix else "Pulumi.yaml"
    try:
        name = yaml.safe_load((tree / "Pulumi.yaml").read_text())["name"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise RevisionError(f"revision {revision} has no readable {where}: not a revision of this project") from None
    if name != project:
        raise RevisionError(f"revision {revision} is project {name!r} ({where}), not {project!r}")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# ---------------------------------------------------------------------------------------
# The child: runs with the revision's tree as cwd
# ---------------------------------------------------------------------------------------


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _uploads(plan: Any, tree: Path, root: Path) -> None:
    """The releases the revision's plan uploads, in its tree: git holds no build, so each is taken
    from today's folder at the same path (an unchanged release: the same content, the same digest),
    or, when that is gone too, a labelled stand-in (the file the old deploy sent is not on this
    machine; a changed release differs from it anyway)."""
    for service in getattr(plan, "services", ()):
        upload = getattr(getattr(service, "release", None), "upload", None)
        if not upload or Path(upload).is_absolute() or ".." in Path(upload).parts:
            continue
        target, current = tree / upload, root / upload
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if current.is_dir():
            shutil.copytree(current, target, symlinks=True)
        elif current.is_file():
            shutil.copyfile(current, target)
        else:
            target.write_text(f"stand-in: {upload} as an earlier revision uploaded it is not on this machine\n")


@contextmanager
def _our_facts() -> Iterator[None]:
    """Today's ``policies.facts`` while today's recorder loads (it reads its type tokens there), then
    out of the way: the revision's own program imports its own facts, or has none."""
    holder = ModuleType("policies")
    holder.__path__ = []  # a package with nothing else in it
    sys.modules["policies"] = holder
    try:
        _load("policies.facts", HERE.parent / "policies" / "facts.py")
        yield
    finally:
        sys.modules.pop("policies.facts", None)
        sys.modules.pop("policies", None)


def _references(
    engine: ModuleType, stackfile: ModuleType, plan: ModuleType, tree: Path, loaded: Any, seen: tuple[str, ...]
) -> dict[str, Any] | None:
    """What the revision's StackReference reads: the stack it names (its databaseStack), evaluated from
    the revision's own file and program first, as ``preflight.references`` does for today's."""
    source = getattr(loaded, "source_stack", None)
    name = str(source).rsplit("/", 1)[-1] if source else None
    if name is None or name in seen or not (tree / f"Pulumi.{name}.yaml").exists():
        return None
    config = stackfile.read_stack(tree, name)
    referenced = plan.load_plan(config.config, config.secret_keys)
    config = stackfile.with_plan_secrets(config, referenced)
    nested = _references(engine, stackfile, plan, tree, referenced, (*seen, name))
    run = engine.run_stack(config.project, name, config.config, set(config.secret_keys), references=nested)
    return {str(source): run.as_reference()}


def _child(stack: str, out: Path, root: Path) -> int:
    tree = Path.cwd()
    sys.path.insert(0, str(tree))  # the revision's program, plan and components
    document: dict[str, Any]
    try:
        with _our_facts():  # the recorder's (and, before plan_values.py existed, the reader's) own facts
            if not (tree / "plan_values.py").exists():  # a revision from before plan_values.py: the reader needs ours
                _load("plan_values", HERE.parent / "plan_values.py")
            engine = _load("_preflight_engine", HERE / "engine.py")
        stackfile = _load("_preflight_stackfile", HERE / "stackfile.py")
        import plan  # the revision's plan, first on sys.path: with the revision's own facts, if it has them

        config = stackfile.read_stack(tree, stack)
        loaded = plan.load_plan(config.config, config.secret_keys)
        _uploads(loaded, tree, root)
        config = stackfile.with_plan_secrets(config, loaded)
        references = _references(engine, stackfile, plan, tree, loaded, (stack,))
        run = engine.run_stack(config.project, stack, config.config, set(config.secret_keys), references=references)
        document = {"resources": [dataclasses.asdict(r) for r in run.resources], "outputs": run.outputs}
    except Exception as error:  # whatever the revision's program raises is one line for the parent
        lines = str(error).strip().splitlines()
        document = {"error": lines[0] if lines else type(error).__name__}
    out.write_text(json.dumps(document))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
