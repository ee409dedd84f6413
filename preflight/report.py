"""Printing a preview: rich tables for people, JSON for tools (policy verdicts: policy_report.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from preflight import inspect
from preflight.capacity import Capacity
from preflight.engine import StackRun
from preflight.policy import Violation
from preflight.stackfile import StackConfig
from preflight.tables import print_table


@dataclass(frozen=True)
class Failure:
    """A stack that could not be evaluated: its one line, as printed on stderr."""

    stack: str
    line: str


@dataclass(frozen=True)
class Preview:
    config: StackConfig
    run: StackRun
    violations: tuple[Violation, ...] = ()
    capacity: tuple[Capacity, ...] = ()
    examples: tuple[tuple[str, str], ...] = ()
    """Placeholders the stack file still holds (key, why): a real run refuses them."""

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.run.stack,
            "placeholderSecrets": sorted(self.config.placeholders),
            "resources": [
                {
                    "type": r.type,
                    "name": r.name,
                    "urn": r.urn,
                    "parent": r.parent,
                    "custom": r.custom,
                    "protect": r.protect,
                    "importId": r.import_id or None,
                    "inputs": inspect.redacted(r.inputs),
                }
                for r in self.run.resources
            ],
            "hosts": inspect.hosts(self.run),
            "firewall": inspect.firewall_rules(self.run),
            "outputs": inspect.redacted(self.run.outputs),
            "capacity": [c.as_json() for c in self.capacity],
            "toReplace": [{"key": key, "why": why} for key, why in self.examples],
            "warnings": list(self.run.warnings),
            "violations": [v.as_json() for v in self.violations],
        }


def print_text(preview: Preview, console: Console | None = None) -> None:
    console = console or Console()
    run = preview.run
    console.rule(f"[bold]stack {run.stack}[/] (offline preview: mock engine, real provider SDKs)")
    if preview.config.placeholders:
        keys = ", ".join(sorted(preview.config.placeholders))
        console.print(f"secrets are labelled placeholders here, not your values: {keys}")
    if preview.examples:
        count = len(preview.examples)
        console.print(f"[bold yellow]to replace before the first `pulumi up`[/] ({count}; a real run stops at them):")
        for key, why in preview.examples:
            console.print(escape(f"  {key}: {why}"), soft_wrap=True)
    console.print(_tree(run))
    for host in inspect.hosts(run):
        print_table(console, _host_table(host))
    print_table(console, _rules_table(inspect.firewall_rules(run)))
    if run.warnings:
        console.print(f"[bold yellow]the program's warnings[/] ({len(run.warnings)}):")
        for warning in run.warnings:
            console.print(escape(f"  warning: {warning}"), soft_wrap=True)


def _tree(run: StackRun) -> Tree:
    root = Tree(f"{run.project}-{run.stack} (pulumi:pulumi:Stack)")
    nodes: dict[str, Tree] = {}
    for resource in sorted(run.resources, key=lambda r: r.urn.count("$")):  # parents before children
        marks = [
            m for m, on in (("protected", resource.protect), (f"import {resource.import_id}", resource.import_id)) if on
        ]
        label = f"{resource.name} [dim]({resource.type})[/]" + (f" [yellow]{', '.join(marks)}[/]" if marks else "")
        nodes[resource.urn] = nodes.get(resource.parent, root).add(label)
    return root


def _host_table(host: dict[str, Any]) -> Table:
    memory = host["memory"]
    table = Table(
        title=f"{host['name']}: {host['cloud']} host ({host['mode']}), memory "
        f"used {memory['usedMib']} + OS reserve {memory['osReserveMib']} / limit {memory['limitMib']} / "
        f"free {memory['freeMib']} MiB",
        title_justify="left",
    )
    for column in ("workload", "role", "ports", "memory MiB"):
        table.add_column(column, justify="right" if column == "memory MiB" else "left", no_wrap=column != "ports")
    for workload in host["workloads"]:
        ports = ", ".join(f"{int(p['port'])}/{p['protocol']} ({p['expose']})" for p in workload["ports"]) or "-"
        table.add_row(workload["name"], workload["role"], ports, str(int(workload["memoryMib"])))
    return table


def _rules_table(rules: list[dict[str, Any]]) -> Table:
    table = Table(title="firewall rules (as registered)", title_justify="left")
    for column in ("direction", "action", "protocol", "port", "cidr", "order", "description"):
        table.add_column(column, no_wrap=column != "description")
    for rule in rules:
        table.add_row(
            rule["direction"],
            rule["action"],
            rule["protocol"],
            "all" if rule["port"] is None else str(rule["port"]),
            str(rule["cidr"]),
            str(rule["order"]),
            rule["description"],
        )
    return table
