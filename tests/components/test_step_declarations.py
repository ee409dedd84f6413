"""Every script's header declares what it may stop and remove (``# Stops:``, ``# Removes:``), and the
script does no more than that.

The policy pack and ``preflight`` trust these declarations (they read them from each step's
record, components.provisioning.StepRecord, never from shell text), so this is the one place the
shell text is read for removals: every ``rm`` operand must be a declared path, or a local variable
whose every value is one (or a temporary file from ``mktemp``), and a removal declared ``if P``
must sit under a test of ``$P``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from components.provisioning import ENGINE_SCRIPTS, SCRIPTS, declaration, script_path
from policies.facts import step_parameters_in

ENGINE_HOOKS = sorted(f"engines/{p.relative_to(ENGINE_SCRIPTS).as_posix()}" for p in ENGINE_SCRIPTS.glob("*/*.sh"))
SCRIPT_FILES = sorted(p.relative_to(SCRIPTS).as_posix() for p in [*SCRIPTS.glob("*.sh"), *SCRIPTS.glob("lib/*.sh")])
# Programs a step installs on the host (timers run them later, with a configuration file, not
# rendered parameters), and the engines' functions in them: what they remove is their own
# working files and expired backups.
INSTALLED_PROGRAMS = (
    "backup_run.sh",
    "restore_drill.sh",
    "repl_health.sh",
    "lib/backup_common.sh",
    *(hook for hook in ENGINE_HOOKS if hook.endswith("/backup.sh")),
)
SCRIPT_FILES += ENGINE_HOOKS

_COMMENT = re.compile(r"(?:^|\s)#.*$")
_RM = re.compile(r"(?:^|[;&|({]|\b(?:then|do|else)\s)\s*rm\s+([^;&|)\n]*)")
_STOP = re.compile(
    r"\bsystemctl(?:\s+--?\w[\w-]*)*\s+(?:stop|disable|mask|kill)\b|\bpodman\s+(?:secret\s+)?(?:rm|stop|kill)\b"
    r"|\bpkill\b"
)
_PARAMETER = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)\}?")
_LOCAL = re.compile(r"^\$\{?([a-z_][a-z0-9_]*)(?:\[[@*]\])?(?::\?)?\}?")
# Local variables whose values come from a listing the script reads back (a `while read` over
# `find` output), with the guard that keeps them inside a declared directory.
FOLLOWED_BY_GUARD = {("svc_deploy.sh", "old"): "assert_under SERVICES_ROOT, below ${SERVICE_DIR}/releases"}


def _code(text: str) -> list[str]:
    return [_COMMENT.sub("", line) for line in text.splitlines()]


def _normal(word: str) -> str:
    """A word as a declaration writes it: quotes gone, ``$NAME`` as ``${NAME}``."""
    word = word.replace('"', "").replace("'", "")
    return re.sub(r"\$([A-Za-z_]\w*)", r"${\1}", word)


def _operands(arguments: str) -> list[str]:
    words = shlex.split(arguments.replace("$'", "'"))
    return [w for w in words if not w.startswith(("-", ">", "<", "2>", "&>"))]


def _covered(word: str, declared: tuple[tuple[str, str | None], ...]) -> tuple[str, str | None] | None:
    for path, when in declared:
        if word == path or (path.endswith("/*") and word.startswith(path[:-1])):
            return path, when
    return None


def _sources(code: list[str], name: str) -> list[str]:
    """Every value the script gives the local variable ``name`` (assignments, arrays, for-loops)."""
    found: list[str] = []
    for line in code:
        for match in re.finditer(rf"(?:^|[\s;(])(?:local\s+)?{name}\+?=(\([^)]*\)|\"[^\"]*\"|\$\([^)]*\)|\S*)", line):
            value = match.group(1)
            found += _words(value[1:-1]) if value.startswith("(") else [value]
        for match in re.finditer(rf"\bfor\s+{name}\s+in\s+([^;]*)", line):
            found += _words(match.group(1))
    return [_normal(word) for word in found]


def _words(text: str) -> list[str]:
    return re.findall(r"\"[^\"]*\"\S*|\S+", text)


def _local_ok(file: str, code: list[str], word: str, declared, seen: frozenset[str] = frozenset()) -> str | None:
    """Why the local operand ``word`` is not covered ('' when it is)."""
    local = _LOCAL.match(word)
    if local is None:
        return f"{word} is neither a declared path nor a local variable"
    name = local.group(1)
    if (file, name) in FOLLOWED_BY_GUARD or name in seen:
        return ""
    sources = _sources(code, name)
    if not sources:
        return f"{word}: no assignment of {name} found"
    for source in sources:
        if source in ("", '""') or source.startswith("$(mktemp"):
            continue
        if _covered(source, declared) is not None:
            continue
        reason = _local_ok(file, code, source, declared, seen | {name})
        if reason:
            return f"{word}: {name} can be {source}, which is not declared ({reason})"
    return ""


def _parameter_names(text: str) -> set[str]:
    header = []
    for line in text.splitlines()[1:]:
        if not line.startswith("#"):
            break
        header.append(line)
    block = " ".join(header)
    at = block.find("# Parameters")
    return set(re.findall(r"\b[A-Z][A-Z0-9_]*\b", block[at:])) if at >= 0 else set()


@pytest.mark.parametrize("file", [f for f in SCRIPT_FILES if f not in INSTALLED_PROGRAMS])
def test_every_removal_is_declared_in_the_header(file: str) -> None:
    text = script_path(file).read_text()
    code = _code(text)
    declared = declaration(file).removes
    problems = []
    opened: list[str] = []  # the conditions of the if-blocks around the current line
    for number, line in enumerate(code, start=1):
        if re.search(r"(?:^|[\s;])if\s", line) and not re.search(r"\bfi\b", line):
            opened.append(line)
        for match in _RM.finditer(line):
            for word in map(_normal, _operands(match.group(1))):
                if _PARAMETER.match(word):
                    covered = _covered(word, declared)
                    if covered is None:
                        problems.append(f"line {number}: rm {word} is not under # Removes:")
                    elif covered[1] is not None and covered[1] not in " ".join([line, *opened[-1:]]):
                        problems.append(f"line {number}: rm {word} is declared 'if {covered[1]}' but not under it")
                elif reason := _local_ok(file, code, word, declared):
                    problems.append(f"line {number}: rm {reason}")
        if re.search(r"(?:^|[\s;])fi\b", line) and opened:
            opened.pop()
    assert problems == []


@pytest.mark.parametrize("file", SCRIPT_FILES)
def test_a_script_declares_stops_exactly_when_it_stops_something(file: str) -> None:
    stops = [line.strip() for line in _code(script_path(file).read_text()) if _STOP.search(line)]
    if file in INSTALLED_PROGRAMS:
        assert declaration(file).stops == (), "an installed program declares nothing: no step runs it"
        return
    assert bool(declaration(file).stops) == bool(stops), stops


@pytest.mark.parametrize("file", [f for f in SCRIPT_FILES if declaration(f).removes or declaration(f).stops])
def test_declarations_name_the_scripts_own_parameters(file: str) -> None:
    text = script_path(file).read_text()
    named = _parameter_names(text)
    body = "\n".join(_code(text))
    for path, when in declaration(file).removes:
        # The pack fills in ${NAME} only (facts.expand_step_path): a bare $NAME would stay literal.
        bare = re.sub(r"\$\{[A-Z][A-Z0-9_]*\}", "", path)
        assert "$" not in bare, f"{path}: write each parameter as ${{NAME}}"
        for parameter in [*step_parameters_in(path), *([when] if when else [])]:
            assert parameter in named, f"{path}: {parameter} is not among the script's # Parameters"
            assert re.search(rf"\$\{{?{parameter}\b", body), f"{path}: the script never uses {parameter}"
    for stop in declaration(file).stops:
        for parameter in step_parameters_in(stop):
            assert parameter in named, f"{stop}: {parameter} is not among the script's # Parameters"


def test_the_declaration_grammar_reads_conditions_and_directories(tmp_path: Path, monkeypatch) -> None:
    import components.provisioning as provisioning

    (tmp_path / "x.sh").write_text(
        "#!/usr/bin/env bash\n# Does x.\n# Stops: ${NAME}.service, the Podman secret ${NAME}\n"
        "# Removes: ${A}, ${B}/*\n# Removes: ${DATA_DIR} if PURGE\nset -eu\n# Removes: ${NOT_HEADER}\n"
    )
    monkeypatch.setattr(provisioning, "SCRIPTS", tmp_path)
    provisioning.declaration.cache_clear()
    try:
        found = provisioning.declaration("x.sh")
    finally:
        provisioning.declaration.cache_clear()
    assert found.stops == ("${NAME}.service", "the Podman secret ${NAME}")
    assert found.removes == (("${A}", None), ("${B}/*", None), ("${DATA_DIR}", "PURGE"))
