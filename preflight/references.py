"""What a stack's ``StackReference`` reads in the preview: the referenced stack, evaluated here.

The Tencent stack reads the Alibaba stack's ``replication`` outputs (``platform:replication.
sourceStack``). Offline there is no backend to ask, so the referenced stack's own file in the
same folder (``Pulumi.<last part of the name>.yaml``) is run through the program under the same
mocks first, and its recorded outputs are what the reference reads: nothing is copied by hand,
and a change to the Alibaba program shows in the Tencent preview.
"""

from __future__ import annotations

from pathlib import Path

import pulumi

from plan import load_plan
from preflight.engine import StackOutputs, run_stack
from preflight.stackfile import StackConfig, read_stack, with_plan_secrets


def stack_references(root: Path, config: StackConfig, seen: tuple[str, ...] = ()) -> dict[str, StackOutputs]:
    """The outputs of the stack ``config``'s plan references (none when it references none).

    Raises ``pulumi.RunError`` with one line when the reference cannot be served: another
    project, the stack itself (or a cycle), or no stack file for it in ``root``.
    """
    plan = load_plan(config.config, config.secret_keys)
    source = plan.source_stack
    if source is None:
        return {}
    key = f"platform:{plan.source_stack_key} {source!r}"
    parts = source.split("/")
    if len(parts) > 3:
        raise pulumi.RunError(f"{key}: expected <stack>, <organization>/<stack> or <organization>/<project>/<stack>")
    stack = parts[-1]
    if len(parts) == 3 and parts[1] != config.project:
        raise pulumi.RunError(f"{key}: names project {parts[1]!r}; the preview evaluates only {config.project!r}")
    if stack == config.stack or stack in seen:
        raise pulumi.RunError(f"{key}: refers back to {stack!r}; the source stack is the Alibaba one")
    if not (root / f"Pulumi.{stack}.yaml").is_file():
        raise pulumi.RunError(f"{key}: no Pulumi.{stack}.yaml beside Pulumi.{config.stack}.yaml to evaluate for it")
    referenced = read_stack(root, stack)
    referenced_plan = load_plan(referenced.config, referenced.secret_keys)
    referenced = with_plan_secrets(referenced, referenced_plan)
    nested = stack_references(root, referenced, (*seen, config.stack))
    run = run_stack(
        referenced.project, stack, referenced.config, set(referenced.secret_keys), references=nested or None
    )
    return {source: run.as_reference()}
