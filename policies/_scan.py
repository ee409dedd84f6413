"""Reading shell text (command lines, user data) for secrets and for data removal.

These are heuristics over text, kept deliberately simple and documented: a finding names what
was seen and where, never the value (CrossGuard hands validators secrets in plain text).
"""

from __future__ import annotations

import functools
import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from .facts import system_directory


def _read_once(function: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """``function`` computed once per text in a process: every policy asks of the same few dozen
    command texts. Each caller gets its own list."""
    cached = functools.lru_cache(maxsize=4096)(lambda text: tuple(function(text)))

    @functools.wraps(function)
    def read(text: str) -> list[str]:
        return list(cached(text))

    return read


# NAME=literal where NAME ends in a secret-ish word: MYSQL_ROOT_PASSWORD=..., api_key: ...
_SECRET_WORDS = "PASSWORD|PASSWD|PASS|PWD|SECRET|TOKEN|APIKEY|API_KEY|ACCESS_KEY|SECRET_KEY|SECRET_ID"  # noqa: S105 - names to look for
_SECRET_NAME = rf"(?:[A-Za-z0-9]+_)*(?:{_SECRET_WORDS})"
_ASSIGNED = re.compile(rf"(?i)\b({_SECRET_NAME})\b[ \t]*[=:][ \t]*(['\"]?)([^\s'\"]+)")
# A Podman secret reference (Quadlet Secret=, podman --secret): a secret's name and where it goes.
_SECRET_REFERENCE = re.compile(r"[\w.-]+(?:,(?:type|target|mode|uid|gid)=[^,\s]*)+")
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a private key block", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    (
        "a password option (--password / --requirepass)",
        re.compile(r"--(?:password|requirepass|pass)[= ]+(?!['\"]?\$)\S+"),
    ),
    ("a mysql -p<password> argument", re.compile(r"\bmysql(?:admin|dump)?\b[^\n]*\s-p(?!\s|\$|['\"]\$)\S+")),
    ("a redis-cli -a <password> argument", re.compile(r"\bredis-cli\b[^\n]*\s-a\s+(?!['\"]?\$)\S+")),
    ("an sshpass -p <password> argument", re.compile(r"\bsshpass\b[^\n]*\s-p\s*(?!['\"]?\$)\S+")),
    ("credentials in a URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@$]+:[^\s@/$]+@")),
    ("an Alibaba Cloud AccessKey id", re.compile(r"\bLTAI[0-9A-Za-z]{12,30}\b")),
    ("a Tencent Cloud SecretId", re.compile(r"\bAKID[0-9A-Za-z]{13,40}\b")),
    ("an AWS access key id", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
)


@_read_once
def secret_literals(text: str) -> list[str]:
    """What in ``text`` looks like a password or key written in it, one finding per kind.

    Every pattern stays within a line, so each distinct line is read once (scripts repeat across
    commands): the literals in text order, then the kinds in ``_PATTERNS`` order."""
    assigned: list[str] = []
    kinds: set[str] = set()
    for line in text.split("\n"):
        in_line, kinds_in_line = _line_secrets(line)
        assigned += in_line
        kinds |= kinds_in_line
    return list(dict.fromkeys([*assigned, *(label for label, _ in _PATTERNS if label in kinds)]))


@functools.lru_cache(maxsize=1 << 16)
def _line_secrets(line: str) -> tuple[tuple[str, ...], frozenset[str]]:
    assigned = []
    for match in _ASSIGNED.finditer(line):
        value = match.group(3)
        # A reference ($VAR, ${VAR}, $(cmd)), a path or a placeholder is not a literal secret.
        if value.startswith(("$", "/", "<", "{{")) or len(value) < 4 or _SECRET_REFERENCE.fullmatch(value):
            continue
        assigned.append(f"a literal assigned to {match.group(1)}")
    return tuple(assigned), frozenset(label for label, pattern in _PATTERNS if pattern.search(line))


# ---------------------------------------------------------------------------------------
# Removing database data
# ---------------------------------------------------------------------------------------

_VOLUME_REMOVAL = re.compile(
    r"\b(?:podman|docker)\s+(?:volume\s+(?:rm|remove|prune)\b|system\s+(?:reset|prune)\b[^\n]*--volumes"
    r"|(?:container\s+)?rm\b[^\n]*\s(?:-v|--volumes|-[a-z]*v[a-z]*)\b)"
)
_DATA_REFERENCE = re.compile(
    r"\$\{?DATA_(?:DIR|ROOT)\b|/var/lib/(?:mysql|postgresql|redis|neo4j|elasticsearch|weaviate)\b"
    r"|/var/lib/(?:containers/storage|docker)/volumes\b"
)
_DESTRUCTIVE = re.compile(r"(?:^|[\s;&|(])(?:rm|rmdir|shred|wipefs|mkfs(?:\.\w+)?|truncate)\s|\+=\(|-delete\b")
_PURGE_PARAM = re.compile(r"^PURGE=['\"]?([01])['\"]?$", re.MULTILINE)
_IF, _FI = re.compile(r"(?:^|[;\s])if\s"), re.compile(r"(?:^|[;\s])fi\b")


@_read_once
def data_removals(text: str) -> list[str]:
    """Lines of ``text`` that can delete a database's data without the plan's ``purge: true``.

    A rendered script says ``PURGE=1`` when its database is purged; otherwise every line that
    removes (or queues for removal) a data directory must sit under a test of ``$PURGE``.
    """
    purge = _PURGE_PARAM.search(text)
    if purge is not None and purge.group(1) == "1":
        return []
    found: list[str] = []
    guards: list[bool] = []  # one entry per open if-block: does its condition test PURGE?
    for number, line in enumerate(text.splitlines(), start=1):
        code, opened, closed, removal = _line_removal(line)
        guarded = any(guards) or "PURGE" in code
        if removal and not guarded:
            found.append(f"line {number}: {removal}: {code.strip()[:80]}")
        guards += ["PURGE" in code] * opened
        for _ in range(closed):
            if guards:
                guards.pop()
    return found


@functools.lru_cache(maxsize=1 << 16)
def _line_removal(line: str) -> tuple[str, int, int, str]:
    """A line's code (comment cut), the if-blocks it opens and closes, and what data it removes ('')."""
    code = line.split("#", 1)[0] if not line.lstrip().startswith("#!") else ""
    removal = ""
    if _VOLUME_REMOVAL.search(code):
        removal = "removes container volumes"
    elif _DATA_REFERENCE.search(code) and _DESTRUCTIVE.search(code):
        removal = "removes a data directory"
    return code, len(_IF.findall(code)), len(_FI.findall(code)), removal


# ---------------------------------------------------------------------------------------
# Where a removal lands
# ---------------------------------------------------------------------------------------

_GLOB = re.compile(r"[*?\[]")
# components/provisioning.render writes this line above the ``NAME=<shell-quoted value>`` block.
_PARAMS_HEADER = "# parameters rendered from the plan"
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")
_RM = re.compile(r"(?:^|[;&|({]|\b(?:then|do|else|exec|command|xargs)\s|\bsudo(?:\s+-\w+)*\s)\s*rm\s+([^;&|)\n]*)")
_ARRAY = re.compile(r"(?:^|[\s;&|(])([A-Za-z_]\w*)(\+?)=\(([^)]*)\)")
_FOR_ARRAY = re.compile(r"\bfor\s+([A-Za-z_]\w*)\s+in\s+\"?\$\{([A-Za-z_]\w*)\[[@*]\]\}")
# A ' inside the single-quoted script of ``bash -c '...'`` (how shlex.quote writes it).
_QUOTE_IN_QUOTES = "'\"'\"'"


# How components.provisioning.as_command wraps a script: ``[sudo -n ]bash -c <quoted> <label>``,
# the script quoted by shlex.quote (one single-quoted word, a ' inside it written '"'"').
_WRAPPED = re.compile(r"^(?:sudo -n )?bash -c '(.*)' ([A-Za-z0-9@%+=:,./_-]+)$", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def command_script(text: str) -> str:
    """The script a command runs: the argument of ``bash -c`` when the command wraps one (as
    components.provisioning.as_command does), else the text itself.

    A command in as_command's own shape is unwrapped by undoing shlex.quote, checked by quoting the
    result again; any other shape is split as the shell would (shlex), which is slower. Each text is
    read once per process however many policies ask."""
    wrapped = _WRAPPED.match(text)
    if wrapped is not None:
        script = wrapped.group(1).replace(_QUOTE_IN_QUOTES, "'")
        if shlex.quote(script) == f"'{wrapped.group(1)}'":
            return script
    try:
        words = shlex.split(text)
    except ValueError:
        return text
    for index in range(1, len(words) - 1):
        if words[index] == "-c" and words[index - 1].rsplit("/", 1)[-1] == "bash":
            return words[index + 1]
    return text


# One rendered parameter, as components.provisioning.render writes it: NAME= and shlex.quote's
# output, a bare word of safe characters or single-quoted runs joined by "'" (a quote inside).
_RENDERED = re.compile(r"([A-Z][A-Z0-9_]*)=((?:'[^']*'|\"'\"|[A-Za-z0-9@%+=:,./_-])*)(?:\n|$)")


def rendered_parameters(text: str) -> dict[str, str]:
    """The ``NAME=value`` block a rendered script starts with, values unquoted ({} without one)."""
    return dict(_parameters(command_script(text)))


@functools.lru_cache(maxsize=1024)
def _parameters(script: str) -> tuple[tuple[str, str], ...]:
    at = script.find(_PARAMS_HEADER)
    if at < 0:
        return ()
    position = script.find("\n", at) + 1 if "\n" in script[at:] else len(script)
    params: dict[str, str] = {}
    while (found := _RENDERED.match(script, position)) is not None and found.end() > position:
        params.setdefault(found.group(1), _unquoted(found.group(2)))
        position = found.end()
    return tuple(params.items())


_QUOTED_PART = re.compile(r"'([^']*)'|\"(')\"|([^'\"]+)")


def _unquoted(word: str) -> str:
    """A word shlex.quote wrote (``_RENDERED`` matched it), as the shell reads it."""
    return "".join(a or b or c for a, b, c in _QUOTED_PART.findall(word))


@_read_once
def unsafe_removals(text: str) -> list[str]:
    """Removals in ``text`` that land on a system directory or can reach beyond their own.

    A removal's target is read where the rendered parameters say what it is: the ``DATA_DIR`` a
    purging command (``PURGE=1``) deletes, and every ``rm`` operand whose ``$NAME``s the
    parameter block defines, also through an array that a ``for`` loop hands to ``rm`` (as the
    retire scripts do). A removal under a test of ``$PURGE`` counts only when the command
    purges. A target is refused when it is or holds a system directory (facts.SYSTEM_DIRECTORIES,
    after ``..`` and repeated slashes are folded), has a ``..`` component or an empty one
    (``//``), a parameter value with a glob character, a glob over a system directory, or, as a
    whole parameter, is not an absolute path.
    """
    params = rendered_parameters(text)
    purge = params.get("PURGE")
    if purge is None:
        rendered = _PURGE_PARAM.search(text)
        purge = rendered.group(1) if rendered is not None else None
    # where, as written, resolved, the parameter values in it, whether it is one whole parameter
    targets: list[tuple[str, str, str, list[str], bool]] = []
    if purge == "1" and "DATA_DIR" in params:
        targets.append(("purges", "DATA_DIR", params["DATA_DIR"], [params["DATA_DIR"]], True))
    arrays: dict[str, list[str]] = {}
    loops: dict[str, str] = {}
    guards: list[bool] = []
    for number, line in enumerate(text.splitlines(), start=1):
        facts = _line_shell(line)
        if not (facts.loops or facts.arrays or facts.removed or facts.opened or facts.closed):
            continue  # nothing this reading tracks (most lines)
        live = purge != "0" or not (any(guards) or facts.purge)
        loops.update(facts.loops)
        for name, added, entries in facts.arrays if live else ():
            arrays[name] = [*arrays.get(name, []), *entries] if added else list(entries)
        for word in facts.removed if live else ():
            loop = _REFERENCE.fullmatch(word)
            array = loops.get(loop.group(1) or loop.group(2)) if loop else None
            for written in arrays.get(array, []) if array else [word]:
                resolved = _resolve(written, params)
                if resolved is not None:
                    whole = _REFERENCE.fullmatch(written) is not None
                    targets.append((f"line {number}: removes", written, *resolved, whole))
        guards += [facts.purge] * facts.opened
        for _ in range(facts.closed):
            if guards:
                guards.pop()
    found: list[str] = []
    seen: set[str] = set()
    for where, written, path, values, whole in targets:
        reason = _unsafe(path, values, whole)
        if path in seen or not reason:
            continue
        seen.add(path)
        shown = path if not secret_literals(path) else "(withheld: it looks like it holds a secret)"
        found.append(
            f"{where} {written} = {shown}, which {reason}" if written != path else f"{where} {shown}, which {reason}"
        )
    return found


@dataclass(frozen=True)
class _ShellLine:
    """What ``unsafe_removals`` reads of one line."""

    purge: bool
    opened: int
    closed: int
    loops: tuple[tuple[str, str], ...]
    arrays: tuple[tuple[str, bool, tuple[str, ...]], ...]
    removed: tuple[str, ...]


@functools.lru_cache(maxsize=1 << 16)
def _line_shell(line: str) -> _ShellLine:
    code = _COMMENT.sub("", line.replace(_QUOTE_IN_QUOTES, "'"))
    return _ShellLine(
        purge="PURGE" in code,
        opened=len(_IF.findall(code)),
        closed=len(_FI.findall(code)),
        loops=tuple((m.group(1), m.group(2)) for m in _FOR_ARRAY.finditer(code)),
        arrays=tuple((m.group(1), bool(m.group(2)), tuple(_words(m.group(3)))) for m in _ARRAY.finditer(code)),
        removed=tuple(word for m in _RM.finditer(code) for word in _operands(m.group(1))),
    )


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return []


def _operands(arguments: str) -> list[str]:
    """The paths an ``rm`` is given (options and redirections left out)."""
    operands: list[str] = []
    options = True
    for word in _words(arguments):
        if word.startswith((">", "<", "2>", "&>")):
            continue
        if options and word == "--":
            options = False
        elif not (options and word.startswith("-")):
            operands.append(word)
    return operands


def _resolve(word: str, params: dict[str, str]) -> tuple[str, list[str]] | None:
    """``word`` with its ``$NAME``s replaced from the parameters, and their values; None when one is not a parameter."""
    names = [a or b for a, b in _REFERENCE.findall(word)]
    if any(name not in params for name in names) or "$" in _REFERENCE.sub("", word):
        return None
    return _REFERENCE.sub(lambda m: params[m.group(1) or m.group(2)], word), [params[name] for name in names]


def _unsafe(path: str, values: list[str], whole: bool) -> str:
    """Why removing ``path`` is refused ('' when it is not)."""
    if path.startswith("/"):
        static = _GLOB.split(path, maxsplit=1)[0]
        folded = posixpath.normpath(re.sub(r"/+", "/", static))
        if static != path:  # a glob: it reaches every entry of the directory it starts in
            folded = folded if static.endswith("/") else posixpath.dirname(folded)
        system = _system_directory(folded)
        if system:
            return f"{'is a glob over' if static != path else 'is'} {system}"
    if ".." in path.split("/"):
        return "has a '..' component: it can climb out of the directory it names"
    if "//" in path:
        return "has an empty component ('//'): a parameter is empty or '/'"
    if any(_GLOB.search(value) for value in values):
        return "has a glob character in a parameter: it can match more than the one directory"
    if whole and path and not path.startswith("/"):
        return "is not an absolute path"
    return ""


def _system_directory(path: str) -> str:
    """'the root directory', 'the system directory X', 'a directory holding the system directory X' or ''."""
    if path == "/":
        return "the root directory"
    found = system_directory(path)
    if found is None:
        return ""
    return f"the system directory {path}" if found == path else f"a directory holding the system directory {found}"


# ---------------------------------------------------------------------------------------
# Stopping or removing a workload
# ---------------------------------------------------------------------------------------

# Where a shell command word can stand: the start of a line, after a separator or an opening
# quote/bracket, after a keyword that runs a command, or after a wrapper that runs its argument.
_AT_COMMAND = (
    r"(?:^|[;&|(`{!'\"]|\$\(|\b(?:if|elif|while|until|then|do|else|exec|command|nohup|xargs)\s"
    r"|\bsudo(?:\s+-\w+)*\s|\btimeout\s+\S+\s)\s*"
    r"(?:[A-Za-z_]\w*=\S*\s+)*"  # NAME=value words before the command
)
_OPTIONS = r"(?:\s+-{1,2}[\w-]+(?:=\S+)?)*"  # e.g. systemctl --quiet, podman --log-level=debug
_STOPS_WORKLOAD = re.compile(
    _AT_COMMAND
    + r"(?:"
    + rf"systemctl{_OPTIONS}\s+(?:stop|disable|mask|kill)\b"  # a systemd unit stopped or kept from starting
    + r"|service\s+\S+\s+stop\b"
    + rf"|(?:podman|docker){_OPTIONS}\s+(?:(?:container|pod|secret|volume|network|image|system|compose)\s+)?"
    r"(?:rm|rmi|remove|stop|kill|prune|reset|down)\b"  # a container (or its secret, volume, ...) gone
    + r"|(?:rm|rmdir|unlink|shred|wipefs|mkfs(?:\.\w+)?|truncate)(?:\s|$)"  # any file removal: rm of anything
    + r"|find\b[^\n]*\s-delete\b"
    + r"|(?:kill|pkill|killall)(?:\s|$)"
    + r"|(?:userdel|groupdel)\b"
    + r"|(?:apt|apt-get|dnf|yum|zypper)\s+(?:\S+\s+)*?(?:remove|purge|erase|autoremove)\b"
    + r"|crontab\s+-r\b"
    + r"|dropdb\b"
    + r")"
    # SQL and Redis statements that drop data, wherever they appear (a heredoc, a -e argument).
    + r"|\b(?:DROP\s+(?:DATABASE|SCHEMA|TABLE|USER)|FLUSHALL|FLUSHDB)\b",
    re.MULTILINE,
)
_COMMENT = re.compile(r"(?:^|\s)#.*$")


@_read_once
def workload_stops(text: str) -> list[str]:
    """Lines of ``text`` that stop, disable or remove a workload or its data, as ``line N: code``.

    A heuristic over shell text, deliberately broad: ``systemctl stop|disable|mask|kill``,
    ``service X stop``, ``podman``/``docker`` ``rm|stop|kill|prune`` (of a container, secret,
    volume, ...), any ``rm``/``rmdir``/``shred``/``find -delete``, ``kill``/``pkill``,
    ``userdel``, a package removal, ``crontab -r``, and SQL/Redis ``DROP``/``FLUSHALL``, in a
    command position (so ``echo "stopped"`` is not one). Comments are skipped. A line that looks
    like it holds a secret is named by its number only.
    """
    return [
        f"line {number}: {shown}" for number, line in enumerate(text.splitlines(), start=1) if (shown := _stop(line))
    ]


@functools.lru_cache(maxsize=1 << 16)
def _stop(line: str) -> str:
    """A line's code when it stops a workload ('' when it does not)."""
    code = _COMMENT.sub("", line).strip()
    if not code or not _STOPS_WORKLOAD.search(code):
        return ""
    return "text withheld: it looks like it holds a secret" if secret_literals(code) else code[:80]
