"""Create a stack's remote commands over SSH in the order the Pulumi engine would.

The commands and their dependencies come from the real program evaluated under the mock
engine (``tests.stacks.evaluate``): the same ``create`` text and stdin the engine would send.
A command starts once everything it depends on was created; one whose dependency failed is
never started, as ``pulumi up`` leaves it. Commands that are ready together run in parallel.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from policies.facts import COMMAND
from preflight.engine import StackRun, unwrap
from tests.provisioning.harness import Run, SshHost


@dataclass(frozen=True)
class RemoteCommand:
    name: str
    create: str
    delete: str | None
    stdin: str
    depends_on: frozenset[str]


def remote_commands(stack: StackRun) -> list[RemoteCommand]:
    """The stack's commands; each depends on the commands it waits for (a cloud resource, such
    as the backup bucket, is there once the mock engine registered it)."""
    remote = stack.of_type(COMMAND)
    names = {r.urn: r.name for r in remote}
    commands = []
    for resource in remote:
        inputs = unwrap(resource.inputs)
        commands.append(
            RemoteCommand(
                name=resource.name,
                create=inputs["create"],
                delete=inputs.get("delete"),
                stdin=inputs.get("stdin") or "",
                depends_on=frozenset(names[urn] for urn in resource.dependencies if urn in names),
            )
        )
    return commands


def up(host: SshHost, commands: list[RemoteCommand]) -> dict[str, Run | None]:
    """Run every command's create; the result per command (None: never started)."""
    by_name = {c.name: c for c in commands}
    outcome: dict[str, Run | None] = {}
    pending = set(by_name)
    with ThreadPoolExecutor(max_workers=8) as pool:
        while pending:  # each round settles at least one command, or the graph has a cycle
            ready = sorted(n for n in pending if by_name[n].depends_on <= outcome.keys())
            assert ready, f"dependency cycle among {sorted(pending)}"
            blocked = [n for n in ready if any(_failed(outcome[d]) for d in by_name[n].depends_on)]
            for name in blocked:
                outcome[name] = None
            runnable = [n for n in ready if n not in blocked]
            runs = pool.map(lambda n: host.run(by_name[n].create, by_name[n].stdin, label=n), runnable)
            outcome.update(zip(runnable, runs, strict=True))
            pending -= set(ready)
    return outcome


def _failed(run: Run | None) -> bool:
    return run is None or run.code != 0
