"""The upgrade drill: run what ``preflight --from`` derives, in the engine's order, over SSH.

A scenario evaluates the real program twice under the mock engine (the plan before and the plan
after a change), lets ``preflight.diff.steps`` derive the engine's steps from the two runs, and
runs exactly the host commands those steps carry, by their place in the deployment: creates,
updates and replacements first, deletes last. A command whose dependency failed is not started,
as ``pulumi up`` leaves it. The stdin of a create or update is the new registration's, of a
delete the old one's (the state's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from preflight.diff import Diff, steps
from preflight.engine import StackRun, unwrap
from tests.provisioning.harness import STATS, Run, SshHost
from tests.stacks import evaluate

_FROM_NEW = ("create", "update", "create-replacement")


@dataclass
class Applied:
    """What one ``pulumi up`` ran on the host: each run by step name and phase, in order."""

    diff: Diff
    runs: list[tuple[str, str, Run | None]] = field(default_factory=list)
    """(step, phase, result); None when a failed dependency kept it from starting."""

    def ran(self) -> list[tuple[str, str]]:
        return [(name, phase) for name, phase, run in self.runs if run is not None]

    def failed(self) -> list[str]:
        return [name for name, _, run in self.runs if run is not None and run.code != 0]

    def result(self, name: str) -> Run:
        found = [run for step, _, run in self.runs if step == name and run is not None]
        assert len(found) == 1, f"{name} ran {len(found)} times"
        return found[0]


def program_on(host: SshHost, stack: str, **changes: Any) -> StackRun:
    """The real program for ``stack`` with its plan pointed at the loopback host.

    Without replication sources: their commands need running engines, which the upgrade drill's
    stand-in containers are not (tests/provisioning/test_replication.py runs them against real ones).
    Without monitoring unless asked: its programs would hold their ports on this machine for every
    scenario (tests/provisioning/test_monitoring_loopback.py and test_db_exporters.py run them).
    """
    host_fields = {"hostKey": host.host_key, "memoryMib": 2048, "sshUser": "root"}
    changes = {"monitoring": {"enabled": False}, **changes}
    if stack == "alibaba":
        changes = {"replication": {"sources": []}, **changes}
    return evaluate(stack, paths=host.paths(), host=host_fields, **changes)


def nothing(run: StackRun) -> StackRun:
    """The state before the first ``up``."""
    return StackRun(run.project, run.stack, [], {})


def up(host: SshHost, old: StackRun, new: StackRun) -> Applied:
    """One ``pulumi up`` from OLD's state to NEW's program, run for real over SSH."""
    diff = steps(old, new)
    applied = Applied(diff)
    step_at = {s.new.urn: s.name for s in diff.steps if s.new is not None}
    failed: set[str] = set()
    ordered = sorted(((run.order, step, run) for step in diff.steps for run in step.runs), key=lambda r: r[0])
    for _, step, host_run in ordered:
        if step.new is not None and any(step_at.get(urn) in failed for urn in step.new.dependencies):
            applied.runs.append((step.name, host_run.phase, None))
            failed.add(step.name)
            continue
        source = step.new if host_run.phase in _FROM_NEW else step.old
        assert source is not None
        stdin = unwrap(source.inputs).get("stdin") or ""
        result = host.run(host_run.command, stdin, label=f"{step.name}:{host_run.phase}")
        applied.runs.append((step.name, host_run.phase, result))
        if result.code != 0:
            failed.add(step.name)
    return applied


@dataclass
class Scenario:
    """Times one drill scenario for ``make bench``."""

    name: str
    started: float = field(default_factory=time.monotonic)
    first_run: int = field(default_factory=lambda: len(STATS.runs))

    def done(self) -> None:
        STATS.scenarios.append((self.name, len(STATS.runs) - self.first_run, time.monotonic() - self.started))
