"""The default plan (each figure the seeds' or chosen here, docs/PROVENANCE.md), and how a stack's lists patch it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic.alias_generators import to_camel

from plan.schema import NAMESPACE, Cloud, Exposure
from plan_values import (
    shown,
)


def _ports(*specs: tuple[int, str], expose: Exposure) -> tuple[dict[str, Any], ...]:
    return tuple({"port": port, "purpose": purpose, "expose": expose} for port, purpose in specs)


DEFAULT_DATABASES: tuple[dict[str, Any], ...] = (
    {
        "kind": "mysql",
        "name": "production-mysql",
        "image": "docker.io/library/mysql:8.0",
        "ports": _ports((3306, "MySQL"), expose=Exposure.PEER),
        "memoryMib": 192,
    },
    {
        "kind": "postgres",
        "name": "production-postgres",
        "image": "docker.io/library/postgres:16",
        "ports": _ports((5432, "PostgreSQL"), expose=Exposure.PEER),
        "memoryMib": 128,
    },
    {
        "kind": "redis",
        "name": "production-redis",
        "image": "docker.io/library/redis:7",
        "ports": _ports((6379, "Redis"), expose=Exposure.PEER),
        "memoryMib": 64,
    },
    {
        "kind": "neo4j",
        "name": "production-neo4j",
        "image": "docker.io/library/neo4j:5-community",
        "ports": _ports((7474, "Neo4j HTTP"), (7687, "Neo4j Bolt"), expose=Exposure.PEER),
        "memoryMib": 544,
        "jvm": {"heapMib": 256, "pageCacheMib": 128, "transactionMib": 64},
    },
    {
        "kind": "elasticsearch",
        "name": "production-elasticsearch",
        "image": "docker.elastic.co/elasticsearch/elasticsearch:8.15.3",
        "ports": _ports((9200, "Elasticsearch HTTP"), (9300, "Elasticsearch transport"), expose=Exposure.PEER),
        "memoryMib": 312,
        "jvm": {"heapMib": 128},
    },
    {
        "kind": "weaviate",
        "name": "production-weaviate",
        "image": "cr.weaviate.io/semitechnologies/weaviate:1.26.6",
        "ports": _ports((8080, "Weaviate HTTP"), expose=Exposure.PEER),
        "memoryMib": 160,
    },
)


def _service(
    name: str, description: str, port: int, family: str, memory_mib: int, runtime: str, start: str
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "port": port,
        "family": family,
        "memoryMib": memory_mib,
        "runtime": runtime,
        # No release: where a service's build lives (a URL and its sha256, or a file built on the
        # deploying machine) is the stack's to say; the seeds name no release store.
        "startCommand": start,
    }


DEFAULT_SERVICES: tuple[dict[str, Any], ...] = (
    # The seeds: Zervigo is a Go service ("Setup Go 1.23环境", "Build Zervigo服务").
    _service("zervigo", "Go auth and permissions", 8207, "zervigo-future", 200, "go", "./zervigo"),
    # The seeds also say "reuse 8207" for the shared service: that clashes with zervigo. Its
    # language is not stated; chosen here: Go, as batch 1's CI sets up Go only.
    _service("shared-service", "auth and data sync", 8120, "shared", 250, "go", "./shared-service"),
    # The seeds: the AI services and LoomaCRM are Python ("Setup Python 3.11环境", "Install
    # requirements.txt"); the start command `python -m app` is chosen here (the seeds name none).
    _service("ai-service-1", "recommendation and analytics", 8100, "ai", 600, "python", ".venv/bin/python -m app"),
    _service("ai-service-2", "NLP and Q&A", 8110, "ai", 600, "python", ".venv/bin/python -m app"),
    _service("looma-crm", "LoomaCRM", 8700, "looma-crm", 250, "python", ".venv/bin/python -m app"),
)

DEFAULT_BATCHES: tuple[tuple[str, ...], ...] = (
    ("zervigo", "shared-service"),
    ("ai-service-1", "ai-service-2"),
    ("looma-crm",),
)

# The Tencent host's existing workloads: the seeds count them as 1.2 GB together (000: 现有1.2GB;
# 1.4 GB is the whole host's use). Chosen here: the per-workload split and Nginx's 80/443.
DEFAULT_EXISTING: tuple[dict[str, Any], ...] = (
    # The seeds' replicas of the Alibaba primaries (000: "主库: 阿里云", "从库: 腾讯云"). Each is
    # refused while it holds data of its own, after its dump (README: "Replication on by default").
    {
        "name": "mysql",
        "ports": _ports((3306, "MySQL replica"), expose=Exposure.PEER),
        "memoryMib": 384,
        "database": True,
        "replicaOf": {"source": "production-mysql", "kind": "mysql"},
    },
    {
        "name": "postgres",
        "ports": _ports((5432, "PostgreSQL replica"), expose=Exposure.PEER),
        "memoryMib": 256,
        "database": True,
        "replicaOf": {"source": "production-postgres", "kind": "postgres"},
    },
    {
        "name": "redis",
        "ports": _ports((6379, "Redis replica"), expose=Exposure.PEER),
        "memoryMib": 128,
        "database": True,
        "replicaOf": {"source": "production-redis", "kind": "redis"},
    },
    {"name": "nginx", "ports": _ports((80, "HTTP"), (443, "HTTPS"), expose=Exposure.PUBLIC), "memoryMib": 64},
    {"name": "nodejs", "memoryMib": 192},
    {"name": "statistics", "memoryMib": 128},
    {"name": "template", "memoryMib": 128},
)


# ---------------------------------------------------------------------------------------
# Defaults, patched by name
# ---------------------------------------------------------------------------------------

# The default workloads of each cloud's host. A stack's entries patch them by name; a default
# leaves the plan only through platform:retired (taken off the host) or platform:omit (never there).
CLOUD_DEFAULTS: dict[Cloud, dict[str, tuple[dict[str, Any], ...]]] = {
    Cloud.ALIBABA: {"databases": DEFAULT_DATABASES},
    Cloud.TENCENT: {"services": DEFAULT_SERVICES, "existing": DEFAULT_EXISTING},
}
PATCHED_SECTIONS = ("databases", "services", "existing")


def elsewhere(section: str, name: object, cloud: object) -> str:
    """Where a name that is no default of ``cloud``'s plan is one (``; production-mysql is a default
    of the alibaba stack (Pulumi.alibaba.yaml), not of this one``), else empty."""
    if cloud not in {c.value for c in Cloud}:
        return ""
    for other, defaults in CLOUD_DEFAULTS.items():
        if (
            other.value != cloud
            and any(d["name"] == name for d in defaults.get(section, ()))
            and not any(d["name"] == name for d in CLOUD_DEFAULTS[Cloud(cloud)].get(section, ()))
        ):
            return f"; {name} is a default of the {other} stack (Pulumi.{other}.yaml), not of this one"
    return ""


def with_defaults(data: Any) -> Any:
    """The stack's config with the cloud's default workloads filled in.

    Each entry of ``databases``, ``services`` and ``existing`` whose ``name`` is a default's patches
    that default: the fields it lists replace the default's, the others stay (``{name:
    production-mysql, memoryMib: 256}`` raises one limit). An entry with a new name adds a workload.
    A default leaves only when ``platform:retired`` or ``platform:omit`` names it, so a one-entry
    list never drops the others. Without ``batches``, the default batches keep their order and a
    workload of the stack's own is deployed last, in one more batch. Applying it twice changes
    nothing. Malformed input is passed on for the model to name.
    """
    if not isinstance(data, dict) or data.get("cloud") not in {c.value for c in Cloud}:
        return data
    defaults = CLOUD_DEFAULTS[Cloud(data["cloud"])]
    filled = dict(data)
    for section in PATCHED_SECTIONS:
        entries = data.get(section, [])
        if not isinstance(entries, list | tuple):
            continue
        leaving = _leaving(data, section)
        _check_leaving(section, leaving, defaults.get(section, ()), entries, Cloud(data["cloud"]))
        filled[section] = _patched(defaults.get(section, ()), list(entries), leaving)
    if "batches" not in data and isinstance(filled.get("services"), list) and filled["services"]:
        filled["batches"] = _default_batches([s.get("name") for s in filled["services"] if isinstance(s, dict)])
    return filled


def _leaving(data: dict[str, Any], section: str) -> dict[str, str]:
    """Names of default workloads the stack takes out of ``section``, and the key that says so."""
    found: dict[str, str] = {}
    for key in ("omit", "retired"):
        block = data.get(key)
        listed = block.get(section, []) if isinstance(block, dict) else []
        for index, entry in enumerate(listed if isinstance(listed, list | tuple) else []):
            name = entry.get("name") if isinstance(entry, dict) else entry
            if isinstance(name, str):
                found.setdefault(name, f"{NAMESPACE}:{key}.{section}[{index}]")
    return found


def _check_leaving(
    section: str,
    leaving: Mapping[str, str],
    defaults: tuple[dict[str, Any], ...],
    entries: list[Any] | tuple[Any, ...],
    cloud: Cloud,
) -> None:
    default_names = [d["name"] for d in defaults]
    listed = {e.get("name"): index for index, e in enumerate(entries) if isinstance(e, dict)}
    for name, where in leaving.items():
        if where.startswith(f"{NAMESPACE}:omit.") and name not in default_names:
            valid = ", ".join(default_names) or "none"
            what = {"databases": "database", "services": "service"}.get(section, "existing workload")
            raise ValueError(
                f"{where}: {shown(name)} is not a default {what} of this cloud's plan (defaults: {valid}); omit "
                f"names defaults only: a workload of your own leaves the plan when its entry is deleted"
                f"{elsewhere(section, name, cloud)}"
            )
        if name in listed:
            raise ValueError(
                f"{where}: {name!r} is also listed in {NAMESPACE}:{section}[{listed[name]}]; a workload is either "
                "in the plan or out of it: remove one of the two entries"
            )


def _patched(defaults: tuple[dict[str, Any], ...], entries: list[Any], leaving: Mapping[str, str]) -> list[Any]:
    by_name = {e.get("name"): e for e in entries if isinstance(e, dict)}
    merged: list[Any] = []
    for default in defaults:
        if default["name"] in leaving:
            continue
        patch = by_name.get(default["name"])
        merged.append(default if patch is None else _patch(default, patch))
    names = {d["name"] for d in defaults}
    merged += [e for e in entries if not (isinstance(e, dict) and e.get("name") in names)]
    return merged


def _patch(default: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The default's fields, each replaced by the patch's field of the same name (in either spelling)."""
    given = {to_camel(key) if isinstance(key, str) else key: value for key, value in patch.items()}
    return {**{k: v for k, v in default.items() if k not in given}, **patch}


def _default_batches(services: list[Any]) -> list[list[Any]]:
    present = set(services)
    batches = [[name for name in batch if name in present] for batch in DEFAULT_BATCHES]
    batched = {name for batch in DEFAULT_BATCHES for name in batch}
    added = [name for name in services if name not in batched]
    return [batch for batch in [*batches, added] if batch]


# ---------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------
