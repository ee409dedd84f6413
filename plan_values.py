"""Typed, bounded values at the plan edge.

A pull request can change any stack file, so every value that reaches a script, a unit file,
a config file or a PR comment is checked here against what its target can hold safely: no
control characters, none of the target format's specials, a length bound, a real range.
Shell quoting (components/provisioning.py) is a second line, not the first.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import posixpath
import re
import struct
import zoneinfo
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictBool, StringConstraints

from policies.facts import system_directory

# ---------------------------------------------------------------------------------------
# Numbers and booleans: strict (`true` is not 1, "224" is not 224), with real ranges
# ---------------------------------------------------------------------------------------

# Chosen here: no ECS or CVM type offers more than 4 TiB of memory; a figure beyond that is a
# typo, and keeping every figure far inside 2**63 keeps bash's arithmetic and `[ -lt ]` exact.
MAX_MEMORY_MIB = 4 * 1024 * 1024

Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
MemoryMib = Annotated[int, Field(strict=True, gt=0, le=MAX_MEMORY_MIB, description="memory in MiB")]
Bool = StrictBool


def count(low: int, high: int, **kwargs: Any) -> Any:
    """A strict integer field within [low, high]."""
    return Field(strict=True, ge=low, le=high, **kwargs)


# ---------------------------------------------------------------------------------------
# Strings
# ---------------------------------------------------------------------------------------

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
Name = Annotated[str, StringConstraints(strict=True, pattern=NAME_PATTERN)]
"""A workload name: container, unit, file and resource names are made from it."""

Token = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
"""An identifier of the cloud's (image id, instance type, key pair): no spaces, no specials."""

# Punctuation free text may use besides letters, digits and spaces: none of it is special in a
# systemd unit, a Quadlet file, a shell word inside quotes, or Markdown inside a table cell.
_TEXT_PUNCTUATION = frozenset(" .,:;()/+_'&-")
MAX_TEXT = 120


def _free_text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise ValueError(f"is {len(value)} characters long; at most {MAX_TEXT}")
    for char in value:
        if not (char.isalnum() or char in _TEXT_PUNCTUATION):
            raise ValueError(
                f"contains {describe_char(char)}; free text may hold letters, digits, spaces and "
                f"{''.join(sorted(_TEXT_PUNCTUATION - {' '}))} only (it lands in unit files and the PR comment)"
            )
    if value != value.strip():
        raise ValueError("starts or ends with a space")
    return value


Text = Annotated[str, StringConstraints(strict=True), AfterValidator(_free_text)]
"""Free text (a description, a port's purpose): letters of any script, digits and plain punctuation."""


def describe_char(char: str) -> str:
    if char == "\n":
        return "a newline"
    if not char.isprintable():
        return f"the control character U+{ord(char):04X}"
    return f"{char!r}"


# ---------------------------------------------------------------------------------------
# systemd calendar expressions (OnCalendar=)
# ---------------------------------------------------------------------------------------

# The shorthands systemd knows (systemd.time(7)), case-insensitive as systemd reads them.
CALENDAR_SHORTHANDS = frozenset(
    {
        "minutely",
        "hourly",
        "daily",
        "weekly",
        "monthly",
        "yearly",
        "annually",
        "quarterly",
        "semiannually",
        "semi-annually",
        "biannually",
        "bi-annually",
    }
)
CALENDAR_EXAMPLE = "e.g. '*-*-* 03:00:00', 'Mon..Fri 02:30', '*-*-1,15 02:30', '*:0/15' or 'daily'"
MAX_CALENDAR = 100
_CALENDAR_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 *:,./~-_")
# A trailing time zone as systemd takes it (systemd.time(7)): UTC or an IANA name such as Asia/Shanghai.
_TIME_ZONE = re.compile(r"^(UTC|[A-Z][A-Za-z_-]{1,30}(/[A-Z][A-Za-z0-9_-]{1,30}){1,2})$")
# How many days each month has, February in a leap year (a date that never comes never fires).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBER = re.compile(r"^[0-9]{1,2}$")
# Last days of a month counted back with '~': systemd accepts 1..28.
_MAX_DAYS_BACK = 28


def _weekday(word: str) -> int:
    lowered = word.lower()
    for index, day in enumerate(_WEEKDAYS):
        if lowered in (day, day[:3]):
            return index
    raise ValueError(
        f"{word!r} is neither a weekday (Mon, Tue, ... or Monday, ...) nor a shorthand (daily, weekly, ...)"
    )


def _weekdays(text: str) -> None:
    """``Mon``, ``Mon..Fri``, ``Sat,Sun``, ``Mon..Wed,Fri``: no repetition, ranges forward only."""
    for item in text.split(","):
        first, dots, last = item.partition("..")
        start = _weekday(first)
        if dots and _weekday(last) < start:
            raise ValueError(f"weekday range {item!r} runs backwards (write Mon..Fri, not Fri..Mon)")


def _number(text: str, what: str, low: int, high: int) -> int:
    if not _NUMBER.match(text):
        raise ValueError(f"{what} {text!r} is not a number of one or two digits")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is outside {low}..{high}")
    return value


def _component(text: str, what: str, low: int, high: int, *, star: bool = True, repeat: bool = True) -> set[int]:
    """One field: ``*``, or a list of ``N``, ``N..M`` and ``N/R``/``N..M/R`` (repeat every R); the values it
    matches."""
    if text == "*" and star:
        return set(range(low, high + 1))
    matched: set[int] = set()
    for item in text.split(","):
        value, slash, step = item.partition("/")
        first, dots, last = value.partition("..")
        start = _number(first, what, low, high)
        if dots and _number(last, what, low, high) < start:
            raise ValueError(f"{what} range {value!r} runs backwards")
        if slash:
            if not repeat:
                raise ValueError(f"{what} {item!r} may not repeat with '/' here")
            if not step.isdigit() or not 1 <= int(step) <= high - start:
                raise ValueError(f"{what} repetition {item!r} must step by 1..{high - start} (the next one must exist)")
        end = int(last) if dots else (high if slash else start)
        matched |= set(range(start, end + 1, int(step) if slash else 1))
    return matched


def _calendar_date(text: str) -> None:
    """``[*-]MONTH-DAY``, or ``[*-]MONTH~N`` (the N-th last day); the year, when written, is ``*``. A date
    that never comes (``*-02-30``, ``*-04-31``) is refused: its timer would never fire."""
    head, tilde, back = text.partition("~")
    parts = head.split("-")
    if len(parts) == (2 if tilde else 3):
        if parts[0] != "*":
            raise ValueError(f"year {parts[0]!r} is fixed: a schedule that stops after one year is no schedule; use *")
        parts = parts[1:]
    if tilde:
        if len(parts) != 1 or "~" in back:
            raise ValueError(f"{text!r} is not a date of the form *-MONTH~DAYS-BACK")
        _component(parts[0], "month", 1, 12)
        _component(back, "days back from the month's end", 1, _MAX_DAYS_BACK, star=False, repeat=False)
        return
    if len(parts) != 2:
        raise ValueError(f"{text!r} is not a date of the form *-MONTH-DAY")
    months = _component(parts[0], "month", 1, 12)
    days = _component(parts[1], "day", 1, 31)
    if not any(day <= _MONTH_DAYS[month - 1] for month in months for day in days):
        raise ValueError(f"date {text!r} never comes (no month of it has that day), so the timer would never fire")


def _calendar_time(text: str) -> None:
    """``HOUR:MINUTE[:SECOND]``, whole seconds."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"{text!r} is not a time of the form HH:MM or HH:MM:SS")
    for part, (what, high) in zip(parts, (("hour", 23), ("minute", 59), ("second", 59)), strict=False):
        _component(part, what, 0, high)


def _time_zone(word: str) -> None:
    if not _TIME_ZONE.match(word):
        raise ValueError(f"{word!r} is not a time zone (UTC or a name such as Asia/Shanghai)")
    try:
        zoneinfo.ZoneInfo(word)
    except zoneinfo.ZoneInfoNotFoundError:
        if zoneinfo.available_timezones():  # a machine without a zone database cannot tell
            raise ValueError(f"{word!r} is not a time zone this machine knows (e.g. Asia/Shanghai, UTC)") from None
    except ValueError:
        raise ValueError(f"{word!r} is not a time zone (UTC or a name such as Asia/Shanghai)") from None


def calendar_times_per_day(value: str) -> tuple[int, int]:
    """At most how often a valid calendar expression fires: (times in an hour, times in a day)."""
    shorthand = {"minutely": (60, 1440), "hourly": (1, 24)}.get(value.lower())
    if shorthand is not None or value.lower() in CALENDAR_SHORTHANDS:
        return shorthand or (1, 1)
    words = [w for w in value.split() if ":" in w]
    hours, minutes, seconds = [*words[0].split(":"), "0"][:3] if words else ("0", "0", "0")
    per_hour = len(_component(minutes, "minute", 0, 59)) * len(_component(seconds, "second", 0, 59))
    return per_hour, per_hour * len(_component(hours, "hour", 0, 23))


def _calendar(value: str) -> str:
    """A systemd ``OnCalendar=`` expression: a shorthand or ``[WEEKDAYS] [DATE] [TIME]``.

    Refused although systemd takes it (a backup schedule has no use for it, and each is one more
    way to write a schedule that stops): a fixed or two-digit year, ``@epoch``, fractional seconds,
    leading zeros beyond two digits, a repetition after ``~`` or one whose next occurrence does not
    exist, a date that never comes. A trailing time zone (``Asia/Shanghai``, ``UTC``) is taken.
    """
    if len(value) > MAX_CALENDAR:
        raise ValueError(f"is {len(value)} characters long; at most {MAX_CALENDAR}")
    if bad := next((c for c in value if c not in _CALENDAR_CHARS), None):
        raise ValueError(
            f"contains {describe_char(bad)}; a calendar expression holds letters, digits, spaces and * : , . / ~ - "
            f"only ({CALENDAR_EXAMPLE})"
        )
    if value.lower() in CALENDAR_SHORTHANDS:
        return value
    words = value.split()
    if not words or value != value.strip():
        raise ValueError(f"is not a systemd calendar expression (no leading or trailing space; {CALENDAR_EXAMPLE})")
    try:
        if len(words) > 1 and words[-1][:1].isupper() and ("/" in words[-1] or words[-1] == "UTC"):
            _time_zone(words.pop())
        if words[0][:1].isalpha():
            _weekdays(words.pop(0))
        if words and ":" not in words[0]:
            _calendar_date(words.pop(0))
        if words:
            _calendar_time(words.pop(0))
        if words:
            raise ValueError(f"{words[0]!r} follows the time; the order is [WEEKDAYS] [DATE] [TIME]")
    except ValueError as error:
        raise ValueError(f"is not a systemd calendar expression: {error}; {CALENDAR_EXAMPLE}") from None
    return value


Calendar = Annotated[str, StringConstraints(strict=True), AfterValidator(_calendar)]
"""A systemd ``OnCalendar=`` expression (systemd.time(7)), checked here; the test compares with systemd-analyze."""


# ---------------------------------------------------------------------------------------
# Paths on the host
# ---------------------------------------------------------------------------------------

MAX_PATH = 200
_PATH_CHARS = re.compile(r"^[A-Za-z0-9._/-]+$")


def _host_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must be an absolute path starting with /")
    if len(value) > MAX_PATH:
        raise ValueError(f"is {len(value)} characters long; at most {MAX_PATH}")
    if bad := next((c for c in value if not (c.isascii() and _PATH_CHARS.match(c))), None):
        raise ValueError(
            f"contains {describe_char(bad)}; a path holds letters, digits and . _ - / only (no globs, ':' or '%')"
        )
    if posixpath.normpath(value) != value or "//" in value:
        raise ValueError(f"is not normalized (no '//', '.', '..' or trailing '/'); write {posixpath.normpath(value)}")
    if holds := system_directory(value):
        what = "is" if holds == value else f"contains {holds}, which is"
        raise ValueError(f"{what} a system directory; use a directory of the platform's own, e.g. /opt/platform")
    return value


HostPath = Annotated[str, StringConstraints(strict=True), AfterValidator(_host_path)]
"""A normalized absolute path that is not, and does not contain, a system directory."""

_HTTPS_URL = re.compile(r"^https://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(/[A-Za-z0-9._~%+=-]*)+$")
MAX_URL = 500


def _artifact(value: str) -> str:
    if value.startswith("https://"):
        if len(value) > MAX_URL or not _HTTPS_URL.match(value):
            raise ValueError(
                f"is not a plain https URL (host, optional port, a path of letters, digits and . _ ~ % + = -; "
                f"at most {MAX_URL} characters)"
            )
        return value
    if value.startswith("/"):
        return _host_path(value)
    raise ValueError("must be an https:// URL or an absolute path on the host")


Artifact = Annotated[str, StringConstraints(strict=True), AfterValidator(_artifact)]
"""A release tarball: an https URL (fetched with https only, redirects too) or a path on the host."""


def _path_words(value: str, what: str) -> str:
    if not value or len(value) > MAX_PATH:
        raise ValueError(f"must be 1 to {MAX_PATH} characters long")
    if bad := next((c for c in value if not (c.isascii() and _PATH_CHARS.match(c))), None):
        raise ValueError(f"contains {describe_char(bad)}; {what} holds letters, digits and . _ - / only")
    if posixpath.normpath(value) != value or "//" in value:
        raise ValueError(f"is not normalized (no '//', '.', or trailing '/'); write {posixpath.normpath(value)}")
    return value


def _local_path(value: str) -> str:
    segments = value.split("/")
    if value.startswith("/") or ".." in segments:
        raise ValueError(
            "must be a path inside the project (relative to the folder with Pulumi.yaml, no leading '/' "
            "or '..'): `pulumi up` copies it from the machine it runs on to the host"
        )
    _path_words(value, "a local path")
    if hidden := next((segment for segment in segments if segment.startswith(".")), None):
        raise ValueError(
            f"names the hidden {hidden!r}: a release is never inside .git, .venv, .pulumi or another "
            "hidden folder, which hold the checkout's own history and credentials"
        )
    return value


LocalPath = Annotated[str, StringConstraints(strict=True), AfterValidator(_local_path)]
"""A file or directory on the machine running ``pulumi up``, inside the project (relative to it,
no '..', no hidden segment); ``components.uploads.resolve`` also refuses a symbolic link out of it."""


def _relative_path(value: str) -> str:
    _path_words(value, "a path in the release")
    if value.startswith("/") or value == ".." or value.startswith("../"):
        raise ValueError("must be a path inside the release (relative, not leaving it with '..')")
    return value


RelativePath = Annotated[str, StringConstraints(strict=True), AfterValidator(_relative_path)]
"""A path inside a release directory."""


# ---------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------


def _strict_network(value: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError as error:
        raise ValueError(f"must be an IPv4 CIDR with no host bits set ({error})") from None


def _host_address(value: str) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError("must be a single IPv4 address such as 203.0.113.10") from None
    if problem := unusable_host(address):
        raise ValueError(f"is {problem}, not a host's address")
    return str(address)


def unusable_host(address: ipaddress.IPv4Address) -> str | None:
    """Why ``address`` cannot be a host's unicast address, or None when it can."""
    checks = (
        (address.is_unspecified, "the unspecified address"),
        (address == ipaddress.IPv4Address("255.255.255.255"), "the broadcast address"),
        (address in ipaddress.IPv4Network("0.0.0.0/8"), "in 0.0.0.0/8 ('this network')"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (169.254.0.0/16: the cloud's metadata service)"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address (240.0.0.0/4)"),
    )
    return next((why for hit, why in checks if hit), None)


Cidr = Annotated[str, StringConstraints(strict=True, max_length=18), AfterValidator(_strict_network)]
HostAddress = Annotated[str, StringConstraints(strict=True, max_length=15), AfterValidator(_host_address)]


# ---------------------------------------------------------------------------------------
# SSH host keys
# ---------------------------------------------------------------------------------------

# key type -> (curve name for ECDSA, or None) ; the blob must say the same type.
_KEY_TYPES = {
    "ssh-ed25519": None,
    "ecdsa-sha2-nistp256": ("nistp256", 65),
    "ecdsa-sha2-nistp384": ("nistp384", 97),
    "ecdsa-sha2-nistp521": ("nistp521", 133),
    "ssh-rsa": None,
}
MIN_RSA_BITS = 2048
_COMMENT = re.compile(r"^[A-Za-z0-9@._+:-]{1,100}$")


def _ssh_strings(blob: bytes) -> list[bytes]:
    """The length-prefixed fields of an OpenSSH key blob (RFC 4253 section 6.6)."""
    fields, offset = [], 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise ValueError("truncated")
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        offset += 4
        if offset + length > len(blob):
            raise ValueError("truncated")
        fields.append(blob[offset : offset + length])
        offset += length
    return fields


def _host_key(value: str) -> str:
    parts = value.split(" ")
    if len(parts) not in (2, 3) or "" in parts:
        raise ValueError(
            "must be one OpenSSH public key line: '<type> <base64>' with an optional comment, "
            "e.g. the contents of /etc/ssh/ssh_host_ed25519_key.pub"
        )
    kind, encoded = parts[0], parts[1]
    if kind not in _KEY_TYPES:
        raise ValueError(f"has key type {kind[:40]!r}; expected one of {', '.join(_KEY_TYPES)}")
    if len(parts) == 3 and not _COMMENT.match(parts[2]):
        raise ValueError("has a comment with characters other than letters, digits and @ . _ + : -")
    try:
        fields = _ssh_strings(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        raise ValueError(f"has a key blob that is not valid base64 of an OpenSSH {kind} key") from None
    if not fields or fields[0] != kind.encode():
        raise ValueError(f"says {kind} but its key blob holds another key type")
    _check_key_material(kind, fields[1:])
    return f"{kind} {encoded}"  # the comment is not part of the key


def _check_key_material(kind: str, fields: list[bytes]) -> None:
    if kind == "ssh-ed25519":
        if len(fields) != 1 or len(fields[0]) != 32:
            raise ValueError("has an ed25519 key blob of the wrong size (a public key is 32 bytes)")
    elif kind == "ssh-rsa":
        if len(fields) != 2 or int.from_bytes(fields[1], "big").bit_length() < MIN_RSA_BITS:
            raise ValueError(f"is not an RSA key of at least {MIN_RSA_BITS} bits")
    else:
        curve, point = _KEY_TYPES[kind] or ("", 0)
        if len(fields) != 2 or fields[0] != curve.encode() or len(fields[1]) != point or fields[1][0] != 4:
            raise ValueError(f"has a key blob that is not an uncompressed {curve} point")


HostKey = Annotated[str, StringConstraints(strict=True, max_length=1000), AfterValidator(_host_key)]


# ---------------------------------------------------------------------------------------
# Cloud ids
# ---------------------------------------------------------------------------------------

# The documented id formats: Alibaba ids are a prefix and 8-30 lower-case letters and digits
# (i-wz9..., sg-wz9...), Tencent's a prefix and exactly 8 (ins-abcd1234, sg-abcd1234).
CLOUD_ID_PREFIXES: dict[str, dict[str, str]] = {
    "alibaba": {"instanceId": "i-", "securityGroupId": "sg-", "vpcId": "vpc-", "subnetId": "vsw-"},
    "tencent": {"instanceId": "ins-", "securityGroupId": "sg-", "vpcId": "vpc-", "subnetId": "subnet-"},
}
_CLOUD_ID_LENGTH = {"alibaba": "{8,30}", "tencent": "{8}"}


def cloud_id_pattern(cloud: str, field: str) -> str:
    """The regular expression ids of ``field`` (``instanceId``, ...) match on ``cloud``."""
    return f"^{CLOUD_ID_PREFIXES[cloud][field]}[a-z0-9]{_CLOUD_ID_LENGTH[cloud]}$"


CloudId = Annotated[str, StringConstraints(strict=True, max_length=40)]


# ---------------------------------------------------------------------------------------
# Secrets: what looks like one, and never showing it
# ---------------------------------------------------------------------------------------

# A config key or field whose name looks like a credential holds a secret, in any namespace
# (alicloud:secretKey, tencentcloud:secretKey, platform:dbPasswords, a stray "token" field).
SECRET_LOOKING = re.compile(r"pass(word|wd)?|secret|token|private.?key|api.?key|credential|auth", re.IGNORECASE)
# Names that match but are not secrets: the public halves of the providers' key pairs (their docs
# set them without --secret) and the plan's own field naming the secrets directory.
NOT_SECRETS = frozenset({"accessKey", "accessKeyId", "secretId", "secrets", "credentials"})
_KEY_MATERIAL = re.compile(r"PRIVATE KEY|BEGIN [A-Z ]+-----|^[A-Za-z0-9+/=_-]{40,}$")
# A URL with a user (and often a password) in it, and a user:password pair (a password of six or more
# with a digit or a symbol; a config key such as platform:cloud is not one): what a CI log must not
# get back in an error about the field it was pasted into.
_CREDENTIALS = re.compile(
    r"://[^/\s@]*@|^[^\s:/@]+:[^\s/@]+@|^[A-Za-z][A-Za-z0-9._-]*:(?=[^:]*[0-9!#$%^&*+=~])[^\s/@:]{6,}$"
)


def one_line(text: str) -> str:
    """``text`` as one line a terminal shows as written: line breaks become spaces, any other
    control character (an escape sequence a value could carry) its ``\\xNN`` spelling."""
    flat = " ".join(text.splitlines())
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in flat)


def looks_secret_key(name: str) -> bool:
    """A config key or field that holds a secret by its name; an environment variable's name
    (UPPER_SNAKE) by its words (``looks_secret_variable``)."""
    if _VARIABLE.match(name):
        return looks_secret_variable(name)
    return name not in NOT_SECRETS and bool(SECRET_LOOKING.search(name))


_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*$")


# An environment variable is a secret by its words (JWT_SECRET, ENCRYPTION_KEY, DBPASSWORD), unless its
# last word says it is where or what kind the secret is (OAUTH_CALLBACK_URL, SECRET_FILE, ACCESS_KEY_ID).
_SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "TOKEN", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS", "AUTH"}
    | {"PRIVATE", "SALT", "PASSPHRASE", "DSN"}
)
_SECRET_ENDINGS = ("PASSWORD", "SECRET", "TOKEN", "APIKEY", "PASSPHRASE")
_DESCRIBING_WORDS = frozenset(
    {"URL", "URI", "HOST", "PORT", "PATH", "FILE", "DIR", "NAME", "USER", "USERNAME", "ID", "ENDPOINT", "TTL"}
    | {"EXPIRY", "LENGTH", "ALGORITHM", "HEADER", "ISSUER", "AUDIENCE", "MODE", "TYPE", "ENABLED", "PREFIX"}
)


def looks_secret_variable(name: str) -> bool:
    """An environment variable whose value would be a credential (a service's ``environment``)."""
    words = name.split("_")
    if words[-1] in _DESCRIBING_WORDS:
        return False
    return any(word in _SECRET_WORDS or word.endswith(_SECRET_ENDINGS) for word in words)


# Variables that change what a process loads or runs (the dynamic loader, interpreters' start-up
# hooks and search paths, the shell's start-up file): a stack file never sets them for a service.
_CODE_PREFIXES = ("LD_", "DYLD_", "PYTHON", "PERL5", "PERL_", "RUBY", "NODE_OPTIONS", "NODE_PATH", "GCONV_")
_CODE_NAMES = frozenset(
    {"BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "LOCPATH"}
    | {"NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "TZDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "UV_INDEX_URL"}
)


# Python's own switches that change output and encoding only.
_HARMLESS = frozenset(
    {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONHASHSEED"}
)


def changes_what_runs(name: str) -> bool:
    """An environment variable that makes a process load or run other code, or trust other servers."""
    return name not in _HARMLESS and (name in _CODE_NAMES or name.startswith(_CODE_PREFIXES))


def shown(value: Any, key: str = "") -> str:
    """A bad value as an error message may show it, or what kind of value it is.

    Never the value of a secret-looking field, nor anything that looks like key material, nor
    a long or multi-line value (a secret pasted in the wrong field must not reach a CI log).
    """
    if looks_secret_key(key):
        return "a value (not shown: the field's name says it is a secret)"
    if isinstance(value, str):
        if _KEY_MATERIAL.search(value):
            return f"a {len(value)}-character value that looks like key material (not shown)"
        if _CREDENTIALS.search(value):
            return f"a {len(value)}-character value that holds credentials (user:password; not shown)"
        if len(value) > 60:
            return f"a {len(value)}-character value (not shown)"
        if bad := next((c for c in value if not c.isprintable()), None):
            return f"a value containing {describe_char(bad)} (not shown)"
        return repr(value)
    if isinstance(value, bool | int | float) or value is None:
        text = repr(value)
        return text if len(text) <= 40 else f"a {len(text)}-digit number"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------------------------------
# Example values: what a shipped stack file holds until its user replaces it
# ---------------------------------------------------------------------------------------

# Addresses reserved for documentation (RFC 5737, RFC 3849): no host has one, so an admin range
# or a peer among them cuts a real deploy off from its host.
DOCUMENTATION_NETWORKS = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
)
_EXAMPLE_WORD = re.compile(r"example", re.IGNORECASE)
_ADDRESS_LIKE = re.compile(r"[0-9a-fA-F:.]+(/[0-9]{1,3})?")
# The placeholder of the shipped stack files: an ed25519 key of 32 zero bytes.
PLACEHOLDER_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def example_reason(value: str) -> str | None:
    """Why ``value`` is a placeholder rather than a real setting, or None.

    A documentation address or network (RFC 5737, RFC 3849), alone or as a URL's host; anything
    spelled with "example" (the ids and names of the shipped stack files, RFC 2606's example.com);
    a digest of zeros; the all-zero host key.
    """
    if value == PLACEHOLDER_HOST_KEY:
        return "the placeholder host key (32 zero bytes)"
    if re.fullmatch(r"0{64}", value):
        return "a digest of zeros"
    if _EXAMPLE_WORD.search(value):
        return "an example value"
    host = value.removeprefix("https://").split("/", 1)[0].rsplit(":", 1)[0] if "://" in value else value
    if _ADDRESS_LIKE.fullmatch(host):
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            return None
        if any(network.version == doc.version and network.overlaps(doc) for doc in DOCUMENTATION_NETWORKS):
            rfc = "RFC 5737" if network.version == 4 else "RFC 3849"
            return f"a documentation address ({rfc}), which no host has"
    return None
