"""Views over a recorded stack run: hosts and their plans, firewall rules as registered."""

from __future__ import annotations

from typing import Any

from policies.facts import ALIBABA_RULE, HOST, TENCENT_RULE_SET
from preflight.engine import SECRET_SIG, SECRET_SIG_KEY, UNKNOWN, Registration, StackRun, unwrap

HOST_COMPONENT = HOST


def redacted(value: Any) -> Any:
    """Engine-shaped inputs for display: secrets shown as [secret], as the Pulumi CLI does."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return "[secret]"
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if value == UNKNOWN:
        return "[unknown]"
    return value


def hosts(run: StackRun) -> list[dict[str, Any]]:
    """Each host's plan as its component registered it, with the memory figures."""
    views = []
    for host in run.of_type(HOST_COMPONENT):
        plan = unwrap(host.inputs["plan"])
        used = sum(int(w["memoryMib"]) for w in plan["workloads"])
        limit = int(plan["hostMemoryMib"])
        reserve = int(plan.get("osReserveMib", 0))  # a plan from before plans declared one: none
        views.append(
            {
                "name": host.name,
                "cloud": plan["cloud"],
                "mode": plan["hostMode"],
                "memory": {
                    "limitMib": limit,
                    "usedMib": used,
                    "osReserveMib": reserve,
                    "freeMib": limit - used - reserve,
                },
                "workloads": plan["workloads"],
            }
        )
    return views


def firewall_rules(run: StackRun) -> list[dict[str, Any]]:
    """The rules as the security-group resources were registered, one shape for both clouds."""
    rows: list[dict[str, Any]] = []
    for rule in run.of_type(ALIBABA_RULE):
        rows.append(_alibaba_row(rule))
    for rule_set in run.of_type(TENCENT_RULE_SET):
        inputs = unwrap(rule_set.inputs)
        for direction, key in (("ingress", "ingresses"), ("egress", "egresses")):
            for position, entry in enumerate(inputs.get(key, []), start=1):
                port = str(entry.get("port", "ALL"))
                rows.append(
                    {
                        "resource": rule_set.name,
                        "direction": direction,
                        "protocol": str(entry.get("protocol", "ALL")).lower(),
                        "port": None if port.upper() == "ALL" else int(port),
                        "cidr": entry.get("cidrBlock"),
                        "action": str(entry["action"]).lower(),
                        "order": position,
                        "description": entry.get("description", ""),
                    }
                )
    # Registration order is asynchronous; show rules in evaluation order instead.
    return sorted(rows, key=lambda r: (r["direction"] != "ingress", r["order"], r["action"], r["port"] or 0, r["cidr"]))


def _alibaba_row(rule: Registration) -> dict[str, Any]:
    inputs = unwrap(rule.inputs)
    start, _, _end = str(inputs["portRange"]).partition("/")
    return {
        "resource": rule.name,
        "direction": inputs["type"],
        "protocol": inputs["ipProtocol"],
        "port": None if start == "-1" else int(start),
        "cidr": inputs.get("cidrIp"),
        "action": inputs.get("policy", "accept"),
        "order": int(inputs.get("priority", 1)),
        "description": inputs.get("description", ""),
    }
