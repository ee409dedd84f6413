"""Evaluating the real program for a stack, with config changes, under the mock engine."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from plan import (
    CLOUD_DEFAULTS,
    DEFAULT_DATABASES,
    DEFAULT_EXISTING,
    DEFAULT_SERVICES,
    PATCHED_SECTIONS,
    Cloud,
    Plan,
    load_plan,
)
from policies.facts import COMMAND, step_record_name
from preflight.engine import RecordingMonitor, Registration, StackRun, run_stack, unwrap
from preflight.references import stack_references
from preflight.stackfile import StackConfig, read_stack, with_plan_secrets

ROOT = Path(__file__).resolve().parent.parent

# A new instance instead of the adopted one (merged into the committed host).
CREATED_ALIBABA_HOST: dict[str, Any] = {
    "mode": "create",
    "instanceType": "ecs.t6-c1m1.large",
    "imageId": "ubuntu_24_04_x64_20G_alibase.vhd",
    "zone": "cn-shenzhen-a",
    "dataDiskGb": 40,
    "keyPairName": "admins",
    "instanceId": None,
    "publicIp": None,
    "hostKey": None,
}
CREATED_TENCENT_HOST: dict[str, Any] = {
    **CREATED_ALIBABA_HOST,
    "instanceType": "S5.MEDIUM4",
    "imageId": "img-487zeit5",
    "zone": "ap-guangzhou-3",
    "keyPairName": "skey-admins",
}
CREATED_HOST = {"alibaba": CREATED_ALIBABA_HOST, "tencent": CREATED_TENCENT_HOST}


# The Tencent host's existing engines as replicas of the Alibaba databases (the seeds' plan).
SOURCE_STACK = "organization/platform/alibaba"


def replica(name: str, local_port: int, source: str, memory_mib: int, **replica_of: Any) -> dict[str, Any]:
    """An existing engine named as its kind (mysql, postgres, redis) following ``source``."""
    kind = name
    return {
        "name": name,
        "ports": [{"port": local_port, "expose": "peer", "purpose": f"{kind} replica"}],
        "memoryMib": memory_mib,
        "database": True,
        "replicaOf": {"source": source, "kind": kind, **replica_of},
    }


REPLICAS: list[dict[str, Any]] = [
    replica("mysql", 3306, "production-mysql", 384),
    replica("postgres", 5432, "production-postgres", 256),
    replica("redis", 6379, "production-redis", 128),
    {"name": "nginx", "ports": [{"port": 80, "expose": "public"}, {"port": 443, "expose": "public"}], "memoryMib": 64},
    {"name": "nodejs", "memoryMib": 192},
    {"name": "statistics", "memoryMib": 128},
    {"name": "template", "memoryMib": 128},
]


def without_replicas() -> list[dict[str, Any]]:
    """The Tencent plan's existing workloads with none a replica (``replicaOf: null`` on the default
    replicas, as a stack file keeps an engine as it is)."""
    plain = json.loads(json.dumps(DEFAULT_EXISTING))  # the defaults as a stack file's YAML holds them
    return [{**w, "replicaOf": None} if "replicaOf" in w else w for w in plain]


def with_replicas(**changes: Any) -> dict[str, Any]:
    """Changes that turn the committed Tencent stack's existing engines into replicas (an
    ``existing`` list of a test's own has no nginx, so the proxy goes with it). They name the Alibaba
    stack by the older spelling, ``replication.sourceStack``, in place of the file's ``databaseStack``."""
    proxy = {"proxy": None} if "existing" in changes else {}
    older = {"databaseStack": None, "replication": {"sourceStack": SOURCE_STACK}}
    return {"existing": REPLICAS, **older, **proxy, **changes}


def exactly(cloud: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` where a list of databases, services or existing workloads is the whole list: the
    cloud's defaults it leaves out (and does not retire) go under ``platform:omit``, as a stack file
    that wants exactly these would say. Without that, a list patches the defaults by name."""
    cloud = changes.get("cloud", cloud)
    defaults = CLOUD_DEFAULTS.get(Cloud(cloud), {}) if cloud in {c.value for c in Cloud} else {}
    omit: dict[str, list[str]] = {k: list(v) for k, v in (changes.get("omit") or {}).items()}
    retired = changes.get("retired") or {}
    for section, entries in changes.items():
        if section not in PATCHED_SECTIONS or not isinstance(entries, list | tuple) or section not in defaults:
            continue
        listed = {e.get("name") for e in entries if isinstance(e, dict)}
        listed |= {r.get("name") for r in retired.get(section, ()) if isinstance(r, dict)}
        left = [
            d["name"] for d in defaults[section] if d["name"] not in listed and d["name"] not in omit.get(section, [])
        ]
        if left:
            omit[section] = [*omit.get(section, []), *left]
    return {**changes, "omit": omit} if omit else changes


def stack_folder(folder: Path, stack: str, **changes: Any) -> Path:
    """A project folder as a user's checkout has it: Pulumi.yaml, every committed stack file, and
    ``Pulumi.<stack>.yaml`` with some ``platform:*`` keys changed (as in ``config_for``). A stack
    file the folder already holds stays, so that two calls change two stacks."""
    for path in (ROOT / "Pulumi.yaml", *ROOT.glob("Pulumi.*.yaml")):
        if not (folder / path.name).exists():
            (folder / path.name).write_text(path.read_text())
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    changes = exactly(document["config"].get("platform:cloud"), changes)
    for key, value in changes.items():
        full_key = f"platform:{key}"
        committed = document["config"].get(full_key)
        if value is None:
            document["config"].pop(full_key, None)
        elif isinstance(value, dict) and isinstance(committed, dict):
            document["config"][full_key] = {k: v for k, v in {**committed, **value}.items() if v is not None}
        else:
            document["config"][full_key] = value
    (folder / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


# What a user puts in place of the committed stacks' EXAMPLE values before the first `up`: real-looking
# ids, keys, addresses and releases (none of them a documentation address or an "example").
TEST_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMmDv/NdJQz7SSKw1mESeTlaszpqQledSbKMYCelqTQl"


def as_deployed(stack: str) -> dict[str, Any]:
    """Changes (``config_for``) that replace every EXAMPLE value of the committed ``stack``."""
    ids = {"alibaba": ("i-wz9a1b2c3d4e5f6g7h8", "sg-wz9a1b2c3d4e5f6g7h"), "tencent": ("ins-a1b2c3d4", "sg-a1b2c3d4")}
    instance, group = ids[stack]
    changes: dict[str, Any] = {
        "host": {"instanceId": instance, "hostKey": TEST_HOST_KEY},
        "firewall": {"adminCidrs": ["100.64.10.0/24"], "securityGroupId": group},
    }
    if stack == "tencent":
        changes["proxy"] = {
            "serverName": "api.platform.internal",
            "certificate": "/etc/letsencrypt/live/api.platform.internal/fullchain.pem",
            "certificateKey": "/etc/letsencrypt/live/api.platform.internal/privkey.pem",
        }
        changes["services"] = [
            {
                "name": name,
                "release": {
                    "version": "1.0.0",
                    "artifact": f"https://releases.platform.internal/{name}/{name}-1.0.0.tar.gz",
                    "sha256": hashlib.sha256(name.encode()).hexdigest(),
                },
            }
            for name in ("zervigo", "shared-service", "ai-service-1", "ai-service-2", "looma-crm")
        ]
    return changes


def default_services(without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The default services with the releases the committed Tencent stack gives them (a service's
    release is the stack's to say: the plan's defaults have none)."""
    releases = {s["name"]: s["release"] for s in stack_values("tencent")["services"]}
    return [{**s, "release": releases[s["name"]]} for s in DEFAULT_SERVICES if s["name"] not in without]


def with_clients(**clients: list[str]) -> dict[str, Any]:
    """Changes (``config_for``, ``stack_folder``) that keep the Alibaba default databases and make the
    ones named (``production_mysql``: its name with '_' for '-') serve these clients."""
    named = {name.replace("_", "-"): names for name, names in clients.items()}
    assert set(named) <= {db["name"] for db in DEFAULT_DATABASES}, named
    # Each default patched by name: all of them stay, as plain values a stack file can hold.
    return {"databases": [{"name": db["name"], "clients": named.get(db["name"], [])} for db in DEFAULT_DATABASES]}


def cache_database(**fields: Any) -> dict[str, Any]:
    """A small extra database, for plans that differ from the seeds' by one workload."""
    base = {
        "kind": "redis",
        "name": "cache",
        "image": "docker.io/library/redis:7",
        "memoryMib": 64,
        "ports": [{"port": 6380, "expose": "peer"}],
    }
    return {**base, **fields}


def stack_values(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The committed stack file's platform config as YAML values (not yet JSON-encoded)."""
    document = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())
    return {k.removeprefix("platform:"): v for k, v in document["config"].items() if k.startswith("platform:")}


def config_for(stack: str, root: Path = ROOT, *, exact: bool = True, **changes: Any) -> StackConfig:
    """The committed stack's config with some ``platform:*`` keys changed.

    A dict value is merged into the committed one (``host={"memoryMib": 1}``, and a field
    set to ``None`` is dropped); any other value replaces it; ``None`` removes the key. A list of
    workloads is the whole list (``exactly``) unless ``exact=False``, when it patches the defaults.
    """
    base = read_stack(root, stack)
    config = dict(base.config)
    committed = stack_values(stack, root)
    if exact:
        changes = exactly(committed.get("cloud"), changes)
    for key, value in changes.items():
        full_key = f"platform:{key}"
        if value is None:
            config.pop(full_key, None)
            continue
        if isinstance(value, dict) and isinstance(committed.get(key), dict):
            value = {k: v for k, v in {**committed[key], **value}.items() if v is not None}
        config[full_key] = value if isinstance(value, str) else json.dumps(value)
    edited = StackConfig(base.project, stack, config, base.secret_keys, base.placeholders)
    plan = load_plan(edited.config, edited.secret_keys)
    return with_plan_secrets(edited, plan)


def plan_of(stack: str, root: Path = ROOT, **changes: Any) -> Plan:
    """The committed stack's plan, with ``changes`` as ``config_for`` makes them."""
    config = config_for(stack, root, **changes)
    return load_plan(config.config, config.secret_keys)


def evaluate(
    stack: str,
    root: Path = ROOT,
    monitor: RecordingMonitor | None = None,
    checkout: Path | None = None,
    source: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    **changes: Any,
) -> StackRun:
    """The stack under the mocks; a stack it references (replication.sourceStack) is evaluated
    from its committed file in ``root`` first, as ``python -m preflight`` does, or with ``source``:
    changes to the Alibaba stack's file (as ``stack_folder`` makes them). ``checkout``: the project
    directory releases to upload are read from (default: this one). ``secrets``: config values set
    with --secret (full keys)."""
    config = config_for(stack, root, **changes)
    if secrets:
        config = StackConfig(
            config.project,
            config.stack,
            {**config.config, **secrets},
            config.secret_keys | set(secrets),
            config.placeholders,
        )
    if source is not None:
        with tempfile.TemporaryDirectory() as folder:
            references = stack_references(stack_folder(Path(folder), "alibaba", **source), config)
    else:
        references = stack_references(root, config)
    return run_stack(
        config.project,
        stack,
        config.config,
        set(config.secret_keys),
        monitor=monitor,
        references=references,
        checkout=checkout,
    )


def inputs(resource: Registration) -> dict[str, Any]:
    return unwrap(resource.inputs)


def step_parameters(run: StackRun, command: str) -> dict[str, str]:
    """The parameters the command's step renders, as its record holds them (components.provisioning.StepRecord)."""
    return dict(unwrap(run.named(step_record_name(command)).inputs["parameters"]))


def commands(run: StackRun) -> dict[str, dict[str, Any]]:
    return {r.name: inputs(r) for r in run.of_type(COMMAND)}


def preflight_cli(
    *args: str, root: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m preflight ARGS --root ROOT`` as a user runs it: a real interpreter, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args, "--root", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
