"""no-public-database: a database port, or SSH, is never open to 0.0.0.0/0 or ::/0.

Checked twice: on every rule resource of both clouds (whatever wrote it), and on the plan a
Host registers (a database declared ``expose: public``, or an admin CIDR that is the world),
so a bad plan is named where it is written, before any rule is derived from it.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from ._common import DATABASE_PORTS, HOST, SSH_PORTS, as_int, is_database, is_world, plain, settings, workloads
from ._rules import rules_of

_PORTS = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}}
SCHEMA = PolicyConfigSchema(
    properties={
        "databasePorts": {**_PORTS, "default": list(DATABASE_PORTS), "description": "ports of database engines"},
        "sshPorts": {**_PORTS, "default": list(SSH_PORTS), "description": "ports SSH listens on"},
    }
)


def check_rules(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    rules = rules_of(args.resource_type, args.props, args.name)
    if not rules:
        return
    config = settings(SCHEMA, args.get_config())
    guarded = {int(p): "database" for p in config["databasePorts"]} | {int(p): "SSH" for p in config["sshPorts"]}
    for rule in rules:
        if rule.direction != "ingress" or rule.action != "accept" or not is_world(rule.cidr):
            continue
        if rule.every_port:
            report_violation(f"{rule.describe()}: opens every port, database and SSH ports included", None)
            continue
        hits = sorted(port for port in guarded if rule.opens(port, rule.protocol))
        if hits:
            named = ", ".join(f"{port} ({guarded[port]})" for port in hits)
            report_violation(f"{rule.describe()}: opens {named} to the whole Internet", None)


def check_plan(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != HOST or "plan" not in args.props:
        return
    plan = plain(args.props["plan"])
    for workload in workloads(plan):
        if not is_database(workload):
            continue
        for spec in workload.get("ports") or []:
            if spec.get("expose") == "public":
                report_violation(
                    f"plan: database {workload.get('name')} exposes port {as_int(spec.get('port'))} as public; "
                    "use expose: peer (the peer host's /32) or admins",
                    None,
                )
    for cidr in plan.get("adminCidrs") or []:
        if is_world(cidr):
            report_violation(f"plan: admin CIDR {cidr} opens SSH to the whole Internet; list the admins' own", None)


no_public_database = ResourceValidationPolicy(
    name="no-public-database",
    description="No security-group rule opens a database port or SSH to 0.0.0.0/0 or ::/0.",
    validate=[check_rules, check_plan],
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    config_schema=SCHEMA,
    remediation_steps="Open database ports to the peer host's /32 only and SSH to the admins' CIDRs.",
)
