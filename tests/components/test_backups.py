"""Backups under the mocks: the bucket, the host's RAM role, a backup timer per database, the drill."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from components.backups import OffHostTarget
from components.offsite import OBJECT_ACTIONS, default_bucket_name, internal_endpoint, ram_name
from policies.facts import OSS_BUCKET
from tests.stacks import cache_database, commands, evaluate, inputs

DATABASES = (
    "production-mysql",
    "production-postgres",
    "production-redis",
    "production-neo4j",
    "production-elasticsearch",
    "production-weaviate",
)
BUCKET = OSS_BUCKET


@pytest.fixture(scope="module")
def bucket(alibaba):
    (found,) = alibaba.of_type(BUCKET)
    return found


def test_the_bucket_is_versioned_encrypted_and_protected(bucket):
    props = inputs(bucket)
    assert bucket.name == "alibaba-backups-bucket"
    assert props["versioning"] == {"status": "Enabled"}
    assert props["serverSideEncryptionRule"] == {"sseAlgorithm": "AES256"}
    assert props["forceDestroy"] is False
    assert "acl" not in props  # deprecated on the bucket: a BucketAcl resource sets it
    # `pulumi destroy` or a replacing diff stops with an error; a deliberate state removal keeps the bucket.
    assert bucket.protect is True
    assert bucket.retain_on_delete is True


def test_no_input_of_the_bucket_that_forces_a_replace_is_left_to_change(bucket):
    """The provider replaces a bucket on a new name, storage class or redundancy type: the name is
    fixed by the stack, the other two are never set (their defaults never change under us)."""
    props = inputs(bucket)
    assert props["bucket"] == default_bucket_name("organization", "platform", "alibaba")
    assert "storageClass" not in props
    assert "redundancyType" not in props
    assert bucket.replace_on_changes == []
    assert bucket.delete_before_replace is False


def test_the_bucket_is_private_behind_a_public_access_block(alibaba, bucket):
    (acl,) = alibaba.of_type("alicloud:oss/bucketAcl:BucketAcl")
    (block,) = alibaba.of_type("alicloud:oss/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert inputs(acl) == {"acl": "private", "bucket": inputs(bucket)["bucket"]}
    assert inputs(block) == {"blockPublicAccess": True, "bucket": inputs(bucket)["bucket"]}
    assert bucket.urn in acl.dependencies
    assert bucket.urn in block.dependencies


def test_lifecycle_rules_match_the_retention(bucket):
    rules = {rule["id"]: rule for rule in inputs(bucket)["lifecycleRules"]}
    assert rules["daily"]["prefix"] == "platform/daily/"
    assert rules["daily"]["expirations"] == [{"days": 8.0}]  # keepDaily 7, a day for the randomized delay
    assert rules["weekly"]["prefix"] == "platform/weekly/"
    assert rules["weekly"]["expirations"] == [{"days": 29.0}]  # keepWeekly 4
    assert rules["versions"]["prefix"] == "platform/"
    assert rules["versions"]["noncurrentVersionExpirations"] == [{"days": 29.0}]
    assert all(rule["enabled"] for rule in rules.values())


def test_lifecycle_follows_a_retention_change():
    run = evaluate("alibaba", backups={"keepDaily": 3, "keepWeekly": 0, "offHost": {"prefix": "prod/db/"}})
    (bucket,) = run.of_type(BUCKET)
    rules = {rule["id"]: rule for rule in inputs(bucket)["lifecycleRules"]}
    assert set(rules) == {"daily", "versions"}  # no weekly copies, no weekly rule
    assert rules["daily"] == {
        "id": "daily",
        "enabled": True,
        "prefix": "prod/db/daily/",
        "expirations": [{"days": 4.0}],
    }
    assert rules["versions"]["noncurrentVersionExpirations"] == [{"days": 4.0}]


def test_the_role_is_for_ecs_and_may_only_write_and_read_the_backups(alibaba, bucket):
    (role,) = alibaba.of_type("alicloud:ram/role:Role")
    trust = json.loads(inputs(role)["assumeRolePolicyDocument"])
    assert trust["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": ["ecs.aliyuncs.com"]}}
    ]
    (policy,) = alibaba.of_type("alicloud:ram/policy:Policy")
    name = inputs(bucket)["bucket"]
    statements = json.loads(inputs(policy)["policyDocument"])["Statement"]
    assert statements[0]["Action"] == list(OBJECT_ACTIONS)
    assert statements[0]["Resource"] == [f"acs:oss:*:*:{name}/platform/*"]
    assert statements[1]["Resource"] == [f"acs:oss:*:*:{name}"]
    assert statements[1]["Condition"] == {"StringLike": {"oss:Prefix": ["platform/*"]}}
    actions = [action for statement in statements for action in statement["Action"]]
    assert not [a for a in actions if "Delete" in a or a.endswith("*")], "the host must not erase its copies"


def test_the_role_is_attached_to_the_instance_with_its_policy(alibaba):
    (role,) = alibaba.of_type("alicloud:ram/role:Role")
    (attachment,) = alibaba.of_type("alicloud:ram/rolePolicyAttachment:RolePolicyAttachment")
    assert inputs(attachment)["policyType"] == "Custom"
    assert role.urn in attachment.dependencies
    (on_instance,) = alibaba.of_type("alicloud:ram/roleAttachment:RoleAttachment")
    assert inputs(on_instance) == {"roleName": "alibaba-backups", "instanceIds": ["i-wz9example0000000001"]}
    instance = alibaba.named("alibaba-host-instance")
    assert instance.urn in on_instance.property_dependencies["instanceIds"]
    assert not alibaba.of_type("alicloud:ram/accessKey:AccessKey")


def test_one_backup_command_per_database_and_one_drill(alibaba):
    steps = commands(alibaba)
    backups = sorted(name for name in steps if "-backup-" in name)
    assert backups == sorted(f"alibaba-db-backup-{name}" for name in DATABASES)
    assert "alibaba-db-restore-drill" in steps
    drill = alibaba.named("alibaba-db-restore-drill")
    for name in DATABASES:
        backup = alibaba.named(f"alibaba-db-backup-{name}")
        assert alibaba.named(f"alibaba-db-{name}").urn in backup.dependencies  # after its container
        assert backup.urn in drill.dependencies
        # After the bucket and the role on the instance (a component dependency names its children).
        assert alibaba.named("alibaba-backups-bucket").urn in backup.dependencies
        assert alibaba.named("alibaba-backups-role-attachment").urn in backup.dependencies


def script(command: dict) -> str:
    """The script a command runs (``bash -c '<script>' <label>``), unquoted."""
    return shlex.split(command["create"])[2]


def test_a_backup_command_renders_the_schedule_and_the_off_host_target(alibaba, bucket):
    create = script(commands(alibaba)["alibaba-db-backup-production-mysql"])
    assert "SCHEDULE='*-*-* 03:00:00'" in create
    assert "OnCalendar=*-*-* 03:00:00" in create
    assert f"OFF_HOST_URL=oss://{inputs(bucket)['bucket']}/platform/" in create
    assert "OFF_HOST_ENDPOINT=oss-cn-shenzhen-internal.aliyuncs.com" in create
    assert "OFF_HOST_RAM_ROLE=alibaba-backups" in create


def test_backup_commands_carry_no_secret(alibaba):
    for name in [f"alibaba-db-backup-{db}" for db in DATABASES] + ["alibaba-db-restore-drill"]:
        raw = alibaba.named(name).inputs
        assert "stdin" not in raw
        assert "PLACEHOLDER-SECRET" not in raw["create"]
        assert not re.search(r"(?i)access.?key", raw["create"])


def test_a_database_with_backup_none_gets_no_backup_command():
    run = evaluate(
        "alibaba",
        databases=[
            cache_database(backup={"none": "a cache rebuilt from mysql"}),
            cache_database(name="kept", ports=[{"port": 6381}]),
        ],
    )
    steps = commands(run)
    assert "alibaba-db-backup-kept" in steps
    assert "alibaba-db-backup-cache" not in steps
    assert "alibaba-db-restore-drill" in steps


def test_nothing_backed_up_means_no_bucket_and_no_drill():
    run = evaluate("alibaba", databases=[cache_database(backup={"none": "a cache rebuilt from mysql"})])
    assert not run.of_type(BUCKET)
    assert not run.of_type("alicloud:ram/role:Role")
    assert not [name for name in commands(run) if "backup" in name or "drill" in name]


def test_off_host_null_keeps_local_backups_only():
    run = evaluate("alibaba", backups={"offHost": None})
    assert not run.of_type(BUCKET)
    assert "OFF_HOST_URL=''" in script(commands(run)["alibaba-db-backup-production-mysql"])


def test_a_named_bucket_is_used_as_given():
    run = evaluate("alibaba", backups={"offHost": {"bucket": "acme-db-backups"}})
    (bucket,) = run.of_type(BUCKET)
    assert inputs(bucket)["bucket"] == "acme-db-backups"
    assert (
        "OFF_HOST_URL=oss://acme-db-backups/platform/" in commands(run)["alibaba-db-backup-production-redis"]["create"]
    )


def test_the_tencent_stack_makes_no_bucket():
    run = evaluate("tencent")
    assert not run.of_type(BUCKET)
    assert not [name for name in commands(run) if "backup" in name]


@pytest.mark.parametrize(
    ("organization", "project", "stack"),
    [
        ("organization", "platform", "alibaba"),
        ("Acme_Corp", "Two.Cloud_Platform", "prod--cn"),
        ("o", "p" * 80, "s" * 80),
        ("org", "---", "___"),
    ],
)
def test_the_default_bucket_name_is_a_valid_stable_oss_name(organization, project, stack):
    name = default_bucket_name(organization, project, stack)
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", name), name
    assert "--" not in name
    assert name == default_bucket_name(organization, project, stack)
    assert name != default_bucket_name(f"{organization}x", project, stack)


def test_ram_names_are_bounded():
    assert ram_name("alibaba-backups") == "alibaba-backups"
    long = ram_name("x" * 100 + "-backups")
    assert len(long) <= 64
    assert re.fullmatch(r"[A-Za-z0-9-]+", long)


def test_the_endpoint_is_the_regions_internal_one():
    assert internal_endpoint("cn-shenzhen") == "oss-cn-shenzhen-internal.aliyuncs.com"
    target = OffHostTarget(bucket="b", prefix="p/", endpoint=internal_endpoint("cn-hangzhou"), ram_role="r")
    assert target.endpoint == "oss-cn-hangzhou-internal.aliyuncs.com"
