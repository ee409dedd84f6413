"""Reading props as CrossGuard hands them to a validator, shared by every policy module.

What a validator receives (pulumi-policy's ``Analyze`` / ``AnalyzeStack``):
- resource policies get a resource's *inputs*, stack policies every resource's *outputs*;
- keys are the engine's camelCase names, numbers arrive as floats;
- secrets arrive already unwrapped (the SDK drops the secret marker before a validator runs),
  so a validator cannot tell whether a value was secret: never echo a value in a message;
- a value not known during preview raises ``UnknownValueError`` when it is read, and the SDK
  turns that into an advisory "can't run policy during preview" diagnostic.

This module uses only the standard library and pulumi-policy: the pack runs in the CLI's own
policy virtualenv (``requirements.txt``), not the program's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyConfigSchema, PolicyResource, ResourceValidationArgs
from pulumi_policy.proxy import UnknownValueError

from .facts import ENGINE_PORTS, HOST, STACK, STEP, step_record_name

# Seed 004's per-version isolated database ports (MySQL, Redis, PostgreSQL, Neo4j HTTP + Bolt,
# Elasticsearch), set aside for Zervigo Future, DAO and blockchain.
ISOLATED_DATABASE_PORTS = {
    "zervigo-future-databases": (3308, 6381, 5434, 7476, 7689, 9202),
    "zervigo-dao-databases": (3309, 6382, 5435, 7477, 7690, 9203),
    "zervigo-blockchain-databases": (3310, 6383, 5436, 7478, 7691, 9204),
}
# Ports of database engines, the isolated ones included. 8080 is Weaviate's HTTP API on this
# platform, so it counts as a database port here.
DATABASE_PORTS = tuple(
    sorted(
        {
            *(port for ports in ENGINE_PORTS.values() for port in ports),  # the seeds' six engines
            *(1433, 1521, 5984, 9042, 11211, 27017),  # SQL Server, Oracle, CouchDB, Cassandra, Memcached, MongoDB
            *(port for ports in ISOLATED_DATABASE_PORTS.values() for port in ports),
        }
    )
)
SSH_PORTS = (22,)


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN = _Unknown()
"""What ``known`` returns for a value the engine does not know yet (a created resource's id)."""


def known(props: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``props[key]``, ``default`` when absent, or ``UNKNOWN`` instead of raising during preview."""
    try:
        return props.get(key, default)
    except UnknownValueError:
        return UNKNOWN


def settings(schema: PolicyConfigSchema, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The policy's config: the schema's defaults under what the pack config gives.

    The CLI fills the defaults in before a validator runs; filling them here as well makes a
    validator called directly (a test, the offline runner) see the same values.
    """
    values = {key: spec["default"] for key, spec in schema.properties.items() if "default" in spec}
    values.update(given or {})
    return values


def declares_inputs(args: ResourceValidationArgs) -> bool:
    """False for an adopted resource: imported with no inputs, every property ignored."""
    return bool(len(args.props)) and "*" not in (args.opts.ignore_changes or [])


def as_int(value: Any) -> int | None:
    """An engine number (a float) or numeric string as an int; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def plain(value: Any) -> Any:
    """A deep copy of a proxied value as plain dicts and lists (reads every leaf: may raise when unknown)."""
    if isinstance(value, Mapping):
        return {key: plain(value[key]) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(value[i]) for i in range(len(value))]
    return value


def listed(items: Sequence[str], count: int = 3) -> str:
    """The first ``count`` items, and how many more."""
    shown = ", ".join(items[:count])
    return shown + (f" and {len(items) - count} more" if len(items) > count else "")


def exposure_sources(plan: Mapping[str, Any]) -> dict[str, list[str]]:
    """The sources a plan's ``expose`` values name: public, peer (the peer's /32), admins."""
    return {
        "public": ["0.0.0.0/0"],
        "peer": [str(plan["peerCidr"])] if plan.get("peerCidr") else [],
        "admins": [str(cidr) for cidr in plan.get("adminCidrs") or []],
    }


def covers(outer: str | None, inner: str | None) -> bool:
    """True when network ``outer`` contains network ``inner`` (both CIDRs of one IP version)."""
    if outer is None or inner is None:
        return False
    try:
        big, small = ipaddress.ip_network(outer, strict=False), ipaddress.ip_network(inner, strict=False)
    except ValueError:
        return outer == inner
    return big.version == small.version and small.subnet_of(big)  # type: ignore[arg-type]


def is_host_route(cidr: str | None) -> bool:
    """True for a single IPv4 /32 or IPv6 /128."""
    try:
        network = ipaddress.ip_network(cidr or "", strict=False)
    except ValueError:
        return False
    return network.num_addresses == 1


# ---------------------------------------------------------------------------------------
# Plans: every component registers the host's plan (plan.Plan.props()) as its ``plan`` prop.
# ---------------------------------------------------------------------------------------


def workloads(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [plain(w) for w in plan.get("workloads") or []]


def is_database(workload: Mapping[str, Any]) -> bool:
    role = str(workload.get("role") or "")
    return role.startswith("database") or role == "existing:database"


def host_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def stack_plans(resources: Iterable[PolicyResource], owner: str = HOST) -> list[tuple[str, dict[str, Any]]]:
    """Each host's plan among a stack policy's resources (outputs), as ``(urn, plan)``.

    Components of type ``owner`` that register their plan among their outputs come first (one
    entry per host). Otherwise the stack's own ``plan`` output is the plan (one host per stack,
    as this program has: components register the plan as an input, and stack policies see
    outputs), reported against the one ``owner`` component when there is exactly one.
    """
    resources = list(resources)
    from_components = [
        (r.urn, plain(r.props["plan"]))
        for r in resources
        if r.resource_type == owner and isinstance(known(r.props, "plan"), Mapping)
    ]
    if from_components:
        return from_components
    owners = [r.urn for r in resources if r.resource_type == owner]
    return [
        (owners[0] if len(owners) == 1 else r.urn, plain(r.props["plan"]))
        for r in resources
        if r.resource_type == STACK and isinstance(known(r.props, "plan"), Mapping)
    ]


def largest(items: Iterable[Mapping[str, Any]], count: int = 3) -> str:
    ranked = sorted(items, key=lambda w: (-(as_int(w.get("memoryMib")) or 0), str(w.get("name"))))
    return ", ".join(f"{w.get('name')} {as_int(w.get('memoryMib'))}" for w in ranked[:count])


def step_records(resources: Iterable[PolicyResource]) -> dict[tuple[str | None, str], PolicyResource]:
    """Each step's record (``STEP``: components.provisioning.StepRecord) by its parent's URN and name."""
    return {(r.parent.urn if r.parent else None, r.name): r for r in resources if r.resource_type == STEP}


def step_parameters(command: PolicyResource, records: Mapping[tuple[str | None, str], PolicyResource]) -> Any:
    """The parameters the command's step renders, from its record: a dict, None without a record,
    or ``UNKNOWN`` while they are not known (a step built from another stack's outputs, in preview)."""
    record = records.get((command.parent.urn if command.parent else None, step_record_name(command.name)))
    if record is None:
        return None
    parameters = known(record.props, "parameters")
    return {str(k): str(v) for k, v in parameters.items()} if isinstance(parameters, Mapping) else UNKNOWN
