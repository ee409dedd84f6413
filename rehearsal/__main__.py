"""``python -m rehearsal``: the flow table; exit 0 when every flow is as the plans say, 1 when one is
not, 2 when the stacks cannot be evaluated or the rehearsal cannot run here (one line saying why)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.table import Table

from rehearsal import differences, evaluate, peer_ports, rehearse
from rehearsal.flows import ADDRESSES
from rehearsal.network import cannot_run


def main() -> int:
    console = Console(width=max(Console().width, 100))
    reason = cannot_run()
    if reason is not None:
        print(f"NOT RUN HERE: the rehearsal {reason}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        stacks = evaluate()
    except Exception as error:
        print(f"error: the rehearsal's stacks: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    results = rehearse(stacks)
    addresses = ", ".join(f"{name} {address}" for name, address in ADDRESSES.items())
    table = Table(title="Flows on the rehearsal network", caption=addresses)
    for column in ("from", "to", "port", "what listens", "expected", "seen", ""):
        table.add_column(column, no_wrap=True)
    for result in results:
        flow = result.flow
        table.add_row(
            flow.source,
            flow.destination,
            f"{flow.port}/{flow.protocol}",
            flow.what,
            "open" if flow.expected else "refused",
            "open" if result.seen else "refused",
            "ok" if result.as_planned else "[bold red]DIFFERS[/]",
        )
    console.print(table)
    wrong = differences(results)
    elapsed = time.monotonic() - started
    open_count = sum(result.seen for result in results)
    console.print(
        f"{len(results)} flows, {open_count} open, {len(results) - open_count} refused, "
        f"{len(wrong)} not as the plans say; {elapsed:.1f} s"
    )
    for name, stack in stacks.items():
        opened = peer_ports(stack)
        engines = {db.name for db in stack.plan.databases} | {w.name for w in stack.plan.existing if w.database}
        databases = {port: what for port, what in opened.items() if what in engines}
        others = ", ".join(f"{port} {what}" for port, what in sorted(opened.items()) if port not in databases)
        console.print(
            f"{name}: its group opens {len(opened)} ports to the peer: {len(databases)} database ports"
            + (f" and {others}" if others else "")
        )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
