"""safe-lifecycle: no replacement or destroy takes a workload, its data or the host's firewall down.

The engine's second ``up`` runs steps the registrations only imply:

- pulumi-command's SDK merges ``replaceOnChanges: ["triggers[*]"]`` into every ``Command``, so a
  changed trigger *replaces* the command: the new ``create`` runs, then the OLD ``delete`` from
  state (with ``deleteBeforeReplace``, that delete runs first). A command whose ``delete`` stops,
  disables or removes a workload or its data (``_scan.workload_stops``) must therefore have no
  ``triggers`` and no ``deleteBeforeReplace``: removal belongs to an explicit retire command.
- A Tencent ``GroupRuleSet`` is authoritative: deleting it writes an empty rule set to its group.
  On a group this stack did not create (an adopted host's group), a destroy, a rename or a
  corrected group id does exactly that, which blocks all traffic to the host, SSH included; such
  a rule set must be ``protect``ed.

One stack policy does both: it sees every resource with its outputs (a command's state holds its
``create``/``delete``/``triggers``), its property dependencies and its options (``protect``,
``deleteBeforeReplace``). ``replaceOnChanges`` and ``retainOnDelete`` are not among the options
the engine hands analyzers, so the forced ``triggers[*]`` is inferred from the resource type.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._common import UNKNOWN, known
from ._rules import TENCENT_RULE_SET
from ._scan import workload_stops
from .facts import COMMAND, LOCAL_COMMAND, TENCENT_GROUP

# The command types whose SDK forces replaceOnChanges on triggers and which run a delete.
COMMANDS_WITH_DELETE = (COMMAND, LOCAL_COMMAND)
_STOPS = "delete stops or removes a workload"


def check(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for resource in args.resources:
        if resource.resource_type in COMMANDS_WITH_DELETE:
            for message in command_problems(resource):
                report_violation(message, resource.urn)
        elif resource.resource_type == TENCENT_RULE_SET and adopted(resource) and not resource.opts.protect:
            report_violation(
                "authoritative rule set on an adopted group is not protected: a destroy, a rename or a corrected "
                "group id writes an empty rule set, which blocks all traffic to the host, SSH included",
                resource.urn,
            )


def command_problems(resource: PolicyResource) -> list[str]:
    """What makes this command's destructive delete run when nobody asked for a removal."""
    delete = known(resource.props, "delete")
    stops = workload_stops(delete) if isinstance(delete, str) else []  # unknown text cannot be read
    if not stops:
        return []
    seen = f"{_STOPS} ({stops[0]})"
    problems = []
    triggers = known(resource.props, "triggers")
    # A trigger list unknown during preview is still a list the SDK makes replace-on-change.
    if triggers is UNKNOWN or (triggers is not None and len(triggers) > 0):
        problems.append(
            f"{seen} and triggers make it replaceable: a changed trigger replaces the command and runs this "
            "delete after the new create"
        )
    if resource.opts.delete_before_replace:
        problems.append(
            f"{seen} and deleteBeforeReplace is true: any replacement runs this delete before the new create, "
            "so the workload is down (or its data gone) whether or not the create succeeds"
        )
    return problems


def adopted(rule_set: PolicyResource) -> bool:
    """True unless the rule set's ``securityGroupId`` depends on a group this stack creates.

    The property dependency, not the Firewall component's ``hostMode`` prop, decides: stack
    policies see outputs and the program registers the plan as component inputs, a created
    group's id is unknown during preview while the dependency on it is known, and a fixture or
    another program that builds a rule set without the component is judged the same way.
    """
    return not any(
        dependency.resource_type == TENCENT_GROUP
        for dependency in rule_set.property_dependencies.get("securityGroupId", [])
    )


safe_lifecycle = StackValidationPolicy(
    name="safe-lifecycle",
    description="No replacement or destroy stops a workload, removes its data or empties an adopted group's "
    "rules: destructive commands are never replaceable, authoritative rule sets on adopted groups are protected.",
    validate=check,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps="Give a command whose delete stops or removes something no triggers and no "
    "deleteBeforeReplace (update it in place; remove workloads with a separate retire command), and protect a "
    "GroupRuleSet on a group the stack did not create.",
)
