"""How long the offline preview of every stack takes, against the floor any preview pays.

    .venv/bin/python -m tools.bench_preview [--runs N]

The floor is a Python process that imports the Pulumi SDK and every SDK class the previewed
stacks register (the provider SDKs load a class's module on its first use, as the program does),
and nothing of this project. Each run times the floor and then ``python -m preflight <stacks>``
(text to /dev/null) back to back, so both see the same machine; the figure is the median ratio.
Figures, not assertions: nothing fails on them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sdk_classes(types: set[str]) -> list[str]:
    """``package.module.Class`` for each registered type token (the SDKs' naming of their tokens)."""
    packages = {
        "alicloud": "pulumi_alicloud",
        "tencentcloud": "tencentcloud_iac_pulumi",
        "command": "pulumi_command",
        "tls": "pulumi_tls",
        "random": "pulumi_random",
    }
    found = set()
    for token in types:
        provider, module, name = token.split(":")
        if provider not in packages:
            continue  # the program's own components and the stack
        where = module.split("/")[0]
        found.add(
            f"{packages[provider]}.{where[:1].lower() + where[1:]}.{name}"
            if where != "index"
            else f"{packages[provider]}.{name}"
        )
    return sorted(found)


def floor_script(classes: list[str]) -> str:
    lines = ["import importlib", "import pulumi", f"for path in {classes!r}:"]
    lines += ["    module, _, name = path.rpartition('.')", "    getattr(importlib.import_module(module), name)"]
    return "\n".join(lines) + "\n"


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=300)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_preview")
    parser.add_argument("--runs", type=int, default=7, help="paired runs (default 7)")
    args = parser.parse_args(argv)
    preview = [sys.executable, "-m", "preflight"]
    document = subprocess.run(
        [*preview, "--format", "json"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    ).stdout
    stacks = json.loads(document)
    stacks = stacks if isinstance(stacks, list) else [stacks]
    classes = sdk_classes({r["type"] for s in stacks for r in s["resources"]})
    floor = [sys.executable, "-c", floor_script(classes)]
    print(f"preview of {', '.join(s['stack'] for s in stacks)}; floor: pulumi and {len(classes)} SDK classes")
    ratios = []
    for run in range(1, args.runs + 1):
        base, full = timed(floor), timed(preview)
        ratios.append(full / base)
        print(f"  run {run}: floor {base:.2f} s, preview {full:.2f} s, ratio {full / base:.2f}")
    print(f"preview/floor: median {statistics.median(ratios):.2f} over {args.runs} paired runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
