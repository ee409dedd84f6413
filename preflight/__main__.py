"""``python -m preflight [STACK ...] [--format text|json|markdown|sarif] [--policy-pack-config FILE]``.

Runs the Pulumi program for each stack under Pulumi's mock engine with the real provider
SDKs, evaluates the policy pack (``policies/``) over what the engine recorded exactly as
``pulumi preview --policy-pack policies`` would, and prints the resource tree, each host's
plan, capacity and firewall rules, and the violations by level. Nothing reaches a cloud;
secrets are labelled placeholders.

Exit status: 0 when no mandatory policy is violated, 1 when one is, 2 when a stack or the
pack config cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pulumi
from rich.console import Console

from plan import PlanError, load_plan
from preflight import policy_report, report
from preflight.capacity import capacity
from preflight.engine import CloudMocks, run_stack
from preflight.policy import OutputMonitor, PackConfigError, evaluate, load_pack
from preflight.stackfile import StackFileError, available_stacks, read_stack, with_missing_secrets

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m preflight", description="The offline preview of the Pulumi stacks, with the policy pack."
    )
    parser.add_argument("stacks", nargs="*", metavar="STACK", help="stack names (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--format", choices=("text", "json", "markdown", "sarif"), default="text")
    parser.add_argument(
        "--policy-pack-config", type=Path, metavar="FILE", help="JSON policy config, as for `pulumi preview`"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the folder with Pulumi.yaml and the stack files")
    args = parser.parse_args(argv)

    stacks = args.stacks or available_stacks(args.root)
    if not stacks:
        parser.error(f"no Pulumi.<stack>.yaml in {args.root}")
    try:
        pack = load_pack(args.policy_pack_config)
    except (PackConfigError, OSError) as error:
        print(f"error: policy pack config: {error}", file=sys.stderr)
        return 2
    previews = []
    for stack in stacks:
        try:
            config = read_stack(args.root, stack)
            plan = load_plan(config.config, config.secret_keys)
            config = with_missing_secrets(config, tuple(db.name for db in plan.databases))
            monitor = OutputMonitor(CloudMocks())
            run = run_stack(config.project, stack, config.config, set(config.secret_keys), monitor=monitor)
        except (StackFileError, PlanError, pulumi.RunError) as error:
            print(f"error: stack {stack}: {error}", file=sys.stderr)
            return 2
        previews.append(report.Preview(config, run, tuple(evaluate(run, pack)), tuple(capacity(run, pack))))

    if args.format == "json":
        document = [p.as_json() for p in previews]
        _write_json(document[0] if len(document) == 1 else document)
    elif args.format == "sarif":
        _write_json(policy_report.sarif(previews, pack))
    elif args.format == "markdown":
        sys.stdout.write(policy_report.markdown(previews, pack))
    else:
        console = Console(width=120)
        for preview in previews:
            report.print_text(preview, console)
            policy_report.print_text(preview, pack, console)
    return 1 if policy_report.mandatory(previews) else 0


def _write_json(document: object) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main())
