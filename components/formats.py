"""One small renderer per configuration format a plan value lands in.

The plan already refuses control characters and specials in every value (plan_values.py);
these renderers are the second line: whatever reaches a unit file or a config file is escaped
for that format, or refused, never concatenated as it came. A newline is never escaped into
a file: a value that holds one cannot be written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Words systemd and Quadlet split and expand nothing in: no quotes, spaces, %, $ or backslash.
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_./:=,+@-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class FormatError(ValueError):
    """A value that cannot be written safely in the target format."""


def _no_control_characters(value: str, target: str) -> None:
    if bad := next((c for c in value if not c.isprintable()), None):
        raise FormatError(f"a {target} value cannot hold the control character U+{ord(bad):04X}")


# --- systemd unit files (and Quadlet .container files, which follow the same syntax) ----------


def unit_value(value: str) -> str:
    """A setting's whole value (``Description=``): one line, ``%`` specifiers disarmed."""
    _no_control_characters(value, "unit file")
    if value.endswith("\\"):
        raise FormatError("a unit file value cannot end in a backslash (it would continue the line)")
    return value.replace("%", "%%")


def unit_word(value: str, *, command: bool = False, quote: str = '"') -> str:
    """One word of a command line or of ``Environment=``: quoted (systemd takes ``"`` or ``'``),
    C-escaped.

    ``command``: the word is part of ``ExecStart=``/``Exec=``, where ``$`` expands variables.
    """
    if quote not in ("'", '"'):
        raise ValueError(f"systemd quotes with ' or \", not {quote!r}")
    _no_control_characters(value, "unit file")
    escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("%", "%%")
    if command:
        escaped = escaped.replace("$", "$$")
    return f"{quote}{escaped}{quote}"


def unit_words(words: Iterable[str], *, command: bool = False) -> str:
    """Words of a command line: a plain word as it is, any other quoted and escaped."""
    return " ".join(w if _PLAIN_WORD.match(w) else unit_word(w, command=command) for w in words)


def unit_assignment(key: str, value: str) -> str:
    """``KEY=value`` for ``Environment=``: as it is when plain, else quoted as one word."""
    if not _ENV_NAME.match(key):
        raise FormatError(f"{key!r} is not an environment variable name")
    return unit_words([f"{key}={value}"])


# --- Redis configuration ----------------------------------------------------------------------


def redis_string(value: str) -> str:
    """A Redis config argument: as it is when it is one plain word (what a generated password
    is, so the auth file of an existing host does not change), else double-quoted with every byte
    that is not plain printable ASCII (and every quote and backslash) as ``\\xHH``, which Redis's
    config parser decodes back."""
    if value and all(0x21 <= ord(c) < 0x7F and c not in "\"'\\" for c in value):
        return value
    out = []
    for byte in value.encode():
        char = chr(byte)
        if 0x20 <= byte < 0x7F and char not in '"\\':
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'
