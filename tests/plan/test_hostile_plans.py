"""Hostile and malformed stack files: each is refused, with one line and without leaking a secret.

The corpus is ``tests/fixtures/hostile/*.yaml``, one complete stack file per case, named
``<class>-<case>.yaml``. Its first two lines say what ``python -m preflight`` must do with it:

    # expect: 2     bad config: exit 2, exactly one ``error:`` line on stderr, no traceback
    # expect: 1     a mandatory policy violation (the plan is valid, the pack refuses it)
    # why: what an attacker (or a tired reviewer) gets if the file is accepted

No case may exit 0 or crash, and no output may repeat a planted secret: every planted value
carries the marker ``PLANTED``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from preflight.__main__ import main
from tests.stacks import ROOT, preflight_cli

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
FIXTURES = sorted(HOSTILE.glob("*.yaml"))
STACK = "hostile"
MARKER = "PLANTED"
CLASSES = (
    *("inject", "paths", "world", "dup", "secret", "crash", "id", "artifact", "policy", "backup", "replica"),
    # The second pass: what a value touches on the host.
    *("upload", "retire", "calendar", "env", "proxy", "echo", "coupling"),
)
# Valid but unusual stack files: each must pass (``# why:`` says what makes it unusual).
VALID = sorted((HOSTILE.parent / "valid").glob("*.yaml"))
# The crash class again, as a user runs it: a real interpreter, so nothing pytest does can hide a traceback.
SUBPROCESS_CASES = (
    "crash-config-nonstring-key.yaml",
    "crash-config-list.yaml",
    "crash-scalar-document.yaml",
    "crash-memory-huge-int.yaml",
)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HEADER = re.compile(rb"# expect: (?P<expect>[12])\n# why: (?P<why>\S[^\n]*)\n")

# The private-key fixtures hold this token: the fake key block is built here, at run time, so no
# committed file holds one (secret scanners rightly flag even a fake).
FAKE_PRIVATE_KEY_TOKEN = b"<FAKE-PRIVATE-KEY>"
FAKE_PRIVATE_KEY = (
    b"-----BEGIN OPENSSH " + b"PRIVATE KEY-----\\nPLANTED-private-key-material-do-not-echo\\n"
    b"-----END OPENSSH " + b"PRIVATE KEY-----\\n"
)


def fixture_bytes(fixture: Path) -> bytes:
    """The stack file as the test runs it: the fake key block, YAML-escaped, in place of its token."""
    return fixture.read_bytes().replace(FAKE_PRIVATE_KEY_TOKEN, FAKE_PRIVATE_KEY)


def expected(fixture: Path) -> int:
    match = _HEADER.match(fixture.read_bytes())
    assert match, f"{fixture.name}: must start with '# expect: 1|2' and '# why: ...' lines"
    return int(match["expect"])


def stack_root(tmp_path: Path, text: bytes) -> Path:
    """The project's Pulumi.yaml beside the stack file, as a user's checkout would have them (with the
    shipped Alibaba stack, which a Tencent stack's databaseStack names)."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(ROOT / "Pulumi.alibaba.yaml", tmp_path / "Pulumi.alibaba.yaml")
    (tmp_path / f"Pulumi.{STACK}.yaml").write_bytes(text)
    return tmp_path


def run_preflight(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``python -m preflight STACK --root ROOT`` in-process: (exit code, stdout, stderr)."""
    try:
        code = main([STACK, "--root", str(root)])
    except SystemExit as exited:  # argparse and friends: the code the process would exit with
        code = exited.code if isinstance(exited.code, int) else int(exited.code is not None)
    except Exception as error:  # an escaped exception is a traceback for the user, never a refusal
        pytest.fail(f"preflight crashed instead of refusing: {type(error).__name__}: {error!s:.200}", pytrace=False)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(stderr: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}: {stderr[:500]!r}"
    assert lines[0].startswith("error:"), lines[0]
    assert lines[0].strip() != "error:"
    # An error that quotes a value raw would pass an injected escape sequence on to the terminal.
    assert not _CONTROL.search(lines[0]), f"a control character in the error line: {lines[0]!r}"


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_hostile_stack_file_is_refused(fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    expect = expected(fixture)
    root = stack_root(tmp_path, fixture_bytes(fixture))
    code, out, err = run_preflight(root, capsys)

    assert MARKER not in out + err, "a planted secret is repeated in the output"
    assert "Traceback" not in out + err
    assert code == expect, f"exit {code}, expected {expect}; stderr: {err[:300]!r}"
    if expect == 2:
        assert_one_error_line(err)
        assert out == ""
        # Refused for what the fixture plants, not for a release every Tencent plan must name.
        assert "release: required" not in err
    else:
        assert "mandatory violations" in out


@pytest.mark.parametrize("fixture", VALID, ids=[f.name for f in VALID])
@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_a_valid_but_unusual_stack_file_passes(fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert fixture.read_text().startswith("# why: ")
    root = stack_root(tmp_path, fixture.read_bytes())
    shutil.copy(ROOT / "Pulumi.alibaba.yaml", root)  # what a databaseStack reference reads, as in a checkout
    code, _, err = run_preflight(root, capsys)
    assert code == 0, err[:500]


def test_the_valid_corpus_is_large_enough():
    assert len(VALID) >= 15


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_crash_class_is_one_line_from_the_real_cli(name: str, tmp_path: Path):
    root = stack_root(tmp_path, fixture_bytes(HOSTILE / name))
    result = preflight_cli(STACK, root=root)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 2, result.stderr[-500:]
    assert_one_error_line(result.stderr)


@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_a_host_key_with_its_comment_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # What README tells an admin to copy: `cat /etc/ssh/ssh_host_ed25519_key.pub` ends in a comment.
    text, count = re.subn(
        r"(hostKey: ssh-ed25519 [A-Za-z0-9+/]+=*)",
        r"\1 root@iZwz9example0000000001Z",
        (ROOT / "Pulumi.alibaba.yaml").read_text(),
    )
    assert count == 1
    code, _, err = run_preflight(stack_root(tmp_path, text.encode()), capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    ("stack", "added"),
    [
        # The id half of a cloud credential: only alicloud:secretKey / tencentcloud:secretKey are secret.
        pytest.param("alibaba", "alicloud:accessKey: LTAI5tEXAMPLEaccesskey", id="alicloud-access-key-id"),
        pytest.param("tencent", "tencentcloud:secretId: AKIDEXAMPLEsecretid", id="tencentcloud-secret-id"),
        # A directory named in README's platform:paths, not a secret because its key says "secrets".
        pytest.param("alibaba", "platform:paths:\n    secrets: /etc/platform/secrets", id="paths-secrets-default"),
    ],
)
@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_a_near_miss_is_accepted(stack: str, added: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text() + f"  {added}\n"
    code, _, err = run_preflight(stack_root(tmp_path, text.encode()), capsys)
    assert code == 0, err


def test_the_corpus_is_large_covers_every_class_and_has_no_copies():
    assert len(FIXTURES) >= 220  # 156 of the first pass, 67 of the second (what a value touches on the host)
    digests = {hashlib.sha256(f.read_bytes()).hexdigest(): f.name for f in FIXTURES}
    assert len(digests) == len(FIXTURES), "two fixtures are byte-identical"
    keyed = [f for f in FIXTURES if FAKE_PRIVATE_KEY_TOKEN in f.read_bytes()]
    assert len(keyed) == 3, "the private-key fixtures carry the token"
    assert all(b"PRIVATE KEY" in fixture_bytes(f) for f in keyed)
    for fixture in FIXTURES:
        expected(fixture)
        assert fixture.name.split("-", 1)[0] in CLASSES, f"{fixture.name}: unknown class; classes: {CLASSES}"
    for prefix in CLASSES:
        assert sum(f.name.startswith(f"{prefix}-") for f in FIXTURES) >= 2, f"class {prefix}: fewer than 2 cases"
