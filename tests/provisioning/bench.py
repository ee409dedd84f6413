"""Figures for the provisioning suite: how many script scenarios run over SSH, and how long it takes.

    .venv/bin/python -m tests.provisioning.bench [pytest arguments]

Runs ``tests/provisioning`` once and prints what was run over SSH, per script, the upgrade
drill's scenarios with their time, and the wall time. Figures, not assertions: the suite's own
tests decide pass or fail.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest

from components.provisioning import SCRIPTS
from preflight.diff import script_signatures, scripts_in
from tests.provisioning.harness import STATS, Run

HERE = Path(__file__).resolve().parent


def script_names(run: Run, signatures: dict[str, str]) -> str:
    """Which scripts a command ran, recognised as ``preflight --from`` recognises them."""
    return " + ".join(scripts_in(run.command, signatures)) or "(other)"


def print_figures(title: str, headings: tuple[str, str], rows: Sequence[tuple[str, float, float]]) -> None:
    """One table of two figures per engine, when its tests ran."""
    if not rows:
        return
    print()
    print(f"{title:<46} {headings[0]:>12} {headings[1]:>10}")
    for engine, first, second in rows:
        print(f"{engine:<46} {first:>12.6g} {second:>10.2f}")


def print_data_plane_figures() -> None:
    """Backups: each engine's backup size and its run's time inside the SSH session
    (tests/provisioning/test_backups.py, small data). Replication: the replica step's first sync
    and how long a killed replica took to catch up with 500 writes made while it was down
    (tests/provisioning/test_replication.py). Real engines on loopback, both."""
    # Imported here, after pytest has run (and filled) the modules.
    from tests.provisioning.test_backups import FIGURES
    from tests.provisioning.test_monitoring_loopback import RESIDENT
    from tests.provisioning.test_monitoring_network import NOTICED
    from tests.provisioning.test_replication import CATCH_UP

    print_figures("backup (real engines on loopback)", ("bytes", "run s"), FIGURES)
    print_figures("replication (real engines on loopback)", ("first sync s", "catch-up s"), CATCH_UP)
    # Each monitoring program's resident memory on the loopback run, next to the plan's limit for it.
    print_figures("monitoring program (Debian's, on loopback)", ("RSS MiB", "limit MiB"), RESIDENT)
    # How long each failure on the rehearsal's network took to be noticed, with the test's faster clock.
    print_figures("noticed on the rehearsal (scrape 1 s, for 1m)", ("seconds", "bound s"), NOTICED)


def main(arguments: list[str]) -> int:
    started = time.monotonic()
    code = pytest.main(["-q", "-p", "no:cacheprovider", str(HERE), *arguments])
    wall = time.monotonic() - started
    by_script: dict[str, list[Run]] = defaultdict(list)
    signatures = script_signatures(SCRIPTS)
    for run in STATS.runs:
        by_script[script_names(run, signatures)].append(run)
    print()
    print(f"{'scripts run over SSH':<46} {'runs':>5} {'exit≠0':>6} {'mean s':>7} {'max s':>6}")
    for name, runs in sorted(by_script.items()):
        failed = sum(run.code != 0 for run in runs)
        seconds = [run.seconds for run in runs]
        print(f"{name:<46} {len(runs):>5} {failed:>6} {sum(seconds) / len(seconds):>7.2f} {max(seconds):>6.2f}")
    print(f"{'total':<46} {len(STATS.runs):>5}")
    if STATS.scenarios:
        print()
        print(f"{'upgrade drill scenario (preflight --from, then SSH)':<66} {'runs':>5} {'s':>6}")
        for name, runs, seconds in STATS.scenarios:
            print(f"{name:<66} {runs:>5} {seconds:>6.2f}")
        total = sum(seconds for _, _, seconds in STATS.scenarios)
        print(f"{len(STATS.scenarios)} drill scenarios in {total:.1f} s")
    print_data_plane_figures()
    inside = sum(run.seconds for run in STATS.runs)
    print(
        f"{STATS.tests} tests, {len(STATS.runs)} script scenarios over SSH, "
        f"{inside:.1f} s inside SSH sessions, {wall:.1f} s wall (pytest exit {int(code)})"
    )
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
