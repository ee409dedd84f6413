"""Session-wide hooks: the provisioning suite's figures, summed over pytest-xdist's workers.

``make test`` runs the suite on every core (``--numprocesses=auto``); each worker counts its own
script runs over SSH (``tests/provisioning/harness.py: STATS``) and hands them to the controller,
which prints one line for the whole run. Without xdist the session's own figures are printed.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.provisioning.harness import STATS

_FROM_WORKERS: list[dict[str, float]] = []


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
