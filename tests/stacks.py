"""Evaluating the real program for a stack, with config changes, under the mock engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from plan import load_plan
from preflight.engine import RecordingMonitor, Registration, StackRun, run_stack, unwrap
from preflight.stackfile import StackConfig, read_stack, with_missing_secrets

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


def config_for(stack: str, root: Path = ROOT, **changes: Any) -> StackConfig:
    """The committed stack's config with some ``platform:*`` keys changed.

    A dict value is merged into the committed one (``host={"memoryMib": 1}``, and a field
    set to ``None`` is dropped); any other value replaces it; ``None`` removes the key.
    """
    base = read_stack(root, stack)
    config = dict(base.config)
    committed = stack_values(stack, root)
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
    return with_missing_secrets(edited, tuple(db.name for db in plan.databases))


def evaluate(stack: str, root: Path = ROOT, monitor: RecordingMonitor | None = None, **changes: Any) -> StackRun:
    config = config_for(stack, root, **changes)
    return run_stack(config.project, stack, config.config, set(config.secret_keys), monitor=monitor)


def inputs(resource: Registration) -> dict[str, Any]:
    return unwrap(resource.inputs)


def commands(run: StackRun) -> dict[str, dict[str, Any]]:
    return {r.name: inputs(r) for r in run.of_type("command:remote:Command")}


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
