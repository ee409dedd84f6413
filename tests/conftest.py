"""Session-wide hooks: the provisioning suite's figures, and the layers that did not run.

``make test`` runs the suite on every core (``--numprocesses=auto``); each worker counts its own
script runs over SSH (``tests/provisioning/harness.py: STATS``) and hands them to the controller,
which prints one line for the whole run. Without xdist the session's own figures are printed.

A layer that cannot run here (no sshd, no real engine, no strace) skips its tests; the very last
lines of the run name each such reason, with how many tests it skipped, so a green run on a bare
machine never reads as a full one.

Shared fixtures: ``fresh_pulumi_runtime`` (an in-process program run on its own event loop);
``alibaba`` and ``tencent`` (each committed stack run under the mocks, once per module) and
``alibaba_plan`` and ``tencent_plan`` (their plans). A module that needs a stack with changes
evaluates it itself (``tests.stacks.evaluate``, ``plan_of``).
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

from plan import Plan
from tests.provisioning.harness import STATS
from tests.stacks import StackRun, evaluate, plan_of

_FROM_WORKERS: list[dict[str, float]] = []


@pytest.fixture
def fresh_pulumi_runtime() -> Iterator[None]:
    """Each in-process run on its own event loop and Pulumi settings.

    A run that crashes leaves the SDK's tasks pending on the loop and in its settings (``set_mocks``
    does not reset them), and the next run would fail with the old exception: a crash there could pass
    for a refusal here. ``reset_options`` is the SDK's own reset.
    """
    previous = asyncio.get_event_loop_policy().get_event_loop()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.reset_options()
    try:
        yield
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        pulumi.runtime.reset_options()
        asyncio.set_event_loop(previous)
        if pending:  # a crashed run: what it left behind is logged now, in this test's capture
            gc.collect()


@pytest.fixture(scope="module")
def alibaba() -> StackRun:
    return evaluate("alibaba")


@pytest.fixture(scope="module")
def tencent() -> StackRun:
    return evaluate("tencent")


@pytest.fixture(scope="module")
def alibaba_plan() -> Plan:
    return plan_of("alibaba")


@pytest.fixture(scope="module")
def tencent_plan() -> Plan:
    return plan_of("tencent")


def _figures() -> dict[str, float]:
    return {"runs": len(STATS.runs), "tests": STATS.tests, "seconds": sum(run.seconds for run in STATS.runs)}


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:  # an xdist worker
        output["provisioning"] = _figures()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    figures = getattr(node, "workeroutput", {}).get("provisioning")
    if figures:
        _FROM_WORKERS.append(figures)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    parts = _FROM_WORKERS or [_figures()]
    runs, tests, seconds = (sum(part[key] for part in parts) for key in ("runs", "tests", "seconds"))
    if not runs:
        return
    workers = f" on {len(parts)} workers" if _FROM_WORKERS else ""
    terminalreporter.write_line(
        f"provisioning: {runs:.0f} script runs over SSH in {tests:.0f} tests{workers}; "
        f"{seconds:.1f} s inside SSH sessions"
    )


def _skip_reasons(terminalreporter: Any) -> Counter[str]:
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            reasons[str(longrepr[2]).removeprefix("Skipped: ")] += 1
    return reasons


def pytest_unconfigure(config: pytest.Config) -> None:
    """After pytest's own last line: the layers that did not run, if any."""
    if hasattr(config, "workeroutput"):
        return
    terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
    if terminalreporter is None:
        return
    if config.getoption("markexpr") == "not drill":  # `make test`: xdist's workers deselect them
        terminalreporter.write_line(
            "NOT RUN HERE: the failure drills on the rehearsal's network (-m drill); `make rehearse` runs them",
            yellow=True,
        )
    reasons = _skip_reasons(terminalreporter)
    if not reasons:
        return
    terminalreporter.write_line(
        f"NOT RUN HERE: {sum(reasons.values())} tests skipped; `bash .ci/run` installs what they need:", yellow=True
    )
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"  {count:>3} skipped: {reason}", yellow=True)
