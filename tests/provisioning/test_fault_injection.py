"""Partial failures: a fault at each step of a deploy or of a password rotation, then the retry.

A stand-in fails one chosen call (``SshHost.inject``, ``standins/faults.sh``), or kills the script
at it as a dropped SSH session would. After the failed run the healthy release is serving (for a
database: the container runs on its previous unit); the retry, with the fault gone, converges (the
new release, or the new password and unit, live and healthy), and one more run changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from components import databases, services
from components.engines import secret_content, secret_file
from plan import Plan
from tests.provisioning.harness import Run, SshHost, free_port, password_for
from tests.provisioning.workloads import database_step, service
from tests.provisioning.workloads import databases as seed_databases

UNIT = "platform-alpha.service"


def version(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as response:
        return response.read().decode()


class App:
    """alpha serving release A; release B answers its health check with 503 while ``unhealthy`` exists."""

    def __init__(self, host: SshHost) -> None:
        self.host = host
        self.port = free_port()
        self.dir = Path(host.paths()["root"]) / "alpha"
        self.unhealthy = host.standin_state / "faults" / "unhealthy"
        self.b = host.release("B", f"unhealthy-while:{self.unhealthy}")
        plan = self.plan(host.release("A"))
        assert host.step(services.bootstrap_step("app", plan.layout, plan.host_check, plan.services)).code == 0
        first = self.deploy(host.release("A"))
        assert first.code == 0, first
        self.unit_a = (host.units / UNIT).read_text()
        self.pid_a = host.service_pids()[UNIT]

    def plan(self, release: dict[str, str], **fields: Any) -> Plan:
        return self.host.plan("tencent", services=[service("alpha", self.port, release, **fields)])

    def deploy(self, release: dict[str, str], **fields: Any) -> Run:
        plan = self.plan(release, **fields)
        return self.host.step(services.deploy_step("app", plan.layout, plan.services[0]))

    def deploy_b(self) -> Run:
        """B with a unit change too (its memory), so that a rollback has a unit to restore."""
        return self.deploy(self.b, memoryMib=96, healthTimeoutS=2)

    def link(self, name: str) -> str:
        return os.readlink(self.dir / name).removeprefix(f"{self.dir}/releases/")

    def serves_a(self) -> None:
        assert version(self.port) == "A"
        assert self.link("current") == "A"
        assert (self.dir / "healthy").read_text().startswith(f"{self.dir}/releases/A\n")
        assert (self.host.units / UNIT).read_text() == self.unit_a

    def converges_to_b(self) -> None:
        retry = self.deploy_b()
        assert retry.code == 0, retry
        assert retry.stdout == "alpha: B deployed, healthy\n"
        assert version(self.port) == "B"
        assert (self.link("current"), self.link("previous")) == ("B", "A")
        assert "MemoryMax=96M" in (self.host.units / UNIT).read_text()
        again = self.deploy_b()
        assert again.stdout == "alpha: B unchanged, healthy\n", again


# The call the fault matches, and how the failure message names it.
SERVICE_FAULTS = {
    "daemon-reload": ("daemon-reload", "daemon-reload"),
    "enable": (f"enable --quiet {UNIT}", f"enable {UNIT}"),
    "restart": (f"restart {UNIT}", f"restart {UNIT}"),
}


@pytest.mark.parametrize("step", [*SERVICE_FAULTS, "health"])
def test_a_deploy_failing_at_each_step_leaves_the_healthy_release_serving_and_the_retry_converges(
    host: SshHost, step: str
) -> None:
    app = App(host)
    if step == "health":
        app.unhealthy.parent.mkdir(exist_ok=True)
        app.unhealthy.touch()
    else:
        host.inject("systemctl", SERVICE_FAULTS[step][0])

    failed = app.deploy_b()

    assert failed.code == 7, failed
    if step == "health":
        assert f"alpha: B failed http://127.0.0.1:{app.port}/health within 2s (HTTP 503" in failed.stderr
    else:
        assert f"alpha: B failed: systemctl {SERVICE_FAULTS[step][1]}\n" in failed.stderr
    assert failed.stderr.endswith("alpha: rolled back to A, healthy\n"), failed
    app.serves_a()
    if step in ("daemon-reload", "enable"):
        assert host.service_pids()[UNIT] == app.pid_a  # failed before the restart: A never stopped

    app.unhealthy.unlink(missing_ok=True)
    app.converges_to_b()


def test_a_deploy_cut_short_after_the_switch_goes_back_to_the_healthy_release_not_to_current(host: SshHost) -> None:
    app = App(host)
    host.inject("systemctl", f"restart {UNIT}", action="kill")

    cut = app.deploy_b()

    assert cut.code != 0, cut
    assert "deployed" not in cut.stdout
    assert app.link("current") == "B"  # the switch had begun
    assert version(app.port) == "A"
    assert host.service_pids()[UNIT] == app.pid_a

    # B's first health check fails on the retry: what was healthy is A, not what current names.
    app.unhealthy.touch()
    retry = app.deploy_b()
    assert retry.code == 7, retry
    assert retry.stderr.endswith("alpha: rolled back to A, healthy\n"), retry
    app.serves_a()

    app.unhealthy.unlink()
    app.converges_to_b()


class Redis:
    """production-redis running with its first password; ``update`` rotates it and grows the memory."""

    def __init__(self, host: SshHost) -> None:
        self.host = host
        (self.entry,) = seed_databases("production-redis")
        self.name = self.entry["name"]
        plan = host.plan("alibaba", databases=[self.entry])
        assert host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
        first, self.old = database_step(plan, plan.databases[0])
        assert host.step(first, self.old).code == 0
        self.secret = Path(secret_file(self.name, plan.paths))
        self.unit = host.quadlet / f"{self.name}.container"
        self.old_unit = self.unit.read_text()
        self.memory = f"--memory={self.entry['memoryMib']}m"
        bigger = host.plan("alibaba", databases=[{**self.entry, "memoryMib": self.entry["memoryMib"] + 32}])
        self.step, _ = database_step(bigger, bigger.databases[0])
        self.new = secret_content(bigger.databases[0], f"{password_for(self.name)}-rotated")

    def update(self, stdin: str | None = None) -> Run:
        return self.host.step(self.step, self.new if stdin is None else stdin)

    def holds(self, password: str) -> None:
        """The file and the Podman secret both hold ``password``; no half-rotation is left over."""
        assert self.secret.read_text() == password
        assert self.host.podman_secret(self.name) == hashlib.sha256(password.encode()).hexdigest()
        assert not self.secret.with_name(f"{self.secret.name}.pending").exists()

    def runs_with(self, memory: str) -> None:
        container = self.host.container(self.name)
        assert container is not None
        assert container["status"] == "running"
        runs = [c for c in self.host.podman_calls() if c[:2] == ["run", f"--name={self.name}"]]
        assert memory in runs[-1]

    def converges(self) -> None:
        retry = self.update()
        assert retry.code == 0, retry
        assert retry.stdout == f"{self.name}: updated, healthy\n"
        self.holds(self.new)
        assert self.unit.read_text() != self.old_unit
        self.runs_with(f"--memory={self.entry['memoryMib'] + 32}m")
        again = self.update()
        assert again.stdout == f"{self.name}: unchanged, healthy\n", again


DATABASE_FAULTS = {
    "secret rm": ("podman", "secret rm production-redis"),
    "secret create": ("podman", "secret create production-redis *"),
    "daemon-reload": ("systemctl", "daemon-reload"),
    "restart": ("systemctl", "restart production-redis.service"),
}


@pytest.mark.parametrize("step", DATABASE_FAULTS)
def test_a_rotation_failing_at_each_step_leaves_the_database_running_and_the_retry_converges(
    host: SshHost, step: str
) -> None:
    redis = Redis(host)
    host.inject(*DATABASE_FAULTS[step])

    failed = redis.update()

    assert failed.code == 5, failed
    if step.startswith("secret"):
        # Before the switch: the previous password, unit and container, running again.
        kept = f"{redis.name}: could not replace its Podman secret; it keeps its previous password\n"
        assert failed.stderr.endswith(kept), failed
        redis.holds(redis.old)
    else:
        # After the rotation, which cannot be taken back: the previous unit, with the new password.
        assert failed.stderr.endswith(f"{redis.name}: rolled back to the previous unit, healthy\n"), failed
        redis.holds(redis.new)
    assert redis.unit.read_text() == redis.old_unit
    redis.runs_with(redis.memory)

    redis.converges()


def test_a_rotation_cut_short_before_the_podman_secret_changed_is_completed_by_the_next_run(host: SshHost) -> None:
    redis = Redis(host)
    host.inject("podman", "secret rm production-redis", action="kill")

    cut = redis.update()

    assert cut.code != 0, cut
    # The new password is not in the file yet: the file changes only after the Podman secret.
    assert redis.secret.read_text() == redis.old
    assert host.podman_secret(redis.name) == hashlib.sha256(redis.old.encode()).hexdigest()
    redis.converges()


def test_a_unit_change_cut_short_before_its_restart_is_restarted_by_the_next_run(host: SshHost) -> None:
    redis = Redis(host)
    before = host.container(redis.name)
    host.inject("systemctl", "daemon-reload", action="kill")

    cut = redis.update(redis.old)  # the same password: only the unit changes

    assert cut.code != 0, cut
    assert redis.unit.read_text() != redis.old_unit  # written, never loaded
    assert host.container(redis.name) == before
    retry = redis.update(redis.old)
    assert retry.stdout == f"{redis.name}: updated, healthy\n", retry
    redis.runs_with(f"--memory={redis.entry['memoryMib'] + 32}m")
