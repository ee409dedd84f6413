"""database-backups and backup-waivers: scheduled backups with an off-host copy, or a stated reason.

The fixtures are stacks in the engine's shape (tests/policies/shapes.py): a plan as the program
exports it (plan.Plan.props()), the backup bucket and its settings, the RAM role and its
attachment, and the per-database backup commands as provisioning renders them. Each failing
fixture breaks one thing of a passing one. The shipped stacks, run by the real program under the
mock engine, pass.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from functools import cache
from typing import Any

from plan import DEFAULT_DATABASES
from policies.facts import (
    ALIBABA_INSTANCE,
    COMMAND,
    OFF_HOST_BACKUPS,
    OSS_BUCKET,
    STEP,
    TENCENT_INSTANCE,
    step_record_name,
)
from preflight.engine import UNKNOWN
from tests.policies.shapes import (
    HOST,
    created,
    edit_inputs,
    flagged,
    resource,
    run_of,
    run_program,
    script_command,
    script_step,
    shipped,
    step_parameter,
    violations,
    with_plan,
    without,
)

POLICY = "database-backups"
MYSQL_BACKUP_STEP = step_record_name("alibaba-db-backup-production-mysql")
WAIVERS = "backup-waivers"
BUCKET = OSS_BUCKET
BUCKET_VERSIONING = "alicloud:oss/bucketVersioning:BucketVersioning"
BUCKET_ENCRYPTION = "alicloud:oss/bucketServerSideEncryption:BucketServerSideEncryption"
BUCKET_ACL = "alicloud:oss/bucketAcl:BucketAcl"
BUCKET_POLICY = "alicloud:oss/bucketPolicy:BucketPolicy"
PUBLIC_ACCESS_BLOCK = "alicloud:oss/bucketPublicAccessBlock:BucketPublicAccessBlock"
ACCOUNT_PUBLIC_ACCESS_BLOCK = "alicloud:oss/accountPublicAccessBlock:AccountPublicAccessBlock"
RAM_ROLE = "alicloud:ram/role:Role"
RAM_ROLE_ATTACHMENT = "alicloud:ram/roleAttachment:RoleAttachment"
ECS_RAM_ROLE_ATTACHMENT = "alicloud:ecs/ramRoleAttachment:RamRoleAttachment"
RAM_ACCESS_KEY = "alicloud:ram/accessKey:AccessKey"

INSTANCE_ID = "i-wz9example0000000001"
BUCKET_NAME = "platform-fixture-backups"
ROLE_NAME = "fixture-backups"
SCHEDULE = "*-*-* 03:00:00"
NEO4J_REASON = "rebuilt from MySQL by the nightly import"
TRUST = json.dumps(
    {
        "Version": "1",
        "Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": ["ecs.aliyuncs.com"]}}],
    }
)
# Built at run time: no key-looking literal in a committed file.
FAKE_KEY_ID = "LTAI" + "0fixture" * 2
FAKE_KEY_SECRET = "fixture" * 4


def _database(name: str, kind: str, port: int, backup: dict[str, Any] | None) -> dict[str, Any]:
    spec = {"port": port, "protocol": "tcp", "expose": "peer", "purpose": kind}
    return {
        "name": name,
        "role": f"database:{kind}",
        "memoryMib": 128,
        "family": None,
        "ports": [spec],
        "backup": backup,
    }


def alibaba_plan(**backups: Any) -> dict[str, Any]:
    """The alibaba plan as the program exports it: two databases backed up, one waived with a reason."""
    return {
        "cloud": "alibaba",
        "hostMode": "adopt",
        "hostMemoryMib": 1843,
        "sshPort": 22,
        "peerCidr": "101.33.251.158/32",
        "adminCidrs": ["203.0.113.0/24"],
        "workloads": [
            _database("production-mysql", "mysql", 3306, {"mode": "scheduled"}),
            _database("production-redis", "redis", 6379, {"mode": "scheduled"}),
            _database("production-neo4j", "neo4j", 7687, {"mode": "none", "reason": NEO4J_REASON}),
            {"name": "backup-jobs", "role": "transient:backup-jobs", "memoryMib": 80, "family": None, "ports": []},
        ],
        "retired": [],
        "backups": {
            "schedule": SCHEDULE,
            "randomizedDelayS": 1800,
            "keepDaily": 7,
            "keepWeekly": 4,
            "drillSchedule": "Sun *-*-* 05:00:00",
            "drillMemoryMib": 64,
            "offHost": {"bucket": None, "prefix": "platform/"},
            **backups,
        },
        "replication": {"sources": [], "replicas": []},
    }


def _lifecycle(days: int = 28, **extra: Any) -> list[dict[str, Any]]:
    rule = {"enabled": True, "id": "retention", "prefix": "platform/", "expirations": [{"days": days}]}
    return [{**rule, **extra}]


def _folder_rules(daily: int = 8, weekly: int = 29, noncurrent: int = 29) -> list[dict[str, Any]]:
    """components/offsite.py's layout: each day's copy under daily/, each week's under weekly/."""
    return [
        {"enabled": True, "id": "daily", "prefix": "platform/daily/", "expirations": [{"days": daily}]},
        {"enabled": True, "id": "weekly", "prefix": "platform/weekly/", "expirations": [{"days": weekly}]},
        {
            "enabled": True,
            "id": "versions",
            "prefix": "platform/",
            "noncurrentVersionExpirations": [{"days": noncurrent}],
            "abortMultipartUploads": [{"days": 2}],
        },
    ]


def bucket_inputs(**changes: Any) -> dict[str, Any]:
    inputs = {
        "bucket": BUCKET_NAME,
        "acl": "private",
        "versioning": {"status": "Enabled"},
        "serverSideEncryptionRule": {"sseAlgorithm": "AES256"},
        "lifecycleRules": _lifecycle(noncurrentVersionExpirations=[{"days": 28}]),
    }
    inputs.update(changes)
    return {key: value for key, value in inputs.items() if value is not None}


BACKUP_BODY = 'echo "backing up $NAME to $OFF_HOST_URL"\n'
METADATA_BODY = (
    'creds="$(curl -fsS "http://100.100.100.200/latest/meta-data/ram/security-credentials/$RAM_ROLE")"\n'
    'OSS_ACCESS_KEY_ID="$(jq -r .AccessKeyId <<<"$creds")"\n'
    'OSS_ACCESS_KEY_SECRET="$(jq -r .AccessKeySecret <<<"$creds")"\n'
    'OSS_SESSION_TOKEN="$(jq -r .SecurityToken <<<"$creds")"\n'
    "export OSS_ACCESS_KEY_ID OSS_ACCESS_KEY_SECRET OSS_SESSION_TOKEN\n"
)


def backup_command(db: str, *, body: str = BACKUP_BODY, **params: Any) -> Any:
    rendered = {
        "NAME": db,
        "SCHEDULE": SCHEDULE,
        "OFF_HOST_URL": f"oss://{BUCKET_NAME}/platform/",
        "RAM_ROLE": ROLE_NAME,
        **params,
    }
    return script_step(f"fixture-db-backup-{db}", {k: v for k, v in rendered.items() if v is not None}, body)


def stack(
    plan: dict[str, Any] | None = None,
    *,
    bucket: dict[str, Any] | None = None,
    protect: bool = True,
    extra: Callable[[Any], list[Any]] | None = None,
    block: bool = True,
    role: dict[str, Any] | None = None,
    attach: str = "role-attachment",
    commands: list[Any] | None = None,
    instance: dict[str, Any] | None = None,
) -> Any:
    """A stack that backs up as the plan says; each keyword breaks or varies one part of it."""
    plan = plan if plan is not None else alibaba_plan()
    host = resource(HOST, "fixture-host", {"plan": plan})
    adopted = instance is None
    instance_resource = resource(
        ALIBABA_INSTANCE,
        "fixture-host-instance",
        instance or {},
        parent=host,
        protect=True,
        ignore_changes=["*"] if adopted else [],
    )
    offsite = resource(OFF_HOST_BACKUPS, "fixture-backups", {"plan": plan})
    bucket_resource = resource(
        BUCKET, "fixture-backups-bucket", bucket_inputs() if bucket is None else bucket, parent=offsite, protect=protect
    )
    found = [host, instance_resource, offsite, bucket_resource]
    if block:
        found.append(
            resource(
                PUBLIC_ACCESS_BLOCK,
                "fixture-backups-public-access",
                {"bucket": BUCKET_NAME, "blockPublicAccess": True},
                parent=offsite,
                depends_on={"bucket": [bucket_resource]},
            )
        )
    role_resource = resource(
        RAM_ROLE,
        "fixture-backups-role",
        role if role is not None else {"roleName": ROLE_NAME, "assumeRolePolicyDocument": TRUST},
        parent=offsite,
    )
    found.append(role_resource)
    if attach == "role-attachment":
        found.append(
            resource(
                RAM_ROLE_ATTACHMENT,
                "fixture-backups-role-attachment",
                {"roleName": ROLE_NAME, "instanceIds": [INSTANCE_ID]},
                parent=offsite,
                depends_on={"roleName": [role_resource], "instanceIds": [instance_resource]},
            )
        )
    elif attach == "ecs-attachment":
        found.append(
            resource(
                ECS_RAM_ROLE_ATTACHMENT,
                "fixture-backups-role-attachment",
                {"ramRoleName": ROLE_NAME, "instanceId": INSTANCE_ID},
                parent=offsite,
                depends_on={"ramRoleName": [role_resource], "instanceId": [instance_resource]},
            )
        )
    elif attach == "other-instance":
        found.append(
            resource(
                RAM_ROLE_ATTACHMENT,
                "fixture-backups-role-attachment",
                {"roleName": ROLE_NAME, "instanceIds": ["i-wz9someoneelse00000001"]},
                parent=offsite,
                depends_on={"roleName": [role_resource]},
            )
        )
    found += (
        commands if commands is not None else [backup_command("production-mysql"), backup_command("production-redis")]
    )
    if extra is not None:
        found += extra(bucket_resource)
    return run_of(*found, outputs={"plan": plan, "instanceId": INSTANCE_ID, "publicIp": "47.115.168.107"})


def tencent_stack() -> Any:
    """A plan without databases of its own: nothing to back up, so no bucket and no role."""
    plan = alibaba_plan()
    plan.update(cloud="tencent", workloads=[], backups={**plan["backups"], "offHost": None})
    return run_of(resource(HOST, "fixture-host", {"plan": plan}), outputs={"plan": plan})


def _with_database(plan: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    plan = copy.deepcopy(plan)
    for workload in plan["workloads"]:
        if workload["name"] == name:
            workload.update(changes)
    return plan


def _separate_settings(bucket: Any) -> list[Any]:
    depends = {"bucket": [bucket]}
    return [
        resource(BUCKET_VERSIONING, "b-versioning", {"bucket": BUCKET_NAME, "status": "Enabled"}, depends_on=depends),
        resource(BUCKET_ENCRYPTION, "b-sse", {"bucket": BUCKET_NAME, "sseAlgorithm": "KMS"}, depends_on=depends),
        resource(BUCKET_ACL, "b-acl", {"bucket": BUCKET_NAME, "acl": "private"}, depends_on=depends),
    ]


def _account_block(_bucket: Any) -> list[Any]:
    return [resource(ACCOUNT_PUBLIC_ACCESS_BLOCK, "account-public-access", {"blockPublicAccess": True})]


def _only(*made: Any) -> Callable[[Any], list[Any]]:
    return lambda _bucket: list(made)


def _user_data(text: str) -> dict[str, Any]:
    return {"deletionProtection": True, "userData": base64.b64encode(text.encode()).decode(), "roleName": ROLE_NAME}


@cache
def _neo4j_waived():
    """The real alibaba stack with production-neo4j kept without backups, for a reason."""
    databases = [
        {**db, "backup": {"none": NEO4J_REASON}} if db["name"] == "production-neo4j" else db for db in DEFAULT_DATABASES
    ]
    return run_program("alibaba", databases=databases)


def _waived_without_reason(plan: dict[str, Any]) -> None:
    for workload in plan["workloads"]:
        if workload["name"] == "production-neo4j":
            workload["backup"] = {"mode": "none", "reason": ""}


def _daily_expiry(days: int):
    def edit(inputs: dict[str, Any]) -> None:
        (daily,) = [rule for rule in inputs["lifecycleRules"] if rule["prefix"].endswith("/daily/")]
        daily["expirations"] = [{"days": float(days)}]

    return edit


@cache
def failing_real_stacks():
    """The shipped alibaba stack, run by the real program, with one thing broken."""
    alibaba = shipped("alibaba")
    return {
        "real_stack_without_a_backup_command": without(alibaba, "alibaba-db-backup-production-redis"),
        "real_stack_without_the_role_attachment": without(alibaba, "alibaba-backups-role-attachment"),
        "real_stack_without_the_public_access_block": without(alibaba, "alibaba-backups-public-access-block"),
        "real_bucket_expiring_dailies_early": edit_inputs(alibaba, "alibaba-backups-bucket", _daily_expiry(3)),
        "real_backup_copying_elsewhere": edit_inputs(
            alibaba, MYSQL_BACKUP_STEP, step_parameter("OFF_HOST_URL", "oss://elsewhere/platform/")
        ),
        "real_backup_on_another_schedule": edit_inputs(
            alibaba, MYSQL_BACKUP_STEP, step_parameter("SCHEDULE", "*-*-* 04:00:00")
        ),
        "real_waiver_without_a_reason": with_plan(_neo4j_waived(), _waived_without_reason),
    }


@cache
def passing_stacks():
    instance_role = {"deletionProtection": True, "roleName": ROLE_NAME}
    return {
        "shipped_alibaba": shipped("alibaba"),
        "shipped_tencent": shipped("tencent"),
        "real_stack_with_a_database_waived": _neo4j_waived(),
        # A created host waits for its pinned SSH key: no command runs on it yet, the cloud side is there.
        "created_alibaba_waiting_for_its_host_key": created("alibaba"),
        "created_tencent_waiting_for_its_host_key": created("tencent"),
        "scheduled_with_bucket_and_role": stack(),
        "bucket_settings_as_separate_resources": stack(
            bucket=bucket_inputs(acl=None, versioning=None, serverSideEncryptionRule=None), extra=_separate_settings
        ),
        "account_wide_public_access_block": stack(block=False, extra=_account_block),
        "role_trusted_through_services": stack(role={"name": ROLE_NAME, "services": ["ecs.aliyuncs.com"]}),
        "role_through_the_ecs_attachment": stack(attach="ecs-attachment"),
        "role_named_on_a_declared_instance": stack(attach="none", instance=instance_role),
        "daily_and_weekly_folders_expire_by_their_own_retention": stack(
            bucket=bucket_inputs(lifecycleRules=_folder_rules())
        ),
        "daily_folder_expires_exactly_at_keep_daily": stack(
            bucket=bucket_inputs(lifecycleRules=_folder_rules(daily=7))
        ),
        "no_weekly_folder_without_weekly_backups": stack(
            alibaba_plan(keepWeekly=0), bucket=bucket_inputs(lifecycleRules=_folder_rules()[:1])
        ),
        "expiry_longer_than_retention": stack(bucket=bucket_inputs(lifecycleRules=_lifecycle(days=90))),
        "short_expiry_on_another_prefix": stack(
            bucket=bucket_inputs(lifecycleRules=[*_lifecycle(), *_lifecycle(days=1, id="logs", prefix="logs/")])
        ),
        "weekly_retention_decides": stack(
            alibaba_plan(keepDaily=3, keepWeekly=2), bucket=bucket_inputs(lifecycleRules=_lifecycle(days=14))
        ),
        "credentials_from_the_instance_metadata": stack(
            commands=[backup_command("production-mysql", body=METADATA_BODY), backup_command("production-redis")]
        ),
        "every_database_waived_with_a_reason": stack(
            _with_database(
                _with_database(alibaba_plan(), "production-mysql", backup={"mode": "none", "reason": "a cache"}),
                "production-redis",
                backup={"mode": "none", "reason": "a cache"},
            ),
            commands=[],
        ),
        "no_databases": tencent_stack(),
    }


@cache
def failing_stacks():
    plan = alibaba_plan()
    public_policy = json.dumps(
        {"Version": "1", "Statement": [{"Effect": "Allow", "Principal": ["*"], "Action": ["oss:GetObject"]}]}
    )
    return {
        "database_without_backup": stack(_with_database(plan, "production-mysql", backup=None)),
        "waiver_without_a_reason": stack(
            _with_database(plan, "production-neo4j", backup={"mode": "none", "reason": " "})
        ),
        "no_off_host_target": stack(alibaba_plan(offHost=None)),
        "no_schedule": stack(alibaba_plan(schedule="")),
        "no_backup_command_for_a_database": stack(commands=[backup_command("production-mysql")]),
        "backup_command_without_the_schedule": stack(
            commands=[backup_command("production-mysql", SCHEDULE="daily"), backup_command("production-redis")]
        ),
        "backup_command_copying_elsewhere": stack(
            commands=[
                backup_command("production-mysql", OFF_HOST_URL="oss://somewhere-else/platform/"),
                backup_command("production-redis"),
            ]
        ),
        "backup_command_naming_another_database": stack(
            commands=[backup_command("production-mysql"), backup_command("production-redis", NAME="production-mysql")]
        ),
        "no_bucket": _without_type(stack(), BUCKET),
        "two_buckets": stack(extra=_only(resource(BUCKET, "second-bucket", bucket_inputs(bucket="second")))),
        "bucket_not_protected": stack(protect=False),
        "versioning_suspended": stack(bucket=bucket_inputs(versioning={"status": "Suspended"})),
        "no_versioning": stack(bucket=bucket_inputs(versioning=None)),
        "no_encryption": stack(bucket=bucket_inputs(serverSideEncryptionRule=None)),
        "public_read_acl": stack(bucket=bucket_inputs(acl="public-read")),
        "public_acl_resource": stack(
            extra=lambda b: [
                resource(
                    BUCKET_ACL, "b-acl", {"bucket": BUCKET_NAME, "acl": "public-read-write"}, depends_on={"bucket": [b]}
                )
            ]
        ),
        "bucket_policy_for_anyone": stack(
            extra=lambda b: [
                resource(
                    BUCKET_POLICY,
                    "b-policy",
                    {"bucket": BUCKET_NAME, "policy": public_policy},
                    depends_on={"bucket": [b]},
                )
            ]
        ),
        "no_public_access_block": stack(block=False),
        "public_access_block_off": stack(
            block=False,
            extra=lambda b: [
                resource(
                    PUBLIC_ACCESS_BLOCK,
                    "b-block",
                    {"bucket": BUCKET_NAME, "blockPublicAccess": False},
                    depends_on={"bucket": [b]},
                )
            ],
        ),
        "expiry_shorter_than_retention": stack(bucket=bucket_inputs(lifecycleRules=_lifecycle(days=7))),
        "noncurrent_expiry_shorter_than_retention": stack(
            bucket=bucket_inputs(lifecycleRules=_lifecycle(noncurrentVersionExpirations=[{"days": 1}]))
        ),
        "expiry_on_a_fixed_date": stack(
            bucket=bucket_inputs(lifecycleRules=_lifecycle(expirations=[{"days": 30}, {"date": "2030-01-01"}]))
        ),
        "short_expiry_over_the_whole_bucket": stack(
            bucket=bucket_inputs(lifecycleRules=[*_lifecycle(), *_lifecycle(days=3, id="all", prefix="")])
        ),
        "daily_folder_expiring_before_keep_daily": stack(bucket=bucket_inputs(lifecycleRules=_folder_rules(daily=6))),
        "weekly_folder_expiring_before_its_weeks": stack(bucket=bucket_inputs(lifecycleRules=_folder_rules(weekly=21))),
        "weekly_folder_never_expiring": stack(
            bucket=bucket_inputs(lifecycleRules=[r for r in _folder_rules() if r["id"] != "weekly"])
        ),
        "noncurrent_versions_kept_shorter_than_the_weeklies": stack(
            bucket=bucket_inputs(lifecycleRules=_folder_rules(noncurrent=7))
        ),
        "no_lifecycle": stack(bucket=bucket_inputs(lifecycleRules=None)),
        "lifecycle_disabled": stack(bucket=bucket_inputs(lifecycleRules=_lifecycle(enabled=False))),
        "weekly_retention_longer_than_expiry": stack(alibaba_plan(keepWeekly=8)),
        "role_not_trusted_by_ecs": stack(
            role={
                "roleName": ROLE_NAME,
                "assumeRolePolicyDocument": TRUST.replace("ecs.aliyuncs.com", "fc.aliyuncs.com"),
            }
        ),
        "role_not_attached": stack(attach="none"),
        "role_attached_to_another_instance": stack(attach="other-instance"),
        **failing_credentials(),
        **failing_real_stacks(),
    }


@cache
def failing_credentials():
    """Static AccessKeys, anywhere in a stack: each also fails a stack without backups."""
    key_body = f"export ALIBABA_CLOUD_ACCESS_KEY_ID={FAKE_KEY_ID}\n"
    return {
        "ram_access_key_resource": stack(extra=_only(resource(RAM_ACCESS_KEY, "backup-key", {"userName": "backup"}))),
        "access_key_id_in_a_command": stack(
            commands=[backup_command("production-mysql", body=key_body), backup_command("production-redis")]
        ),
        "access_key_secret_as_a_parameter": stack(
            commands=[
                backup_command("production-mysql", OSS_ACCESS_KEY_SECRET=FAKE_KEY_SECRET),
                backup_command("production-redis"),
            ]
        ),
        "access_key_option": stack(
            commands=[
                backup_command(
                    "production-mysql", body=f"ossutil cp dump oss://b/ --access-key-secret {FAKE_KEY_SECRET}\n"
                ),
                backup_command("production-redis"),
            ]
        ),
        "ossutil_key_argument": stack(
            commands=[
                backup_command(
                    "production-mysql", body=f"ossutil64 config -e oss.example -i $ID -k {FAKE_KEY_SECRET}\n"
                ),
                backup_command("production-redis"),
            ]
        ),
        "access_key_in_the_environment": stack(
            extra=_only(
                script_command("fixture-upload", {}, "true\n", environment={"ALIBABA_CLOUD_ACCESS_KEY_ID": "x"})
            )
        ),
        "access_key_in_user_data": stack(
            attach="none", instance=_user_data(f'{{"AccessKeyId": "{FAKE_KEY_ID}", "AccessKeySecret": "x"}}\n')
        ),
        "access_key_on_a_stack_without_backups": _with_resources_of(
            tencent_stack(),
            resource(TENCENT_INSTANCE, "t", {"userData": base64.b64encode(f"KEY={FAKE_KEY_ID}".encode()).decode()}),
        ),
    }


def _without_type(run: Any, type_: str) -> Any:
    edited = copy.deepcopy(run)
    edited.resources = [r for r in edited.resources if r.type != type_]
    return edited


def _with_resources_of(run: Any, *added: Any) -> Any:
    edited = copy.deepcopy(run)
    edited.resources.extend(added)
    return edited


def messages(run: Any, policy: str = POLICY) -> list[str]:
    return [v.message for v in violations(run, policy)]


def test_database_backups_passes_and_fails_the_named_fixtures():
    fixtures = {**passing_stacks(), **failing_stacks()}
    assert flagged(fixtures, POLICY) == set(failing_stacks())


def test_the_shipped_stacks_back_every_database_up_off_the_host():
    alibaba = shipped("alibaba")
    plan = alibaba.outputs["plan"]
    databases = [w for w in plan["workloads"] if str(w["role"]).startswith("database:")]
    assert databases, "the alibaba stack runs the platform's databases"
    assert all(w["backup"] == {"mode": "scheduled"} for w in databases)
    assert plan["backups"]["offHost"] is not None
    assert len(alibaba.of_type(BUCKET)) == 1
    assert {r.name for r in alibaba.resources if "-backup-" in r.name} >= {
        f"alibaba-db-backup-{w['name']}" for w in databases
    }
    assert messages(alibaba) == []
    assert messages(shipped("tencent")) == []


def test_each_failure_is_reported_once_and_names_what_is_missing():
    found = {name: messages(run) for name, run in failing_stacks().items()}
    host = "fixture-host"
    bucket = f"{host}: backup bucket fixture-backups-bucket"
    assert found["database_without_backup"] == [
        f"{host}: database production-mysql declares no backup (backup mode None): back it up on the plan's "
        "schedule, or say backup: {none: <reason>}"
    ]
    assert found["waiver_without_a_reason"] == [
        f"{host}: database production-neo4j says backup: none without a reason; give the reason"
    ]
    assert found["no_off_host_target"] == [
        f"{host}: database {db} has no off-host target (backups.offHost is null): a backup on the host dies with the "
        "host; give backups.offHost or say backup: {none: <reason>}"
        for db in ("production-mysql", "production-redis")
    ]
    assert found["no_backup_command_for_a_database"] == [
        f"{host}: database production-redis is backed up on a schedule, but no command ends in -backup-production-redis"
    ]
    assert found["backup_command_without_the_schedule"] == [
        f"{host}: backup command fixture-db-backup-production-mysql does not render the plan's schedule '{SCHEDULE}'"
    ]
    assert found["no_bucket"] == [
        f"{host}: the plan copies backups off the host, so the stack holds exactly one OSS bucket for them; found 0 "
        "(none)"
    ]
    assert found["bucket_not_protected"] == [
        f"{bucket} is not protected: `pulumi destroy` or a replacing change would delete every off-host backup"
    ]
    assert found["no_versioning"] == [
        f"{bucket} has no versioning (versioning.status: Enabled): an overwritten or deleted backup is gone"
    ]
    assert found["no_encryption"] == [
        f"{bucket} has no server-side encryption (serverSideEncryptionRule.sseAlgorithm one of AES256, KMS, SM4)"
    ]
    assert found["public_read_acl"] == [f"{bucket} has a public ACL (public-read): anyone could read the backups"]
    assert found["expiry_shorter_than_retention"] == [
        f"{bucket} lifecycleRules[0] expires versions under platform/ after 7 day(s), sooner than the plan keeps the "
        "backups there (28 days: keepWeekly 4 x 7)"
    ]
    assert found["daily_folder_expiring_before_keep_daily"] == [
        f"{bucket} lifecycleRules[0] expires versions under platform/daily/ after 6 day(s), sooner than the plan "
        "keeps the backups there (7 days: keepDaily 7)"
    ]
    assert found["weekly_folder_never_expiring"] == [
        f"{bucket} has no enabled lifecycle rule that expires the backups under platform/weekly/ by age "
        "(expirations.days >= 28): the off-host copies would pile up forever"
    ]
    assert found["no_lifecycle"] == [
        f"{bucket} has no enabled lifecycle rule that expires the backups under platform/{folder} by age "
        f"(expirations.days >= {days}): the off-host copies would pile up forever"
        for folder, days in (("daily/", 7), ("weekly/", 28))
    ]
    assert found["role_not_attached"] == [
        f"{host}: the RAM role fixture-backups-role is attached to no instance of the stack (ram.RoleAttachment, "
        "ecs.RamRoleAttachment or the instance's roleName): the host cannot use it"
    ]


def test_static_credentials_are_named_never_shown():
    for name, run in failing_credentials().items():
        found = messages(run)
        assert found, name
        assert all(FAKE_KEY_ID not in m and FAKE_KEY_SECRET not in m for m in found), name
    assert messages(failing_credentials()["access_key_id_in_a_command"]) == [
        "create/update holds an Alibaba Cloud AccessKey id: use the instance's RAM role, never an AccessKey",
        "create/update holds a literal assigned to ALIBABA_CLOUD_ACCESS_KEY_ID: use the instance's RAM role, never "
        "an AccessKey",
    ]
    assert messages(failing_credentials()["ram_access_key_resource"]) == [
        "creates a RAM AccessKey, a static credential that never expires: hosts use their RAM role"
    ]
    assert messages(failing_credentials()["access_key_in_the_environment"]) == [
        "environment sets ALIBABA_CLOUD_ACCESS_KEY_ID: a static AccessKey; use the instance's RAM role"
    ]


def test_the_real_program_broken_one_way_at_a_time_is_refused_for_that_reason():
    found = {name: messages(run) for name, run in failing_real_stacks().items()}
    assert found["real_stack_without_a_backup_command"] == [
        "alibaba-host: database production-redis is backed up on a schedule, but no command ends in "
        "-backup-production-redis"
    ]
    assert found["real_stack_without_the_role_attachment"] == [
        "alibaba-host: the RAM role alibaba-backups-role is attached to no instance of the stack (ram.RoleAttachment, "
        "ecs.RamRoleAttachment or the instance's roleName): the host cannot use it"
    ]
    (early,) = found["real_bucket_expiring_dailies_early"]
    assert early.endswith(
        "expires versions under platform/daily/ after 3 day(s), sooner than the plan keeps the "
        "backups there (7 days: keepDaily 7)"
    )
    (elsewhere,) = found["real_backup_copying_elsewhere"]
    assert elsewhere.startswith(
        "alibaba-host: backup command alibaba-db-backup-production-mysql copies to oss://elsewhere/platform/, "
        "outside the off-host target oss://platform-alibaba-backups-"
    )
    assert found["real_waiver_without_a_reason"] == [
        "alibaba-host: database production-neo4j says backup: none without a reason; give the reason"
    ]


def test_waivers_are_listed_as_advisory_with_their_reason():
    found = violations(stack(), WAIVERS)
    assert [(v.level, v.message) for v in found] == [
        ("advisory", f"fixture-host: database production-neo4j is not backed up (backup: none): {NEO4J_REASON}")
    ]
    assert violations(shipped("alibaba"), WAIVERS) == []
    assert [v.message for v in violations(_neo4j_waived(), WAIVERS)] == [
        f"alibaba-host: database production-neo4j is not backed up (backup: none): {NEO4J_REASON}"
    ]
    assert "alibaba-db-backup-production-neo4j" not in {r.name for r in _neo4j_waived().resources}


def test_the_sse_algorithms_are_configurable():
    run = stack(bucket=bucket_inputs(serverSideEncryptionRule={"sseAlgorithm": "AES256"}))
    assert violations(run, POLICY, {POLICY: {"sseAlgorithms": ["KMS"]}})
    assert violations(run, POLICY, {POLICY: {"sseAlgorithms": ["AES256"]}}) == []


def test_values_unknown_during_preview_are_not_read_and_do_not_stop_the_policy():
    """A created bucket's settings may be unknown during preview: no verdict on them, the rest still checked."""
    unknown_rules = bucket_inputs(lifecycleRules=[{"enabled": True, "prefix": UNKNOWN, "expirations": [{"days": 1}]}])
    run = stack(bucket=unknown_rules, commands=[backup_command("production-mysql")])
    assert messages(run) == [
        "fixture-host: database production-redis is backed up on a schedule, but no command ends in "
        "-backup-production-redis"
    ]
    name = "fixture-db-backup-production-redis"
    record = {"scripts": [], "parameters": UNKNOWN, "stops": [], "removes": []}
    unknown_step = (
        resource(STEP, step_record_name(name), record, outputs=record),
        resource(COMMAND, name, {"create": UNKNOWN}),
    )
    assert messages(stack(commands=[backup_command("production-mysql"), unknown_step])) == []
    assert messages(stack(commands=[backup_command("production-mysql"), unknown_step[1]])) == [
        f"fixture-host: backup command {name} has no step record (platform:provisioning:Step): what it backs up "
        "cannot be read"
    ]
