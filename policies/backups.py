"""database-backups and backup-waivers: every database is backed up on a schedule, with a copy off the host.

From each host's plan (the stack's ``plan`` output, ``plan.Plan.props()``):

- every database (role ``database:*``) says ``backup: {mode: scheduled}``, the plan has a
  ``backups.schedule`` and an off-host target (``backups.offHost`` not null); or it says
  ``backup: {mode: none, reason: ...}`` with a reason, which ``backup-waivers`` (advisory) lists;
- for a scheduled database, once the stack runs commands on its host (a created host waits for
  its pinned SSH key with none), a backup command (a command whose name ends in ``-backup-<db>``)
  whose step (its record, ``platform:provisioning:Step``) renders the database as ``NAME``, the
  plan's schedule as ``SCHEDULE`` and, when the bucket's name is known, ``OFF_HOST_URL`` within
  ``oss://<bucket>/<prefix>`` (the off-host target), and whose script names no other literal OSS URL.

When the plan backs anything up off the host, from the stack's resources:

- exactly one OSS bucket (``alicloud:oss/bucket:Bucket``), ``protect``ed, with versioning
  ``Enabled`` and server-side encryption (inline, or the SDK's ``BucketVersioning`` /
  ``BucketServerSideEncryption`` resources on it); no public ACL (inline ``acl`` or a
  ``BucketAcl``), no bucket policy that grants anyone (``Principal: *``), and a public-access
  block (``BucketPublicAccessBlock`` on it, or the account's ``AccountPublicAccessBlock``);
- enabled lifecycle rules that expire, by age, the copies under ``<prefix>daily/`` (the plan
  keeps them ``keepDaily`` days) and, with weekly backups, ``<prefix>weekly/`` (``7 *
  keepWeekly`` days), the folders components/offsite.py uploads to; no expiry (of current or
  noncurrent versions) sooner than the longest retention of the folders its rule reaches (a
  rule over the whole prefix reaches both), and none on a fixed date;
- a RAM role that ECS may assume (trust ``ecs.aliyuncs.com``), attached to the stack's instance
  (``ram.RoleAttachment``, ``ecs.RamRoleAttachment`` or the instance's ``roleName``), so the host
  writes the bucket with the role's short-lived credentials.

In every stack, backups or not: no ``ram.AccessKey`` resource, and no command (its texts and
environment) or instance user data that carries a static cloud credential: a key id
(``_scan.secret_literals``' patterns), a literal assigned to an access-key setting
(``AccessKeyId``, ``ALIBABA_CLOUD_ACCESS_KEY_ID``, ``access_key_secret``, ...), an
``--access-key-id`` / ``--access-key-secret`` option or ``ossutil``'s ``-i``/``-k`` with a value,
or an environment variable of such a name. Reading the role's temporary credentials from the
instance metadata (``$(...)``, ``$VAR``) is not a literal and passes.

What it cannot see: the object keys the scripts really write (the daily/ and weekly/ layout is
components/offsite.py's and the backup script's, taken as given); the RAM policy's statements
(which actions on which bucket) beyond the role's trust; values unknown during preview (a
created bucket's name, a command's text), which are not read: the links between resources go
through their property dependencies, which are known.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from ._common import UNKNOWN, as_int, host_name, plain, settings, stack_plans, step_parameters, step_records
from ._common import workloads as plan_workloads
from ._scan import command_script, secret_literals
from .facts import COMMAND, COMMANDS, INSTANCES, OSS_BUCKET, STACK

REMOTE_COMMAND = COMMAND
BUCKET = OSS_BUCKET
BUCKET_VERSIONING = "alicloud:oss/bucketVersioning:BucketVersioning"
BUCKET_ENCRYPTION = "alicloud:oss/bucketServerSideEncryption:BucketServerSideEncryption"
BUCKET_ACL = "alicloud:oss/bucketAcl:BucketAcl"
BUCKET_POLICY = "alicloud:oss/bucketPolicy:BucketPolicy"
BUCKET_PUBLIC_ACCESS_BLOCK = "alicloud:oss/bucketPublicAccessBlock:BucketPublicAccessBlock"
ACCOUNT_PUBLIC_ACCESS_BLOCK = "alicloud:oss/accountPublicAccessBlock:AccountPublicAccessBlock"
RAM_ROLE = "alicloud:ram/role:Role"
RAM_ROLE_ATTACHMENT = "alicloud:ram/roleAttachment:RoleAttachment"
ECS_RAM_ROLE_ATTACHMENT = "alicloud:ecs/ramRoleAttachment:RamRoleAttachment"
RAM_ACCESS_KEY = "alicloud:ram/accessKey:AccessKey"
ECS_SERVICE = "ecs.aliyuncs.com"
PUBLIC_ACLS = ("public-read", "public-read-write")
# The folders under ``backups.offHost.prefix`` the host uploads each day's and each week's copy to.
DAILY, WEEKLY = "daily/", "weekly/"

SCHEMA = PolicyConfigSchema(
    properties={
        "sseAlgorithms": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "default": ["AES256", "KMS", "SM4"],
            "description": "server-side encryption algorithms the backup bucket may use (OSS offers these three)",
        },
    }
)

# Settings that hold a static AccessKey, given a literal: AccessKeyId=..., "accessKeySecret": "...",
# ALIBABA_CLOUD_ACCESS_KEY_ID=..., OSS_ACCESS_KEY_SECRET=..., access_key_id = ...
_KEY_SETTING = r"(?:[A-Za-z0-9]+_)*(?:access[_-]?key(?:[_-]?(?:id|secret))?|secret[_-]?access[_-]?key)"
_KEY_ASSIGNED = re.compile(rf"(?i)\b({_KEY_SETTING})\b['\"]?[ \t]*[=:][ \t]*(['\"]?)([^\s'\",}}]+)")
_KEY_OPTION = re.compile(r"(?i)(--access[_-]?key[_-]?(?:id|secret)|--secret[_-]?access[_-]?key)(?:=|\s+)(['\"]?)(\S+)")
_OSSUTIL_KEY = re.compile(r"\bossutil\w*\b[^\n]*\s(-[ik])\s+(['\"]?)(\S+)")
_KEY_ENVIRONMENT = re.compile(rf"(?i)^{_KEY_SETTING}$|^(?:ALICLOUD|ALIBABA_CLOUD|OSS)_(?:ACCESS|SECRET)_KEY\w*$")
_OSS_URL = re.compile(r"oss://[^\s'\"$]+")
_KEY_FINDINGS = ("AccessKey", "SecretId", "access key", "ACCESS_KEY", "SECRET_KEY", "SECRET_ID")

Plan = Mapping[str, Any]


# ---------------------------------------------------------------------------------------
# The plan: what each database declares
# ---------------------------------------------------------------------------------------


def databases(plan: Plan) -> list[dict[str, Any]]:
    """The plan's own databases (role ``database:<kind>``), not the existing engines it counts."""
    return [w for w in plan_workloads(plan) if str(w.get("role") or "").startswith("database:")]


def backup_mode(workload: Mapping[str, Any]) -> str | None:
    backup = workload.get("backup")
    return str(backup.get("mode")) if isinstance(backup, Mapping) else None


def scheduled(plan: Plan) -> list[str]:
    """The databases the plan backs up on its schedule."""
    return [str(db["name"]) for db in databases(plan) if backup_mode(db) == "scheduled"]


def waived(plan: Plan) -> list[tuple[str, str]]:
    """``(database, reason)`` for each database the plan keeps without backups."""
    found = []
    for db in databases(plan):
        backup = db.get("backup")
        if isinstance(backup, Mapping) and backup.get("mode") == "none":
            found.append((str(db["name"]), str(backup.get("reason") or "").strip()))
    return found


def plan_problems(host: str, plan: Plan) -> list[str]:
    backups = plan.get("backups")
    backups = backups if isinstance(backups, Mapping) else None
    off_host = backups.get("offHost") if backups is not None else None
    schedule = str(backups.get("schedule") or "").strip() if backups is not None else ""
    found = []
    for db in databases(plan):
        name, mode = db.get("name"), backup_mode(db)
        if mode == "scheduled":
            if not schedule:
                found.append(
                    f"{host}: database {name} is backed up on a schedule, but the plan has none (backups.schedule)"
                )
            if not isinstance(off_host, Mapping):
                found.append(
                    f"{host}: database {name} has no off-host target (backups.offHost is null): a backup on the "
                    "host dies with the host; give backups.offHost or say backup: {none: <reason>}"
                )
        elif mode == "none":
            if not str((db.get("backup") or {}).get("reason") or "").strip():
                found.append(f"{host}: database {name} says backup: none without a reason; give the reason")
        else:
            found.append(
                f"{host}: database {name} declares no backup (backup mode {mode!r}): back it up on the plan's "
                "schedule, or say backup: {none: <reason>}"
            )
    return found


# ---------------------------------------------------------------------------------------
# The stack: bucket, role, commands
# ---------------------------------------------------------------------------------------


def _read(props: Mapping[str, Any], key: str) -> Any:
    """``props[key]`` as plain values (None when absent), or ``UNKNOWN`` when any part of it is not known yet."""
    try:
        return plain(props.get(key))
    except UnknownValueError:
        return UNKNOWN


def provisions(resources: Sequence[PolicyResource]) -> bool:
    """True when the stack runs commands on its host. A created host whose SSH key is not pinned yet
    has none (provisioning waits, program.py): no database runs there, so none needs its backup command."""
    return any(r.resource_type == REMOTE_COMMAND for r in resources)


def _of_type(resources: Sequence[PolicyResource], *types: str) -> list[PolicyResource]:
    return [r for r in resources if r.resource_type in types]


def _links(resource: PolicyResource, key: str, target: PolicyResource, *names: Any) -> bool:
    """True when ``resource.key`` depends on ``target`` or holds one of its ``names`` (known values)."""
    if any(d.urn == target.urn for d in resource.property_dependencies.get(key, [])):
        return True
    value = _read(resource.props, key)
    return isinstance(value, str) and value in [n for n in names if isinstance(n, str) and n]


def _on_bucket(resources: Sequence[PolicyResource], bucket: PolicyResource, *types: str) -> list[PolicyResource]:
    name = _read(bucket.props, "bucket")
    return [r for r in _of_type(resources, *types) if _links(r, "bucket", bucket, name)]


def bucket_problems(
    resources: Sequence[PolicyResource], bucket: PolicyResource, plan: Plan, algorithms: Sequence[str]
) -> list[str]:
    props = bucket.props
    found = []
    if not bucket.opts.protect:
        found.append("is not protected: `pulumi destroy` or a replacing change would delete every off-host backup")
    versioning = _read(props, "versioning")
    statuses = [versioning.get("status") if isinstance(versioning, Mapping) else None]
    statuses += [_read(r.props, "status") for r in _on_bucket(resources, bucket, BUCKET_VERSIONING)]
    if UNKNOWN not in statuses and "Enabled" not in statuses:
        found.append("has no versioning (versioning.status: Enabled): an overwritten or deleted backup is gone")
    rule = _read(props, "serverSideEncryptionRule")
    algorithm = [rule.get("sseAlgorithm") if isinstance(rule, Mapping) else None]
    algorithm += [_read(r.props, "sseAlgorithm") for r in _on_bucket(resources, bucket, BUCKET_ENCRYPTION)]
    if UNKNOWN not in algorithm and not any(a in algorithms for a in algorithm):
        found.append(
            f"has no server-side encryption (serverSideEncryptionRule.sseAlgorithm one of {', '.join(algorithms)})"
        )
    found += _public_problems(resources, bucket)
    found += lifecycle_problems(props, plan)
    return found


def _public_problems(resources: Sequence[PolicyResource], bucket: PolicyResource) -> list[str]:
    found = []
    acls = [_read(bucket.props, "acl")] + [_read(r.props, "acl") for r in _on_bucket(resources, bucket, BUCKET_ACL)]
    public = sorted({str(acl) for acl in acls if acl in PUBLIC_ACLS})
    if public:
        found.append(f"has a public ACL ({', '.join(public)}): anyone could read the backups")
    policies = [_read(bucket.props, "policy")]
    policies += [_read(r.props, "policy") for r in _on_bucket(resources, bucket, BUCKET_POLICY)]
    if any(isinstance(p, str) and _grants_anyone(p) for p in policies):
        found.append("has a bucket policy that allows anyone (Principal: *)")
    blocks = [_read(r.props, "blockPublicAccess") for r in _on_bucket(resources, bucket, BUCKET_PUBLIC_ACCESS_BLOCK)]
    blocks += [_read(r.props, "blockPublicAccess") for r in _of_type(resources, ACCOUNT_PUBLIC_ACCESS_BLOCK)]
    if UNKNOWN not in blocks and True not in blocks:
        found.append(
            "has no public-access block (oss.BucketPublicAccessBlock with blockPublicAccess: true): nothing stops a "
            "later ACL or bucket policy from publishing the backups"
        )
    return found


def _grants_anyone(document: str) -> bool:
    try:
        parsed = json.loads(document)
    except ValueError:
        return False
    statements = parsed.get("Statement") if isinstance(parsed, Mapping) else None
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        values = principal if isinstance(principal, list) else [principal]
        if isinstance(principal, Mapping):
            values = [v for value in principal.values() for v in (value if isinstance(value, list) else [value])]
        if "*" in values:
            return True
    return False


def _reaches(rule_prefix: Any, prefix: str) -> bool:
    """True when a lifecycle rule with ``rule_prefix`` applies to some object under ``prefix``."""
    rule_prefix = str(rule_prefix or "")
    return prefix.startswith(rule_prefix) or rule_prefix.startswith(prefix)


def retention_folders(plan: Plan) -> dict[str, tuple[int, str]]:
    """Where the host uploads each kind of copy (components/offsite.py), and how long the plan keeps it."""
    backups = plan.get("backups") or {}
    prefix = str((backups.get("offHost") or {}).get("prefix") or "")
    daily, weekly = as_int(backups.get("keepDaily")) or 0, as_int(backups.get("keepWeekly")) or 0
    folders = {f"{prefix}{DAILY}": (daily, f"keepDaily {daily}")}
    if weekly:
        folders[f"{prefix}{WEEKLY}"] = (7 * weekly, f"keepWeekly {weekly} x 7")
    return folders


def lifecycle_problems(props: Mapping[str, Any], plan: Plan) -> list[str]:
    """Expiry by age, never sooner than the plan keeps the copies a rule reaches, over each kind of copy."""
    prefix = str(((plan.get("backups") or {}).get("offHost") or {}).get("prefix") or "")
    folders = retention_folders(plan)
    longest = max(folders.values())
    rules = _read(props, "lifecycleRules")
    if rules is UNKNOWN:
        return []
    found = []
    covered: set[str] = set()
    for index, rule in enumerate(rules or []):
        rule_prefix = str(rule.get("prefix") or "") if isinstance(rule, Mapping) else ""
        if not isinstance(rule, Mapping) or rule.get("enabled") is False or not _reaches(rule_prefix, prefix):
            continue
        reached = [kept for folder, kept in folders.items() if _reaches(rule_prefix, folder)]
        needed, why = max(reached) if reached else longest
        for key in ("expirations", "noncurrentVersionExpirations"):
            for expiration in rule.get(key) or []:
                # A bridged provider's state holds 0 (and "") for an unset field: OSS's days are >= 1.
                days = as_int(expiration.get("days")) or None
                fixed = expiration.get("date") or expiration.get("createdBeforeDate")
                if days is not None and key == "expirations":
                    covered |= {folder for folder in folders if folder.startswith(rule_prefix)}
                versions = "versions" if key == "expirations" else "noncurrent versions"
                if days is not None and days < needed:
                    found.append(
                        f"lifecycleRules[{index}] expires {versions} under {rule_prefix or '/'} after {days} day(s), "
                        f"sooner than the plan keeps the backups there ({needed} days: {why})"
                    )
                elif fixed:
                    found.append(
                        f"lifecycleRules[{index}] expires {versions} under {rule_prefix or '/'} on a fixed date, "
                        "not by age"
                    )
    for folder, (kept, _why) in folders.items():
        if folder not in covered:
            found.append(
                f"has no enabled lifecycle rule that expires the backups under {folder} by age (expirations.days >= "
                f"{kept}): the off-host copies would pile up forever"
            )
    return found


def _ecs_may_assume(role: PolicyResource) -> bool:
    services = _read(role.props, "services")
    if isinstance(services, Sequence) and not isinstance(services, str) and ECS_SERVICE in list(services):
        return True
    for key in ("assumeRolePolicyDocument", "document"):
        document = _read(role.props, key)
        if isinstance(document, str) and ECS_SERVICE in document:
            try:
                parsed = json.loads(document)
            except ValueError:
                continue
            if ECS_SERVICE in json.dumps(parsed.get("Statement")):
                return True
    return False


def role_problems(resources: Sequence[PolicyResource], instance_id: Any) -> list[str]:
    """Why no ECS role is attached to the stack's instance ([] when one is)."""
    roles = [r for r in _of_type(resources, RAM_ROLE) if _ecs_may_assume(r)]
    instances = _of_type(resources, *INSTANCES)
    if not roles:
        return [
            "no RAM role that ECS may assume (trust ecs.aliyuncs.com): the host could write the backup bucket only "
            "with a static AccessKey"
        ]

    def names(role: PolicyResource) -> list[Any]:
        return [_read(role.props, "roleName"), _read(role.props, "name")]

    def to_instance(resource: PolicyResource, key: str) -> bool:
        if any(d.resource_type in INSTANCES for d in resource.property_dependencies.get(key, [])):
            return True
        value = _read(resource.props, key)
        values = [value] if isinstance(value, str) else list(value) if isinstance(value, Sequence) else []
        return isinstance(instance_id, str) and instance_id in values

    for role in roles:
        for attachment in _of_type(resources, RAM_ROLE_ATTACHMENT):
            if _links(attachment, "roleName", role, *names(role)) and to_instance(attachment, "instanceIds"):
                return []
        for attachment in _of_type(resources, ECS_RAM_ROLE_ATTACHMENT):
            if _links(attachment, "ramRoleName", role, *names(role)) and to_instance(attachment, "instanceId"):
                return []
        if any(_links(instance, "roleName", role, *names(role)) for instance in instances):
            return []
    shown = ", ".join(r.name for r in roles)
    return [
        f"the RAM role {shown} is attached to no instance of the stack (ram.RoleAttachment, ecs.RamRoleAttachment "
        "or the instance's roleName): the host cannot use it"
    ]


def backup_command_problems(
    resources: Sequence[PolicyResource], host: str, plan: Plan, bucket: Any = None
) -> list[tuple[str, str]]:
    """For each scheduled database: a backup command that names it, renders the plan's schedule and,
    when ``bucket`` (the backup bucket's name) is known, copies to ``oss://<bucket>/<prefix>``."""
    backups = plan.get("backups") or {}
    schedule = str(backups.get("schedule") or "")
    off_host = backups.get("offHost")
    target = f"oss://{bucket}/{off_host.get('prefix') or ''}" if isinstance(off_host, Mapping) else None
    commands = _of_type(resources, *COMMANDS)
    records = step_records(resources)
    found: list[tuple[str, str]] = []
    for db in scheduled(plan):
        matches = [c for c in commands if c.name.endswith(f"-backup-{db}")]
        if not matches and provisions(resources):
            found.append((f"{host}: database {db} is backed up on a schedule, but no command ends in -backup-{db}", ""))
        for command in matches:
            parameters = step_parameters(command, records)
            if parameters is UNKNOWN:
                continue  # built from values unknown during preview: nothing to read
            named = f"{host}: backup command {command.name}"
            if parameters is None:
                found.append(
                    (
                        f"{named} has no step record (platform:provisioning:Step): what it backs up cannot be read",
                        command.urn,
                    )
                )
                continue
            if parameters.get("NAME") != db:
                found.append((f"{named} does not name database {db}", command.urn))
            if schedule and parameters.get("SCHEDULE") != schedule:
                found.append((f"{named} does not render the plan's schedule {schedule!r}", command.urn))
            if target and isinstance(bucket, str) and bucket:
                create = _read(command.props, "create")
                script = command_script(create) if isinstance(create, str) else ""
                for problem in _target_problems(parameters.get("OFF_HOST_URL", ""), script, target):
                    found.append((f"{named} {problem}", command.urn))
    return found


def _target_problems(url: str, script: str, target: str) -> list[str]:
    """The step copies to ``url`` (its ``OFF_HOST_URL``), within ``target`` (the ``oss://<bucket>/<prefix>``
    of the plan), and its script names no other literal OSS URL outside it."""
    found = [] if url else [f"does not copy to the off-host target {target}"]
    for named in dict.fromkeys([url, *sorted(set(_OSS_URL.findall(script)))]):
        if named and not named.startswith(target):
            shown = named if not secret_literals(named) else "(an OSS URL withheld: it looks like it holds a secret)"
            found.append(f"copies to {shown}, outside the off-host target {target}")
    return found


# ---------------------------------------------------------------------------------------
# Static credentials
# ---------------------------------------------------------------------------------------


def static_credentials(text: str) -> list[str]:
    """What in ``text`` is a static cloud credential (never the value itself). A command line ends
    at a newline, so each distinct line is read once (``_line_credentials``)."""
    found = [f for f in secret_literals(text) if any(word in f for word in _KEY_FINDINGS)]
    for line in text.split("\n"):
        found += _line_credentials(line)
    return list(dict.fromkeys(found))


@functools.lru_cache(maxsize=1 << 16)
def _line_credentials(line: str) -> tuple[str, ...]:
    found = []
    for pattern, what in ((_KEY_ASSIGNED, "a literal assigned to {}"), (_KEY_OPTION, "a literal {} option")):
        for match in pattern.finditer(line):
            if not _is_reference(match.group(3)):
                found.append(what.format(match.group(1)))
    for match in _OSSUTIL_KEY.finditer(line):
        if not _is_reference(match.group(3)):
            found.append(f"an ossutil {match.group(1)} <key> argument")
    return tuple(found)


def _is_reference(value: str) -> bool:
    """A shell reference, a path or a placeholder is not a literal key."""
    return value.startswith(("$", "/", "<", "{{", "(")) or len(value) < 4 or value.lower() in ("null", "none", "true")


def _decoded(text: str) -> list[str]:
    try:
        return [base64.b64decode(text, validate=True).decode()]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return []


def credential_problems(resources: Sequence[PolicyResource]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for resource in resources:
        kind = resource.resource_type
        if kind == RAM_ACCESS_KEY:
            found.append(
                (
                    "creates a RAM AccessKey, a static credential that never expires: hosts use their RAM role",
                    resource.urn,
                )
            )
        elif kind in COMMANDS:
            texts: dict[str, list[str]] = {}  # the program's commands run one script on create and update
            for key in ("create", "update", "delete"):
                text = _read(resource.props, key)
                if isinstance(text, str):
                    texts.setdefault(text, []).append(key)
            for text, keys in texts.items():
                for finding in static_credentials(command_script(text)):
                    message = f"{'/'.join(keys)} holds {finding}: use the instance's RAM role, never an AccessKey"
                    found.append((message, resource.urn))
            environment = _read(resource.props, "environment")
            for name in environment if isinstance(environment, Mapping) else []:
                if _KEY_ENVIRONMENT.match(str(name)):
                    found.append(
                        (f"environment sets {name}: a static AccessKey; use the instance's RAM role", resource.urn)
                    )
        elif kind in INSTANCES:
            for key in ("userData", "userDataRaw"):
                text = _read(resource.props, key)
                data = [text, *_decoded(text)] if isinstance(text, str) else []
                for finding in dict.fromkeys(f for t in data for f in static_credentials(t)):
                    found.append(
                        (f"{key} holds {finding}: use the instance's RAM role, never an AccessKey", resource.urn)
                    )
    return found


# ---------------------------------------------------------------------------------------
# The policies
# ---------------------------------------------------------------------------------------


def _stack_output(resources: Sequence[PolicyResource], key: str) -> Any:
    stack = next((r for r in resources if r.resource_type == STACK), None)
    return _read(stack.props, key) if stack is not None else None


def check(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = settings(SCHEMA, args.get_config())
    resources = list(args.resources)
    for message, urn in credential_problems(resources):
        report_violation(message, urn)
    for urn, plan in stack_plans(resources):
        host = host_name(urn)
        for message in plan_problems(host, plan):
            report_violation(message, urn)
        buckets = _of_type(resources, BUCKET)
        bucket_name = _read(buckets[0].props, "bucket") if len(buckets) == 1 else None
        for message, at in backup_command_problems(resources, host, plan, bucket_name):
            report_violation(message, at or urn)
        if not scheduled(plan) or not isinstance((plan.get("backups") or {}).get("offHost"), Mapping):
            continue
        if len(buckets) != 1:
            shown = ", ".join(b.name for b in buckets) or "none"
            report_violation(
                f"{host}: the plan copies backups off the host, so the stack holds exactly one OSS bucket for them; "
                f"found {len(buckets)} ({shown})",
                urn,
            )
        for bucket in buckets[:1] if len(buckets) == 1 else []:
            wanted = (plan["backups"]["offHost"] or {}).get("bucket")
            name = _read(bucket.props, "bucket")
            if wanted and isinstance(name, str) and name != wanted:
                report_violation(f"{host}: bucket {bucket.name} is named {name}, the plan says {wanted}", bucket.urn)
            for problem in bucket_problems(resources, bucket, plan, config["sseAlgorithms"]):
                report_violation(f"{host}: backup bucket {bucket.name} {problem}", bucket.urn)
        for problem in role_problems(resources, _stack_output(resources, "instanceId")):
            report_violation(f"{host}: {problem}", urn)


def check_waivers(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for urn, plan in stack_plans(args.resources):
        for name, reason in waived(plan):
            if reason:
                report_violation(f"{host_name(urn)}: database {name} is not backed up (backup: none): {reason}", urn)


database_backups = StackValidationPolicy(
    name="database-backups",
    description="Every database is backed up on the plan's schedule to an off-host copy (one versioned, encrypted, "
    "private, protected OSS bucket whose lifecycle keeps the plan's retention, written through the instance's RAM "
    "role), unless the plan says backup: none with a reason; no static AccessKey anywhere.",
    validate=check,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=SCHEMA,
    remediation_steps="Leave platform:backups on (schedule, keepDaily/keepWeekly, offHost) and let the program "
    "create the bucket, its RAM role and the per-database backup commands; give a database backup: {none: <reason>} "
    "only when its data can be rebuilt.",
)

backup_waivers = StackValidationPolicy(
    name="backup-waivers",
    description="Lists each database the plan keeps without backups (backup: none) with its reason.",
    validate=check_waivers,
    enforcement_level=EnforcementLevel.ADVISORY,
    severity=Severity.MEDIUM,
    remediation_steps="Check that the reason still holds; remove backup: none to back the database up.",
)
