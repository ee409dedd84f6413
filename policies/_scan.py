"""Reading shell text (command lines, user data) for secrets and for data removal.

These are heuristics over text, kept deliberately simple and documented: a finding names what
was seen and where, never the value (CrossGuard hands validators secrets in plain text).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from .facts import DATA_DIRECTORIES, DATA_PARAMETERS


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


# How components.provisioning.as_command wraps a script: ``[sudo -n ]bash -c '<script>' <label>``,
# shlex.quote having written each ' inside the script as '"'"'.
_WRAPPED = re.compile(r"^(?:sudo -n )?bash -c '(.*)'(?: [A-Za-z0-9@%+=:,./_-]+)?$", re.DOTALL)
_QUOTE_IN_QUOTES = "'\"'\"'"


@functools.lru_cache(maxsize=1024)
def command_script(text: str) -> str:
    """The script a command runs, for reading its statements: the argument of as_command's ``bash -c``
    with its quotes undone, else the text itself. Parameters are never read from it: a step's
    record holds them (policies._common.step_records)."""
    wrapped = _WRAPPED.match(text)
    return wrapped.group(1).replace(_QUOTE_IN_QUOTES, "'") if wrapped is not None else text


# ---------------------------------------------------------------------------------------
# Removing database data
# ---------------------------------------------------------------------------------------

_VOLUME_REMOVAL = re.compile(
    r"\b(?:podman|docker)\s+(?:volume\s+(?:rm|remove|prune)\b|system\s+(?:reset|prune)\b[^\n]*--volumes"
    r"|(?:container\s+)?rm\b[^\n]*\s(?:-v|--volumes|-[a-z]*v[a-z]*)\b)"
)
# A reference to a database's data: one of its parameters, or a directory that holds it (facts).
_DATA_REFERENCE = re.compile(
    rf"\$\{{?(?:{'|'.join(DATA_PARAMETERS)})\b|(?:{'|'.join(map(re.escape, DATA_DIRECTORIES))})\b"
)
_DESTRUCTIVE = re.compile(r"(?:^|[\s;&|(])(?:rm|rmdir|shred|wipefs|mkfs(?:\.\w+)?|truncate)\s|\+=\(|-delete\b")


@_read_once
def data_removals(text: str) -> list[str]:
    """Lines of ``text`` that remove a database volume or data directory, as ``line N: what: code``.

    Read only where shell text is all there is: a command's ``delete`` (the program's steps have
    none, and what they remove is declared in their records, components.provisioning.StepRecord).
    A delete never purges: ``platform:retired`` with ``purge: true`` removes data through a step.
    """
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        code, removal = _line_removal(line)
        if removal:
            found.append(f"line {number}: {removal}: {code.strip()[:80]}")
    return found


@functools.lru_cache(maxsize=1 << 16)
def _line_removal(line: str) -> tuple[str, str]:
    """A line's code (comment cut) and what data it removes ('')."""
    code = line.split("#", 1)[0] if not line.lstrip().startswith("#!") else ""
    removal = ""
    if _VOLUME_REMOVAL.search(code):
        removal = "removes container volumes"
    elif _DATA_REFERENCE.search(code) and _DESTRUCTIVE.search(code):
        removal = "removes a data directory"
    return code, removal


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
