"""Every example the README's configuration sections give is a plan the program accepts.

The YAML blocks are read out of README.md itself (each names the stack file it belongs in); the
values the prose says pass are listed here with the README's words, which must still be there.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.policies.shapes import ROOT
from tests.stacks import plan_of, stack_values

README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^( *)```yaml\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
STACK_FILE = re.compile(r"# Pulumi\.(\w+)\.yaml")


def yaml_blocks() -> list[tuple[str, str]]:
    """(stack, the block's text) for each ```yaml block of the README."""
    found = []
    for indent, body in BLOCK.findall(README):
        text = "\n".join(line.removeprefix(indent) for line in body.splitlines())
        stack = STACK_FILE.match(text)
        assert stack, f"a README YAML block says which stack file it is for (# Pulumi.<stack>.yaml):\n{text}"
        found.append((stack.group(1), text))
    return found


def moved(stack: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A block that retires a workload: the stack file's own entry for it is deleted, as the
    README says a move is."""
    retired = changes.get("retired") or {}
    committed = stack_values(stack)
    for section, entries in retired.items():
        names = {entry["name"] for entry in entries}
        if section in committed and section not in changes:
            changes = {**changes, section: [e for e in committed[section] if e.get("name") not in names]}
    return changes


def test_the_readme_has_yaml_examples_for_both_stacks():
    assert {stack for stack, _ in yaml_blocks()} == {"alibaba", "tencent"}


@pytest.mark.parametrize(("stack", "text"), yaml_blocks(), ids=lambda value: value.splitlines()[0][:40])
def test_each_yaml_example_is_accepted_in_its_stack(stack: str, text: str):
    document = yaml.safe_load(text)
    changes = {key.removeprefix("platform:"): value for key, value in document.items()}
    plan = plan_of(stack, exact=False, **moved(stack, changes))
    for section, entries in (changes.get("retired") or {}).items():
        assert {entry["name"] for entry in entries} <= {w.name for w in getattr(plan.retired, section)}


def service_environment(*names: str) -> dict[str, Any]:
    """The committed Tencent stack's first service with ``names`` in its environment."""
    first, *others = stack_values("tencent")["services"]
    return {"services": [{**first, "environment": dict.fromkeys(names, "x")}, *others]}


# (the README's words, the stack, the change those words say is accepted)
PROSE_EXAMPLES = [
    ("(`/var/lib/platform-backups`, `/etc/platform/secrets`)", "alibaba",
     {"paths": {"backups": "/var/lib/platform-backups", "secrets": "/etc/platform/secrets"}}),
    ("(`/mnt/disk1/platform`, `/data/platform`)", "alibaba",
     {"paths": {"root": "/mnt/disk1/platform", "data": "/data/platform"}}),
    ("`hourly` and `*-*-* *:30:00` pass", "alibaba", {"backups": {"schedule": "hourly"}}),
    ("`hourly` and `*-*-* *:30:00` pass", "alibaba", {"backups": {"schedule": "*-*-* *:30:00"}}),
    ("time zone (`UTC`, `Asia/Shanghai`)", "alibaba",
     {"backups": {"schedule": "*-*-* 03:00:00 Asia/Shanghai", "drillSchedule": "Sun *-*-* 05:00:00 UTC"}}),
    ("(`OAUTH_CALLBACK_URL`,\n  `TOKEN_URL`, `SECRET_FILE`, `AUTH_MODE`, `ACCESS_KEY_ID` pass)", "tencent",
     service_environment("OAUTH_CALLBACK_URL", "TOKEN_URL", "SECRET_FILE", "AUTH_MODE", "ACCESS_KEY_ID")),
    ("but the output switches `PYTHONUNBUFFERED`, `PYTHONDONTWRITEBYTECODE`, `PYTHONIOENCODING`,\n  `PYTHONUTF8`, "
     "`PYTHONHASHSEED`", "tencent",
     service_environment("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING", "PYTHONUTF8",
                         "PYTHONHASHSEED")),
    ("below `/etc/letsencrypt`,\n  `/etc/ssl`, `/etc/nginx`, `/etc/pki`", "tencent",
     {"proxy": {"certificate": "/etc/ssl/certs/api.pem", "certificateKey": "/etc/ssl/private/api.key"}}),
    ("below `/etc/letsencrypt`,\n  `/etc/ssl`, `/etc/nginx`, `/etc/pki`", "tencent",
     {"proxy": {"certificate": "/etc/nginx/tls/api.pem", "certificateKey": "/etc/pki/tls/private/api.key"}}),
    ("set `platform:monitoring: {enabled: false}`", "tencent", {"monitoring": {"enabled": False}}),
    ("`{none: \"<reason>\"}`: not backed up", "alibaba",
     {"databases": [{"name": "production-weaviate", "backup": {"none": "rebuilt from the source documents"}}]}),
    ("`keepDaily` (7, at least 1)", "alibaba", {"backups": {"keepDaily": 1}}),
    ("`database` is the PostgreSQL database, default `future_user`", "alibaba",
     {"databases": [{"name": "production-postgres", "kind": "postgres"}]}),
]  # fmt: skip


@pytest.mark.parametrize(("words", "stack", "changes"), PROSE_EXAMPLES, ids=lambda v: str(v)[:30])
def test_each_value_the_readme_says_passes_does(words: str, stack: str, changes: dict[str, Any]):
    assert words in README, "the README no longer says this: update the example"
    plan_of(stack, exact=False, **changes)
