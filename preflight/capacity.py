"""Each host's capacity report: the seeds' capacity analysis, done by the pack's own arithmetic.

The figures come from ``policies.memory_budget.assess`` with the reserve and headroom the pack
is configured with, so the report and the memory-budget / memory-headroom verdicts agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.memory_budget import Assessment, assess
from preflight.engine import StackRun, unwrap
from preflight.inspect import HOST_COMPONENT
from preflight.policy import Pack


@dataclass(frozen=True)
class Capacity:
    stack: str
    assessment: Assessment
    headroom_percent: float

    @property
    def verdict(self) -> str:
        found = self.assessment
        if not found.fits:
            return f"refused: short by {-found.free_mib} MiB"
        note = "" if found.free_percent >= self.headroom_percent else f", below the {self.headroom_percent:g}% headroom"
        return f"fits: buffer {found.free_mib} MiB ({found.free_percent:.1f}% of usable{note})"

    def line(self) -> str:
        found = self.assessment
        return (
            f"{found.host} ({found.cloud}): usable {found.limit_mib} MiB; workloads {found.used_mib} MiB + "
            f"OS reserve {found.reserve_mib} MiB = {found.needed_mib} MiB -> {self.verdict}"
        )

    def as_json(self) -> dict[str, Any]:
        found = self.assessment
        return {
            "host": found.host,
            "cloud": found.cloud,
            "limitMib": found.limit_mib,
            "usedMib": found.used_mib,
            "osReserveMib": found.reserve_mib,
            "freeMib": found.free_mib,
            "fits": found.fits,
            "verdict": self.verdict,
            "largest": found.largest(),
        }


def capacity(run: StackRun, pack: Pack) -> list[Capacity]:
    """One report per Host component, from the plan it registered."""
    config = pack.properties("memory-budget")
    headroom = float(pack.properties("memory-headroom")["headroomPercent"])
    return [
        Capacity(run.stack, assess(host.name, unwrap(host.inputs["plan"]), config), headroom)
        for host in run.of_type(HOST_COMPONENT)
    ]
