"""The policy verdicts for people (terminal text, a pull-request comment) and for code scanning (SARIF)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape

from policies.pack import PACK_NAME
from preflight.markdown import cell
from preflight.policy import Pack, Violation
from preflight.report import Failure, Preview

COMMENT_MARKER = "<!-- platform-policy-gate -->"
_ORDER = ("mandatory", "advisory")
# GitHub code scanning ranks results by a rule's "security-severity" (CVSS-like, 0-10).
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}


def resource_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def mandatory(previews: Sequence[Preview]) -> int:
    return sum(v.level == "mandatory" for p in previews for v in p.violations)


def print_text(preview: Preview, pack: Pack, console: Console) -> None:
    """Capacity, then the violations grouped by level, as ``pulumi preview`` lists them."""
    console.print("[bold]capacity[/]")
    for report in preview.capacity:
        style = "green" if report.assessment.fits else "red"
        console.print(f"  [{style}]{escape(report.line())}[/]", soft_wrap=True)
    counts = {level: sum(v.level == level for v in preview.violations) for level in _ORDER}
    console.print(
        f"[bold]policy pack {pack_title(pack)}[/]: {counts['mandatory']} mandatory, {counts['advisory']} advisory"
    )
    for level in _ORDER:
        found = [v for v in preview.violations if v.level == level]
        if found:
            console.print(f"[bold {'red' if level == 'mandatory' else 'yellow'}]{level} violations[/]")
        for violation in found:
            name = resource_name(violation.urn)
            # Messages that already start with the resource's name are not prefixed twice.
            where = "" if violation.message.startswith(name) else f"{name}: "
            # soft_wrap: one violation per line, whole, for people and for grep.
            console.print(escape(f"  [{violation.policy}] {where}{violation.message}"), soft_wrap=True)


def pack_title(pack: Pack) -> str:
    return f"{PACK_NAME} {pack.version}"


def markdown(previews: Sequence[Preview], pack: Pack, failures: Sequence[Failure] = ()) -> str:
    """A pull-request comment; the marker lets CI find and update its own comment. A stack whose
    config cannot be read is a row with its one-line error: every stack is always shown."""
    failed = mandatory(previews)
    stacks = ", ".join(f"`{name}`" for name in sorted([p.run.stack for p in previews] + [f.stack for f in failures]))
    lines = [
        COMMENT_MARKER,
        f"## Policy gate: {_headline(failed, len(failures))}",
        "",
        f"Offline preview of {stacks} (the program under Pulumi's mock engine, real provider SDKs) with the "
        f"policy pack `{pack_title(pack)}`, evaluated as `pulumi preview --policy-pack policies` would.",
        "",
        "| stack | resources | mandatory | advisory |",
        "|---|---:|---:|---:|",
    ]
    for preview in previews:
        counts = [sum(v.level == level for v in preview.violations) for level in _ORDER]
        lines.append(f"| `{preview.run.stack}` | {len(preview.run.resources)} | {counts[0]} | {counts[1]} |")
    for failure in failures:
        lines.append(f"| `{failure.stack}` | ❌ cannot be evaluated: {cell(failure.line)} | - | - |")
    examples = [(p.run.stack, key, why) for p in previews for key, why in p.examples]
    if examples:
        lines += ["", "### To replace before the first `pulumi up` (a real run stops at them)", ""]
        lines += ["| stack | key | why |", "|---|---|---|"]
        lines += [f"| `{stack}` | {cell(key)} | {cell(why)} |" for stack, key, why in examples]
    lines += ["", "### Capacity", "", "| host | cloud | usable MiB | workloads MiB | OS reserve MiB | verdict |"]
    lines.append("|---|---|---:|---:|---:|---|")
    for report in (c for p in previews for c in p.capacity):
        found = report.assessment
        lines.append(
            f"| {found.host} | {found.cloud} | {found.limit_mib} | {found.used_mib} | {found.reserve_mib} | "
            f"{'✅' if found.fits else '❌'} {cell(report.verdict)} |"
        )
    for level in _ORDER:
        found = [(p.run.stack, v) for p in previews for v in p.violations if v.level == level]
        if not found:
            continue
        lines += ["", f"### {level.capitalize()} ({len(found)})", "", "| stack | policy | resource | message |"]
        lines.append("|---|---|---|---|")
        lines += [f"| `{stack}` | `{v.policy}` | `{resource_name(v.urn)}` | {cell(v.message)} |" for stack, v in found]
    lines += ["", "<details><summary>Policies</summary>", "", "| policy | level | kind | checks |", "|---|---|---|---|"]
    lines += [
        f"| `{info.name}` | {pack.level(info.name)} | {info.kind} | {cell(info.description)} |"
        for info in pack.policies.values()
    ]
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def _headline(failed: int, unreadable: int = 0) -> str:
    if unreadable:
        return f"❌ {unreadable} stack{'s' if unreadable != 1 else ''} cannot be evaluated (bad config)"
    return f"❌ {failed} mandatory violation{'s' if failed != 1 else ''}" if failed else "✅ passed"


def sarif(previews: Sequence[Preview], pack: Pack) -> dict[str, Any]:
    """SARIF 2.1.0: one run, a rule per policy, a result per violation at its stack file."""
    names = list(pack.policies)
    rules = [
        {
            "id": info.name,
            "name": info.name,
            "shortDescription": {"text": info.description},
            "fullDescription": {"text": info.description},
            "help": {"text": info.remediation or info.description},
            "defaultConfiguration": {"level": _sarif_level(pack.level(info.name))},
            "properties": {
                "tags": ["pulumi-policy", f"{info.kind}-policy"],
                **({"security-severity": _SECURITY_SEVERITY[info.severity]} if info.severity else {}),
            },
        }
        for info in pack.policies.values()
    ]
    results = [_result(preview.run.stack, violation, names) for preview in previews for violation in preview.violations]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": PACK_NAME, "version": pack.version, "rules": rules}},
                "automationDetails": {"id": "platform-policy-gate/"},
                "results": results,
            }
        ],
    }


def _sarif_level(level: str) -> str:
    return {"mandatory": "error", "advisory": "warning"}.get(level, "none")


def _result(stack: str, violation: Violation, names: list[str]) -> dict[str, Any]:
    fingerprint = hashlib.sha256(f"{violation.policy}\0{violation.urn}\0{violation.message}".encode()).hexdigest()
    return {
        "ruleId": violation.policy,
        "ruleIndex": names.index(violation.policy),
        "level": _sarif_level(violation.level),
        "message": {"text": f"{resource_name(violation.urn)}: {violation.message}"},
        "locations": [
            {
                # The stack file is where a plan is written; the URN names the resource.
                "physicalLocation": {"artifactLocation": {"uri": f"Pulumi.{stack}.yaml"}, "region": {"startLine": 1}},
                "logicalLocations": [{"fullyQualifiedName": violation.urn, "kind": "resource"}],
            }
        ],
        "partialFingerprints": {"platformPolicy/v1": fingerprint},
    }
