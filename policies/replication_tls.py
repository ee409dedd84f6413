"""replication-over-tls: cross-cloud replication runs only over verified TLS, between the two hosts only.

The link between the Alibaba primaries and the Tencent replicas crosses the public Internet. The
program's replication commands render the parameters ``TLS_VERIFY=verify-full`` and ``CA_FILE``
(the CA the program generates), and their scripts turn peer verification on (MySQL
``SOURCE_SSL_VERIFY_SERVER_CERT``, PostgreSQL ``hostssl`` + ``sslmode=verify-full``, Redis
``tls-replication yes``). Checked:

- every replication command: a command whose name has ``-repl-`` or ``-replica-``, or whose
  script sets replication up (``CHANGE MASTER TO``, ``CHANGE REPLICATION SOURCE TO``,
  ``CREATE SUBSCRIPTION``, ``primary_conninfo``, ``REPLICAOF <host> <port>``), renders
  ``TLS_VERIFY=verify-full`` and a non-empty ``CA_FILE``, and writes none of: an ``sslmode=``
  other than ``verify-full`` (a ``$PARAM`` is read from the step's record, ``platform:provisioning:Step``),
  ``MASTER_SSL=0`` / ``SOURCE_SSL=0``, ``MASTER_SSL_VERIFY_SERVER_CERT=0`` /
  ``SOURCE_SSL_VERIFY_SERVER_CERT=0``, ``tls-replication no``, a pg_hba ``host`` or
  ``hostnossl`` entry (plaintext allowed), a MySQL ``REQUIRE NONE``;
- per plan (``props["replication"]``): each source is an engine that can replicate (mysql,
  postgres, redis), its port is exposed to the peer only (``expose: peer``: not ``public``,
  ``admins`` or ``none``), its ``peerCidr`` is the plan's, and a command ``*-repl-<source>``
  sets it up; each replica replicates from the plan's peer (``sourceAddress`` is the peer's
  address) and has a command ``*-replica-<name>``. The commands are required once the stack
  runs commands on its host: a created host waiting for its pinned SSH key runs none.

What it cannot see: a command's text unknown during preview (a replica's script built from the
StackReference before the Alibaba stack has outputs) is not read, and the check runs again on
the outputs at the end of ``pulumi up``; a shell variable other than the step's parameters is
not followed; whether the engine really verifies the certificate is the scripts' and the tests'
job (tests/provisioning); the security-group rules themselves are ``firewall-matches-plan``'s.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._common import UNKNOWN, as_int, host_name, known, stack_plans, step_parameters, step_records, workloads
from ._scan import command_script
from .facts import COMMAND, LOCAL_COMMAND, REPLICABLE_KINDS

REPLICATING_COMMANDS = (COMMAND, LOCAL_COMMAND)
TLS_VERIFY = "verify-full"
_REPLICATION_NAME = re.compile(r"-repl(?:ica)?-")
_STATEMENT = re.compile(
    r"(?i)\bCHANGE\s+(?:MASTER|REPLICATION\s+SOURCE)\s+TO\b|\bCREATE\s+SUBSCRIPTION\b|\bprimary_conninfo\b"
    r"|\b(?:REPLICAOF|SLAVEOF)\s+(?!no\s+one\b)[\"'$\w.:{}\[\]-]+\s+[\"'$\w{}-]+"
)
_SSLMODE = re.compile(r"(?i)\bsslmode\s*=\s*['\"]?(\$\{?\w+\}?|[\w-]*)")
_PLAINTEXT: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("MASTER_SSL=0", re.compile(r"(?i)\b(?:MASTER|SOURCE)_SSL\s*=\s*['\"]?0\b")),
    (
        "MASTER_SSL_VERIFY_SERVER_CERT=0",
        re.compile(r"(?i)\b(?:MASTER|SOURCE)_SSL_VERIFY_SERVER_CERT\s*=\s*['\"]?0\b"),
    ),
    ("tls-replication no", re.compile(r"(?i)\btls-replication['\"]?\s+['\"]?no\b")),
    (
        "a pg_hba host/hostnossl entry (plaintext allowed)",
        re.compile(
            r"(?im)(?:^|['\"\s])host(?:nossl)?[ \t]+\S+[ \t]+\S+[ \t]+\S+(?:[ \t]+\S+)?[ \t]+"
            r"(?:trust|md5|password|scram-sha-256|cert|ident|peer|pam|ldap|radius)\b"
        ),
    ),
    ("REQUIRE NONE", re.compile(r"(?i)\bREQUIRE\s+NONE\b")),
)
_COMMENT = re.compile(r"(?m)(?:^|\s)#.*$")

Plan = Mapping[str, Any]


def is_replication_command(resource: PolicyResource) -> bool:
    if resource.resource_type not in REPLICATING_COMMANDS:
        return False
    if _REPLICATION_NAME.search(resource.name):
        return True
    texts = [known(resource.props, key) for key in ("create", "update")]
    return any(isinstance(t, str) and _STATEMENT.search(_COMMENT.sub("", command_script(t))) for t in texts)


def command_problems(resource: PolicyResource, parameters: Any) -> list[str]:
    """Why this replication command could carry data in plaintext or to an unverified peer.

    ``parameters``: what its step renders, from the step's record (``_common.step_parameters``:
    None without a record, ``UNKNOWN`` during preview). The script text is read for the
    statements it runs only.
    """
    found = []
    if parameters is None:
        found.append("has no step record (platform:provisioning:Step): its TLS parameters cannot be read")
    elif parameters is not UNKNOWN:
        if "TLS_VERIFY" not in parameters:
            found.append(f"does not render TLS_VERIFY={TLS_VERIFY}")
        elif parameters["TLS_VERIFY"] != TLS_VERIFY:
            found.append(f"renders TLS_VERIFY={parameters['TLS_VERIFY'] or '(empty)'}, not {TLS_VERIFY}")
        if not parameters.get("CA_FILE", "").strip():
            found.append("renders no CA_FILE: the peer's certificate cannot be verified")
    parameters = parameters if isinstance(parameters, Mapping) else {}
    texts: dict[str, list[str]] = {}
    for key in ("create", "update"):
        text = known(resource.props, key)
        if isinstance(text, str):
            texts.setdefault(text, []).append(key)
    for text, keys in texts.items():
        named = "/".join(keys)
        found += [f"{named} {finding}" for finding in plaintext_findings(command_script(text), parameters)]
    return found


def plaintext_findings(script: str, params: Mapping[str, str]) -> list[str]:
    """What in ``script`` turns TLS or its verification off (comments skipped)."""
    code = _COMMENT.sub("", script)
    found = []
    for match in _SSLMODE.finditer(code):
        value = match.group(1)
        reference = re.fullmatch(r"\$\{?(\w+)\}?", value)
        if reference is not None:
            if reference.group(1) not in params:
                continue  # a shell variable other than the parameters: not followed
            value = params[reference.group(1)]
        if value != TLS_VERIFY:
            found.append(f"uses sslmode={value or '(empty)'}: only {TLS_VERIFY} verifies the peer's certificate")
    for label, pattern in _PLAINTEXT:
        if pattern.search(code):
            found.append(f"writes {label}: replication would run without TLS or without verifying the peer")
    return list(dict.fromkeys(found))


def _address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_interface(str(value)).ip
    except ValueError:
        return None


def plan_problems(host: str, plan: Plan, commands: Sequence[PolicyResource]) -> list[str]:
    replication = plan.get("replication") or {}
    peer = plan.get("peerCidr")
    by_name = {str(w.get("name")): w for w in workloads(plan)}
    # A created host whose SSH key is not pinned yet runs no command (provisioning waits): nothing to set up.
    names = [c.name for c in commands]
    waiting = not any(c.resource_type == COMMAND for c in commands)
    found = []
    for source in replication.get("sources") or []:
        name, port = str(source.get("name")), as_int(source.get("port"))
        if str(source.get("kind")) not in REPLICABLE_KINDS:
            found.append(
                f"{host}: replication source {name} is {source.get('kind')}, which cannot replicate across clouds "
                f"({', '.join(REPLICABLE_KINDS)} can): its off-host backup is its copy"
            )
        specs = [p for p in (by_name.get(name) or {}).get("ports") or [] if as_int(p.get("port")) == port]
        if not specs:
            found.append(f"{host}: replication source {name} has no port {port} in the plan")
        for spec in specs:
            if spec.get("expose") != "peer":
                found.append(
                    f"{host}: replication source {name} exposes port {port} to {spec.get('expose')}; a replication "
                    "port is exposed to the peer only (expose: peer)"
                )
        if source.get("peerCidr") != peer:
            found.append(
                f"{host}: replication source {name} accepts replicas from {source.get('peerCidr')}, not the plan's "
                f"peer {peer}"
            )
        if not waiting and not any(n.endswith(f"-repl-{name}") for n in names):
            found.append(f"{host}: replication source {name} has no command *-repl-{name} that sets it up over TLS")
    for replica in replication.get("replicas") or []:
        name, address = str(replica.get("name")), replica.get("sourceAddress")
        if str(replica.get("kind")) not in REPLICABLE_KINDS:
            found.append(f"{host}: replica {name} is of {replica.get('kind')}, which cannot replicate across clouds")
        expected = _address(str(peer).split("/", 1)[0]) if peer else None
        if expected is None or _address(address) != expected:
            found.append(
                f"{host}: replica {name} replicates from {address}, which is not the plan's peer "
                f"({peer or 'none given'}): replication runs between the two hosts only"
            )
        if not waiting and not any(n.endswith(f"-replica-{name}") for n in names):
            found.append(f"{host}: replica {name} has no command *-replica-{name} that sets it up over TLS")
    return found


def check(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    resources = list(args.resources)
    commands = [r for r in resources if r.resource_type in REPLICATING_COMMANDS]
    records = step_records(resources)
    for command in commands:
        if is_replication_command(command):
            for problem in command_problems(command, step_parameters(command, records)):
                report_violation(f"replication command {command.name}: {problem}", command.urn)
    for urn, plan in stack_plans(resources):
        for message in plan_problems(host_name(urn), plan, commands):
            report_violation(message, urn)


replication_over_tls = StackValidationPolicy(
    name="replication-over-tls",
    description="Cross-cloud replication runs only over TLS that verifies the peer (TLS_VERIFY=verify-full and the "
    "program's CA), never with TLS or verification turned off, and only between the two hosts: each source's port "
    "exposed to the peer alone, each replica fed from the peer.",
    validate=check,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    remediation_steps="Build replication commands with components/replication.py (they render TLS_VERIFY=verify-full "
    "and CA_FILE); keep each replication source's port at expose: peer and replicaOf.host at the peer's address.",
)
