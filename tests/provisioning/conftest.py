"""Fixtures for running the provisioning scripts over real SSH on 127.0.0.1."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.provisioning.harness import HOSTS_DIR, PRIVSEP_DIR, SSHD, STATS, SshHost


@pytest.fixture(scope="session")
def ssh_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHost]:
    """One sshd for the session; ``host`` gives each test a clean host behind it."""
    if os.geteuid() != 0 or not Path(SSHD).exists():
        pytest.skip(f"the provisioning scripts run as root over SSH: needs root and {SSHD} (openssh-server)")
    if not PRIVSEP_DIR.is_dir():
        pytest.skip(f"sshd needs its directory {PRIVSEP_DIR}, which no test creates: `bash .ci/run` makes it")
    if not HOSTS_DIR.is_dir():
        pytest.skip(f"the test hosts' filesystems live in {HOSTS_DIR}, which no test creates: `bash .ci/run` makes it")
    host = SshHost(tmp_path_factory.mktemp("provisioning"))
    host.start()
    try:
        yield host
    finally:
        host.stop()
    # The whole exec trace, now that sshd and every session have ended.
    leaks = host.find_leaks(STATS.runs)
    assert not leaks, "placeholder secrets leaked:\n" + "\n".join(leaks)


@pytest.fixture
def host(ssh_host: SshHost) -> Iterator[SshHost]:
    """A clean host; after the test, no placeholder secret may be found outside its secret file."""
    ssh_host.reset()
    first_run, trace_from = len(STATS.runs), ssh_host.trace_size()
    STATS.tests += 1
    yield ssh_host
    time.sleep(0.05)  # let the tracer write the last execs of the test
    leaks = ssh_host.find_leaks(STATS.runs[first_run:], trace_from)
    ssh_host.stop_services()
    assert not leaks, "placeholder secrets leaked:\n" + "\n".join(leaks)
