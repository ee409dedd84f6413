"""Secrets travel on stdin only and land only in their 0600 files.

Every test of this suite ends with a scan of the whole host, the stand-ins' logs, the captured
stdout and stderr, the environment and command line of every running service, the sshd log
and, with strace, the argv and environment of every process the sessions executed (see
``conftest.host``). These tests show the scan finds what it looks for, and follow one secret
from the real program's stdin to its file.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from components import databases, services
from components.engines import secret_content, secret_file
from tests.provisioning.harness import ENGINE_PLACEHOLDER, MARKER, STATS, SshHost, free_port, password_for
from tests.provisioning.schedule import remote_commands, up
from tests.provisioning.workloads import database_step, service
from tests.provisioning.workloads import databases as seed_databases
from tests.stacks import evaluate


def test_passwords_are_only_in_their_0600_files_and_the_scan_would_see_a_copy(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases())
    first_run = len(STATS.runs)
    assert host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
    for db in plan.databases:
        step, stdin = database_step(plan, db)
        assert MARKER in stdin
        assert MARKER not in step.script
        assert host.step(step, stdin).code == 0

    for db in plan.databases:
        path = Path(secret_file(db.name, plan.paths))
        assert path.read_text() == secret_content(db, password_for(db.name))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert host.find_leaks(STATS.runs[first_run:]) == []

    # The scan is not blind: a readable copy of one secret is reported, and only that.
    copy = Path(plan.paths.data) / "leaked.env"
    shutil.copy(secret_file(plan.databases[0].name, plan.paths), copy)
    try:
        assert host.find_leaks([]) == [f"file {copy} (mode 600)"]
        copy.chmod(0o644)
        assert host.find_leaks([]) == [f"file {copy} (mode 644)"]
    finally:
        copy.unlink()


def test_exec_trace_holds_the_scripts_commands_and_no_password(host: SshHost) -> None:
    if not host.traced:
        pytest.skip("strace is not installed (or may not trace here): sshd runs untraced, no exec trace to read")
    plan = host.plan("alibaba", databases=seed_databases("production-mysql"))
    trace_from = host.trace_size()
    assert host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
    step, stdin = database_step(plan, plan.databases[0])
    assert host.step(step, stdin).code == 0  # installs the secret file
    assert host.step(step, stdin).code == 0  # compares it with stdin

    with host.trace.open("rb") as trace:
        trace.seek(trace_from)
        execs = [line for line in trace if b" execve(" in line]
    secret = secret_file(plan.databases[0].name, plan.paths).encode()
    # The commands that handled the secret ran as processes and were traced, with argv and env.
    assert any(b'"cmp", "-s", "' + secret + b'", "/dev/fd/' in line for line in execs)  # a pipe, not argv
    assert any(b'"mv", "-f", "' + secret in line for line in execs)
    # The Podman secret is made from the new password's file before that file takes its place.
    assert any(b'"secret", "create", "production-mysql", "' + secret + b'.pending"' in line for line in execs)
    assert [line for line in execs if MARKER.encode() in line] == []


def test_a_service_process_has_only_its_units_environment(host: SshHost) -> None:
    port = free_port()
    plan = host.plan("tencent", services=[service("alpha", port, host.release("1.0.0"))])
    assert host.step(services.bootstrap_step("app", plan.layout, plan.host_check, plan.services)).code == 0
    assert host.step(services.deploy_step("app", plan.layout, plan.services[0])).code == 0

    pid = host.service_pids()["platform-alpha.service"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")

    state, cache = host.standin_state / "systemd/lib", host.standin_state / "systemd/cache"  # %S, %C
    assert sorted(e.decode() for e in environ if e) == [
        f"CACHE_DIRECTORY={cache}/platform/alpha",  # set by systemd for CacheDirectory=
        f"HF_HOME={cache}/platform/alpha/huggingface",
        f"HOME={state}/platform/alpha",
        "HOST=127.0.0.1",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"PORT={port}",  # the unit's Environment=
        f"PWD={plan.paths.root}/alpha/releases/1.0.0",  # set by ExecStart's /bin/sh in WorkingDirectory
        f"STATE_DIRECTORY={state}/platform/alpha",  # set by systemd for StateDirectory=
        f"XDG_CACHE_HOME={cache}/platform/alpha",
    ]


def test_the_real_programs_commands_carry_the_secret_on_stdin_only(host: SshHost) -> None:
    stack = evaluate(
        "alibaba",
        databases=seed_databases("production-mysql", "production-redis"),
        paths=host.paths(),
        host={"hostKey": host.host_key, "memoryMib": 2048},
        # Replication's commands need running engines: tests/provisioning/test_replication.py;
        # the exporters' too: tests/provisioning/test_db_exporters.py.
        replication={"sources": []},
        monitoring={"enabled": False},
    )
    commands = remote_commands(stack)
    names = {f"alibaba-db-{name}" for name in ("production-mysql", "production-redis")}
    containers = sorted((c for c in commands if c.name in names), key=lambda c: c.name)
    assert [c.name for c in containers] == ["alibaba-db-production-mysql", "alibaba-db-production-redis"]
    for command in containers:
        assert ENGINE_PLACEHOLDER in command.stdin
        assert ENGINE_PLACEHOLDER not in command.create

    outcome = up(host, commands)

    assert {name: run.code if run else None for name, run in outcome.items()} == dict.fromkeys(outcome, 0)
    for name in ("production-mysql", "production-redis"):
        [path] = host.secrets.glob(f"{name}.*")
        stdin = next(c.stdin for c in containers if c.name.endswith(name))
        assert path.read_text() == stdin
