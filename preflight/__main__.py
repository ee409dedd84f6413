"""``python -m preflight [STACK ...] [--format text|json]``: the offline preview.

Runs the Pulumi program for each stack under Pulumi's mock engine with the real provider
SDKs, and prints the resource tree, each host's plan and the firewall rules. Nothing reaches
a cloud; secrets are labelled placeholders.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pulumi

from plan import PlanError, load_plan
from preflight import report
from preflight.engine import run_stack
from preflight.stackfile import StackFileError, available_stacks, read_stack, with_missing_secrets

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m preflight", description="The offline preview of the Pulumi stacks."
    )
    parser.add_argument("stacks", nargs="*", metavar="STACK", help="stack names (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    stacks = args.stacks or available_stacks(args.root)
    if not stacks:
        parser.error(f"no Pulumi.<stack>.yaml in {args.root}")
    previews = []
    for stack in stacks:
        try:
            config = read_stack(args.root, stack)
            plan = load_plan(config.config, config.secret_keys)
            config = with_missing_secrets(config, tuple(db.name for db in plan.databases))
            run = run_stack(config.project, stack, config.config, set(config.secret_keys))
        except (StackFileError, PlanError, pulumi.RunError) as error:
            print(f"error: stack {stack}: {error}", file=sys.stderr)
            return 2
        previews.append(report.Preview(config, run))

    if args.format == "json":
        document = [p.as_json() for p in previews]
        json.dump(document[0] if len(document) == 1 else document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for preview in previews:
            report.print_text(preview)
    return 0


if __name__ == "__main__":
    sys.exit(main())
