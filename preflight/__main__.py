"""``python -m preflight [STACK ...] [--format text|json|markdown|sarif] [--policy-pack-config FILE] [--from OLD]``.

Runs the Pulumi program for each stack under Pulumi's mock engine with the real provider
SDKs, evaluates the policy pack (``policies/``) over what the engine recorded exactly as
``pulumi preview --policy-pack policies`` would, and prints the resource tree, each host's
plan, capacity and firewall rules, and the violations by level. Nothing reaches a cloud;
secrets are labelled placeholders.

Exit status: 0 when no mandatory policy is violated, 1 when one is, 2 when a stack or the
pack config cannot be read. Whatever a stack file holds, a failure is one line on stderr and
exit 2, never a traceback: exit 1 means a mandatory violation and nothing else.

With ``--from OLD`` (a stack file, or a git revision such as ``origin/main``) it prints only
what ``pulumi up`` would do to a state OLD produced: per resource same, create, update, replace,
delete or retire, what runs on the host, and the hazards (``preflight/diff.py``); the policy pack
does not run. Exit status: 0 without hazards, 1 with one, 2 when OLD or a stack cannot be read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import pulumi
import yaml
from rich.console import Console

from plan import PlanError, effective_config, load_plan
from plan_values import one_line
from preflight import diff, policy_report, report, revision
from preflight.capacity import capacity
from preflight.engine import CloudMocks, DuplicateUrnError, StackRun, run_stack
from preflight.policy import OutputMonitor, Pack, PackConfigError, evaluate, load_pack
from preflight.references import stack_references
from preflight.stackfile import (
    StackConfig,
    StackFileError,
    available_stacks,
    check_project_keys,
    project_name,
    read_stack,
    read_stack_file,
    with_plan_secrets,
)

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except Exception as error:  # the one place every failure becomes exit 2
        # Only the kind of failure: its text could quote a value of the stack file.
        if os.environ.get("PREFLIGHT_DEBUG"):
            raise
        print(
            f"error: the stacks could not be evaluated ({type(error).__name__}); the config is not a valid plan. "
            "Set PREFLIGHT_DEBUG=1 for the traceback",
            file=sys.stderr,
        )
        return 2


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m preflight", description="The offline preview of the Pulumi stacks, with the policy pack."
    )
    parser.add_argument("stacks", nargs="*", metavar="STACK", help="stack names (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--format", choices=("text", "json", "markdown", "sarif"), default="text")
    parser.add_argument(
        "--policy-pack-config", type=Path, metavar="FILE", help="JSON policy config, as for `pulumi preview`"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the folder with Pulumi.yaml and the stack files")
    parser.add_argument(
        "--from",
        dest="source",
        metavar="OLD",
        help="a stack file or a git revision (origin/main): print only what `pulumi up` would do to its state",
    )
    parser.add_argument(
        "--plan", action="store_true", help="print each stack's effective plan (defaults filled in) as YAML"
    )
    args = parser.parse_args(argv)

    stacks = args.stacks or available_stacks(args.root)
    if not stacks:
        parser.error(f"no Pulumi.<stack>.yaml in {args.root}")
    if args.plan:
        return _plan_main(stacks, args.root)
    if args.source is not None:
        return _diff_main(args.source, args.stacks, stacks, args.root, args.format)
    try:
        pack = load_pack(args.policy_pack_config)
    except (PackConfigError, OSError) as error:
        print(f"error: policy pack config: {error}", file=sys.stderr)
        return 2
    previews: list[report.Preview] = []
    failed: list[report.Failure] = []
    for stack in stacks:
        try:
            previews.append(_preview(args.root, stack, pack))
        except (StackFileError, PlanError, pulumi.RunError, DuplicateUrnError) as error:
            failed.append(report.Failure(stack, f"error: stack {stack}: {one_line(str(error))}"))
    # Each stack that cannot be evaluated is one line on stderr; the others are still reported.
    for failure in failed:
        print(failure.line, file=sys.stderr)

    if args.format == "json":
        if previews:
            document = [p.as_json() for p in previews]
            _write_json(document[0] if len(document) == 1 else document)
    elif args.format == "sarif":
        _write_json(policy_report.sarif(previews, pack))
    elif args.format == "markdown":
        # The comment shows every stack, an unreadable one as its line, and keeps its marker.
        sys.stdout.write(policy_report.markdown(previews, pack, failed))
    else:
        console = Console()
        for preview in previews:
            report.print_text(preview, console)
            policy_report.print_text(preview, pack, console)
    if failed:
        return 2
    return 1 if policy_report.mandatory(previews) else 0


def _preview(root: Path, stack: str, pack: Pack) -> report.Preview:
    config = read_stack(root, stack)
    plan = load_plan(config.config, config.secret_keys)
    config = with_plan_secrets(config, plan)
    references = stack_references(root, config)
    monitor = OutputMonitor(CloudMocks(stack_outputs=references))
    run = run_stack(config.project, stack, config.config, set(config.secret_keys), monitor=monitor)
    return report.Preview(
        config, run, tuple(evaluate(run, pack)), tuple(capacity(run, pack)), examples=plan.example_values()
    )


def _plan_main(stacks: list[str], root: Path) -> int:
    """``--plan``: each stack's effective plan, as a stack file would spell it in full."""
    documents = []
    for stack in stacks:
        try:
            config = read_stack(root, stack)
            plan = load_plan(config.config, config.secret_keys)
        except (StackFileError, PlanError) as error:
            print(f"error: stack {stack}: {one_line(str(error))}", file=sys.stderr)
            return 2
        documents.append(effective_config(plan))
    sys.stdout.write(yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True, width=1000))
    return 0


def _diff_main(source: str, named: list[str], stacks: list[str], root: Path, output: str) -> int:
    """``--from OLD``: the engine's steps from OLD's state to this tree's program, per stack."""
    if output == "sarif":
        print("error: --from prints text, json or markdown, not sarif", file=sys.stderr)
        return 2
    path = Path(source)
    try:
        if path.is_file():
            diffs = _from_file(path, _file_stacks(path, named, stacks), root)
        else:
            diffs = _from_revision(source, stacks, root)
    except _InputError as failed:
        print(failed, file=sys.stderr)
        return 2
    if output == "json":
        document = [diff.as_json(d) for d in diffs]
        _write_json(document[0] if len(document) == 1 else document)
    elif output == "markdown":
        sys.stdout.write(diff.markdown(diffs))
    else:
        console = Console()
        for one in diffs:
            diff.print_text(one, console)
    return 1 if any(d.hazards for d in diffs) else 0


class _InputError(Exception):
    """Bad input for --from: the one line to print."""


def _file_stacks(path: Path, named: list[str], stacks: list[str]) -> list[str]:
    """A stack file is one stack's config: the stack named, or the one its file name says."""
    if len(named) == 1:
        return named
    guessed = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    if not named and guessed in stacks and path.name == f"Pulumi.{guessed}.yaml":
        return [guessed]
    raise _InputError(f"error: --from {path}: a stack file holds one stack's config; name the stack it is for")


def _from_file(path: Path, stacks: list[str], root: Path) -> list[diff.Diff]:
    """OLD is this program with another stack file: what changing only the config does."""
    signatures = diff.script_signatures(diff.SCRIPTS)
    diffs = []
    for stack in stacks:
        new = _new_run(root, stack)
        try:
            config = read_stack_file(path, project_name(root), stack)
            check_project_keys(config)
            old = _program_run(config, root)
        except (StackFileError, PlanError, pulumi.RunError, DuplicateUrnError) as error:
            raise _InputError(f"error: --from {path}: {one_line(str(error))}") from None
        diffs.append(dataclasses.replace(diff.steps(old, new), source=str(path), scripts=signatures))
    return diffs


def _from_revision(source: str, stacks: list[str], root: Path) -> list[diff.Diff]:
    """OLD is a git revision: its code and its stack file, as they produced the state."""
    diffs = []
    try:
        with revision.checkout(root, source, project_name(root)) as tree:
            signatures = diff.script_signatures(diff.SCRIPTS, tree / "components" / "scripts")
            for stack in stacks:
                new = _new_run(root, stack)
                old, notes = revision.evaluate(tree, stack, source, root)
                found = diff.steps(old, new)
                diffs.append(dataclasses.replace(found, source=source, notes=notes, scripts=signatures))
    except revision.RevisionError as error:
        raise _InputError(f"error: --from {source}: {error}") from None
    return diffs


def _new_run(root: Path, stack: str) -> StackRun:
    try:
        return _program_run(read_stack(root, stack), root)
    except (StackFileError, PlanError, pulumi.RunError, DuplicateUrnError) as error:
        raise _InputError(f"error: stack {stack}: {one_line(str(error))}") from None


def _program_run(config: StackConfig, root: Path) -> StackRun:
    """This tree's program over a stack's config, placeholder secrets filled in as for the preview;
    a stack it references is evaluated from its file in ``root``."""
    plan = load_plan(config.config, config.secret_keys)
    config = with_plan_secrets(config, plan)
    references = stack_references(root, config)
    return run_stack(config.project, config.stack, config.config, set(config.secret_keys), references=references)


def _write_json(document: object) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    status = main()
    # End without interpreter finalizers: the event loop the Pulumi SDK leaves behind can fail in
    # its __del__ at shutdown (its selector already gone) and print a traceback after the one-line
    # error. Everything this tool writes is flushed first; nothing else needs the finalizers.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
