"""The test hosts share the machine with each other: under pytest-xdist, two workers each run an
sshd, and each must leave what the other needs in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.provisioning.harness import PRIVSEP_DIR, SSHD, SshHost
from tests.provisioning.real_engines import newest_postgres


@pytest.mark.skipif(os.geteuid() != 0 or not Path(SSHD).exists(), reason="needs root and sshd (openssh-server)")
def test_a_host_that_stops_leaves_sshds_shared_directory_to_the_others(tmp_path: Path, ssh_host: SshHost):
    """Removing /run/sshd under a running sshd makes it refuse every new connection (the other
    worker's host); a host of its own, started and stopped beside the session's, leaves it alone."""
    before = PRIVSEP_DIR.stat()
    own = SshHost(tmp_path)
    own.start()
    own.stop()
    after = PRIVSEP_DIR.stat()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert ssh_host.run("true", label="the session's host still answers", record=False).code == 0


def test_postgresql_is_found_by_version_not_by_a_fixed_path(tmp_path: Path):
    for version in ("13", "15", "16"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin/postgres").write_text("")
    (tmp_path / "17/bin").mkdir(parents=True)  # a client-only install: no server binary
    assert newest_postgres(tmp_path) == tmp_path / "16/bin"
    assert newest_postgres(tmp_path / "none").name == "bin"  # nothing: a path that names what is missing
