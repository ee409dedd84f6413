"""The last lines of a run name each layer that did not run (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = """
import pytest

def test_over_ssh():
    pytest.skip("needs /usr/sbin/sshd (openssh-server)")

def test_over_ssh_again():
    pytest.skip("needs /usr/sbin/sshd (openssh-server)")

def test_with_mariadb():
    pytest.skip("mysql: needs /usr/sbin/mariadbd (Debian's mariadb-server)")

def test_that_runs():
    pass
"""


def _pytest(directory: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q", "-ra", str(directory)],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_the_last_lines_name_each_skipped_layer_and_how_to_enable_it(tmp_path: Path) -> None:
    (tmp_path / "test_layers.py").write_text(LAYERS)

    lines = _pytest(tmp_path)

    assert lines[-3:] == [
        "NOT RUN HERE: 3 tests skipped; `bash .ci/run` installs what they need:",
        "    2 skipped: needs /usr/sbin/sshd (openssh-server)",
        "    1 skipped: mysql: needs /usr/sbin/mariadbd (Debian's mariadb-server)",
    ]


def test_a_run_with_every_layer_says_nothing_more(tmp_path: Path) -> None:
    (tmp_path / "test_layers.py").write_text("def test_that_runs():\n    pass\n")

    lines = _pytest(tmp_path)

    assert lines[-1].startswith("1 passed")
