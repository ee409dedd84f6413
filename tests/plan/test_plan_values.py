"""The bounded values at the plan edge, and the per-format renderers behind them."""

from __future__ import annotations

import base64
import shutil
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from components.formats import FormatError, redis_string, unit_assignment, unit_value, unit_word
from plan_values import (
    Artifact,
    HostAddress,
    HostKey,
    HostPath,
    Text,
    shown,
)
from policies.facts import address_counts, reaches_world
from tests.provisioning.harness import free_port, wait_until

# Built at run time, as in tests/policies/test_secret_hygiene.py: no committed file holds a key block.
KEY_BLOCK_HEADER = "-----BEGIN OPENSSH " + "PRIVATE KEY-----"
KEY_BLOCK_FOOTER = "-----END OPENSSH " + "PRIVATE KEY-----"


def valid(kind: Any, value: object) -> object:
    return TypeAdapter(kind).validate_python(value)


def refused(kind: Any, value: object) -> str:
    with pytest.raises(ValidationError) as error:
        TypeAdapter(kind).validate_python(value)
    return str(error.value)


# --- SSH host keys --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Public keys as ssh-keygen writes them (with their comment), one per accepted type."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (openssh-client) is not installed")
    folder = tmp_path_factory.mktemp("keys")
    keys = {}
    for kind, bits in (("ed25519", None), ("ecdsa", "256"), ("ecdsa", "521"), ("rsa", "3072"), ("rsa", "1024")):
        path = folder / f"{kind}{bits or ''}"
        command = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@db-host", "-f", str(path)]
        subprocess.run([*command, *(["-b", bits] if bits else [])], check=True, timeout=60)
        keys[path.name] = Path(f"{path}.pub").read_text().strip()
    return keys


@pytest.mark.parametrize("name", ["ed25519", "ecdsa256", "ecdsa521", "rsa3072"])
def test_a_public_key_line_with_its_comment_is_accepted_and_pinned_without_it(generated_keys, name):
    line = generated_keys[name]
    assert line.endswith(" root@db-host")
    assert valid(HostKey, line) == line.removesuffix(" root@db-host")


def test_an_rsa_key_below_2048_bits_is_refused(generated_keys):
    assert "at least 2048 bits" in refused(HostKey, generated_keys["rsa1024"])


def _blob(*fields: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(f)) + f for f in fields)).decode()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("ssh-ed25519 AAAA!!!!", "not valid base64"),
        (f"ssh-rsa {_blob(b'ssh-ed25519', bytes(32))}", "holds another key type"),
        (f"ssh-ed25519 {_blob(b'ssh-ed25519', bytes(31))}", "wrong size"),
        (f"ssh-ed25519 {_blob(b'ssh-ed25519', bytes(32))[:-4]}", "not valid base64"),
        (f"ecdsa-sha2-nistp256 {_blob(b'ecdsa-sha2-nistp256', b'nistp384', bytes(65))}", "nistp256 point"),
        (f"ssh-dss {_blob(b'ssh-dss', bytes(32))}", "key type"),
        (f"ssh-ed25519 {_blob(b'ssh-ed25519', bytes(32))} two words", "one OpenSSH public key line"),
        (f"ssh-ed25519 {_blob(b'ssh-ed25519', bytes(32))} a\nExecStart=x", "comment"),
        (f"{KEY_BLOCK_HEADER} KEYBODY0123456789", "one OpenSSH public key line"),
    ],
)
def test_a_host_key_whose_type_and_blob_disagree_is_refused(line, problem):
    assert problem in refused(HostKey, line)


# --- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("//", "not normalized"),
        ("/opt//platform", "not normalized"),
        ("/opt/platform/../../etc", "not normalized"),
        ("/opt/platform/", "not normalized"),
        ("/", "is a system directory"),
        ("/etc", "is a system directory"),
        ("/var", "is a system directory"),
        ("/var/lib", "is a system directory"),
        ("/tmp", "is a system directory"),
        ("/usr/local", "is a system directory"),
        ("/opt/platform/*", "no globs"),
        ("/opt/plat[a]form", "no globs"),
        ("/opt/platform:/etc", "':'"),
        ("/opt/%h", "'%'"),
        ("/opt/plat form", "' '"),
        ("/opt/platform\nExecStartPre=+/bin/id", "a newline"),
        ("opt/platform", "absolute path"),
        ("~/platform", "absolute path"),
        ("/opt/" + "a" * 200, "at most 200"),
    ],
)
def test_a_host_path_is_normalized_absolute_and_no_system_directory(path, problem):
    assert problem in refused(HostPath, path)


@pytest.mark.parametrize("path", ["/opt/platform", "/var/lib/platform", "/etc/systemd/system", "/srv/db-1.data"])
def test_a_directory_below_a_system_directory_is_fine(path):
    assert valid(HostPath, path) == path


# --- addresses and the world ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("255.255.255.255", "broadcast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (refused as a host address)
        ("0.1.2.3", "this network"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("101.33.251.0/24", "single IPv4 address"),
        ("::1", "single IPv4 address"),
    ],
)
def test_a_host_address_is_a_usable_unicast_address(address, problem):
    assert problem in refused(HostAddress, address)


def test_the_world_is_counted_by_addresses_covered_not_by_prefix_length():
    assert address_counts(["0.0.0.0/1", "128.0.0.0/1"]) == {4: 2**32}
    assert address_counts(["10.0.0.0/8", "10.1.0.0/16"]) == {4: 2**24}  # overlaps count once
    assert not reaches_world(["10.0.0.0/8"])  # exactly a /8 is the limit
    assert reaches_world(["10.0.0.0/8", "192.0.2.7/32"])  # one address more is the world
    assert reaches_world([f"{n}.0.0.0/9" for n in (20, 40, 60)])  # three halves of a /8
    assert not reaches_world(["203.0.113.0/24", "198.51.100.0/24"])
    assert reaches_world(["2000::/7"])  # the same share of IPv6: the plan and the pack count alike


# --- free text, artifacts, what errors show ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("auth\n[Service]\nExecStartPre=+/bin/id", "a newline"),
        ("50%h off", "'%'"),
        ("<script>alert(1)</script>", "'<'"),
        ("a | b", "'|'"),
        ("`id`", "'`'"),
        ("tab\there", "U+0009"),
        ("x" * 121, "at most 120"),
        (" padded", "starts or ends with a space"),
    ],
)
def test_free_text_holds_no_control_characters_or_specials(text, problem):
    assert problem in refused(Text, text)


def test_free_text_may_be_chinese():
    assert valid(Text, "认证与权限 (Go)") == "认证与权限 (Go)"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a.tgz",
        "file:///etc/passwd",
        "https://example.com/a.tgz?x=$(id)",
        "https://user:pw@example.com/a.tgz",
        "https://example.com/a b.tgz",
        "ftp://example.com/a.tgz",
    ],
)
def test_an_artifact_is_a_plain_https_url_or_a_host_path(url):
    refused(Artifact, url)


def test_shown_never_repeats_a_secret_or_key_material():
    assert "hunter2" not in shown("hunter2", "password")
    key = f"{KEY_BLOCK_HEADER}\nKEYBODY0123456789\n{KEY_BLOCK_FOOTER}"
    assert "KEYBODY" not in shown(key, "hostKey")
    assert "AAAA" not in shown("A" * 64)
    assert shown("mysql", "kind") == "'mysql'"
    assert shown(10**400) == "a 401-digit number"


# --- renderers ------------------------------------------------------------------------------


def test_unit_values_disarm_specifiers_and_refuse_line_breaks():
    assert unit_value("100% sure") == "100%% sure"
    with pytest.raises(FormatError):
        unit_value("a\n[Service]")
    with pytest.raises(FormatError):
        unit_value("continued \\")
    assert unit_word('say "hi" $HOME 5%', command=True) == '"say \\"hi\\" $$HOME 5%%"'
    assert unit_word("it's", quote="'") == "'it\\'s'"
    assert unit_assignment("ES_JAVA_OPTS", "-Xms1m -Xmx1m") == '"ES_JAVA_OPTS=-Xms1m -Xmx1m"'
    assert unit_assignment("discovery.type", "single-node") == "discovery.type=single-node"
    with pytest.raises(FormatError):
        unit_assignment("A B", "x")


REDIS_PASSWORDS = [
    "Plain0Generated1Password2",
    'quote"and\\backslash',
    "line\nrename-command CONFIG PWNED",
    "spaces and 'single' quotes",
    "口令-unicode",
    "#not-a-comment",
]


def test_redis_strings_escape_quotes_backslashes_and_line_breaks():
    assert redis_string("pwgen-s-32-Output9") == "pwgen-s-32-Output9"  # one plain word stays as written
    assert redis_string('a"b\\c\nd') == '"a\\x22b\\x5cc\\x0ad"'


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server (Debian's) is not installed")
def test_real_redis_reads_back_exactly_the_password_and_no_other_directive(tmp_path):
    """Each password, rendered as the engine's auth file, authenticates in a real redis-server."""
    for index, password in enumerate(REDIS_PASSWORDS):
        port = free_port()
        config = tmp_path / f"auth{index}.conf"
        config.write_text(f"requirepass {redis_string(password)}\n")
        server = subprocess.Popen(
            [
                "redis-server",
                str(config),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait_until(lambda p=port: _redis(p, "PING").startswith(("-NOAUTH", "+PONG")), timeout=10)
            assert _redis(port, "PING").startswith("-NOAUTH")
            assert _redis(port, "AUTH", password, "PING") == "+OK\r\n+PONG\r\n"
            # The newline did not become a directive: CONFIG still answers (it was not renamed).
            assert _redis(port, "AUTH", password, "CONFIG", "GET", "maxmemory").startswith("+OK\r\n*2")
        finally:
            server.terminate()
            server.wait(timeout=10)


def _redis(port: int, *words: str) -> str:
    """Commands in RESP over one connection (AUTH then the rest); the raw answer."""
    commands = [["AUTH", words[1]], list(words[2:])] if words[0] == "AUTH" else [list(words)]
    payload = b"".join(
        f"*{len(c)}\r\n".encode() + b"".join(f"${len(w.encode())}\r\n".encode() + w.encode() + b"\r\n" for w in c)
        for c in commands
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.sendall(payload)
            connection.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := connection.recv(4096):
                answer += chunk
    except OSError:
        return ""
    return answer.decode(errors="replace")
