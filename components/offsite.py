"""The off-host copy of the backups: an OSS bucket, and the ECS RAM role the host writes it with.

No static AccessKey exists anywhere: the host reads short-lived STS credentials of its RAM role
from the instance metadata service, and the role's policy grants only what the backup and the
restore drill do, on the backups' prefix of this one bucket.

What replaces what (the provider marks these inputs ForceNew; the SDK constructors force no
``replaceOnChanges`` of their own, see ``pulumi_alicloud/oss/bucket.py``):

- ``oss.Bucket``: ``bucket`` (the name), ``storageClass`` and ``redundancyType``. The program
  sets the name once (``bucket_name``: from the plan or derived from the organization, project
  and stack, which do not change) and leaves the two classes to their defaults, so an ordinary
  change (retention, prefix) is an update of ``lifecycleRules``. Should a change ever replace
  it, ``protect`` stops the preview with an error, and ``retainOnDelete`` keeps the bucket (and
  every backup) in the account when it is deleted from the state on purpose.
- ``oss.BucketAcl``, ``oss.BucketPublicAccessBlock``: ``bucket``; replacing them re-applies the
  same setting.
- ``ram.Role``: ``roleName``; ``ram.Policy``: ``policyName``; ``ram.RolePolicyAttachment`` and
  ``ram.RoleAttachment``: every input. All are derived from the stack's name: stable. A new
  policy document is an update (a new default policy version; old versions rotate out).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_alicloud as alicloud

from components.backups import OffHostTarget
from plan import Backups, OffHost
from policies.facts import OFF_HOST_BACKUPS

# The object actions the backup (upload, read back to verify) and the restore drill (list,
# download) need. No DeleteObject: pruning off the host is the lifecycle rules' job, so a host
# taken over cannot erase its off-host copies (and versioning keeps what it overwrites).
OBJECT_ACTIONS = ("oss:PutObject", "oss:GetObject", "oss:AbortMultipartUpload", "oss:ListParts")
BUCKET_ACTIONS = ("oss:ListObjects", "oss:GetBucketInfo")
# Chosen here: an upload that never completed is cleared after two days.
ABORT_MULTIPART_DAYS = 2
# A RAM role or policy name: letters, digits, '.' and '-', at most 64 characters.
_RAM_NAME_LIMIT = 64


@dataclass(frozen=True)
class OffHostBackupsArgs:
    backups: Backups
    props: dict[str, Any]
    """The plan's props (``plan.props()``), registered for the policy pack."""
    instance_id: pulumi.Input[str]
    """The ECS instance the role is attached to (the host that writes the backups)."""
    region: str
    """``alicloud:region``: the bucket lives beside the host, written over the internal endpoint."""


class OffHostBackups(pulumi.ComponentResource):
    """The backup bucket (versioned, encrypted, private, expiring by the plan's retention, protected)
    and the instance's RAM role that may write and read its backups' prefix."""

    bucket: alicloud.oss.Bucket
    role: alicloud.ram.Role
    target: OffHostTarget
    """What the backup and drill scripts need: bucket, prefix, internal endpoint, role name."""

    def __init__(self, name: str, args: OffHostBackupsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(OFF_HOST_BACKUPS, name, {"plan": args.props}, opts)
        off_host = args.backups.off_host or OffHost()
        # A self-managed backend reports the organization "organization" (the mocks: none).
        organization = pulumi.get_organization() or "organization"
        bucket_name = off_host.bucket or default_bucket_name(organization, pulumi.get_project(), pulumi.get_stack())
        self.bucket = alicloud.oss.Bucket(
            f"{name}-bucket",
            bucket=bucket_name,
            versioning=alicloud.oss.BucketVersioningArgs(status="Enabled"),
            server_side_encryption_rule=alicloud.oss.BucketServerSideEncryptionRuleArgs(sse_algorithm="AES256"),
            lifecycle_rules=lifecycle_rules(off_host.prefix, args.backups),
            force_destroy=False,
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )
        alicloud.oss.BucketAcl(
            f"{name}-acl", bucket=self.bucket.bucket, acl="private", opts=pulumi.ResourceOptions(parent=self)
        )
        alicloud.oss.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self.bucket.bucket,
            block_public_access=True,
            opts=pulumi.ResourceOptions(parent=self),
        )

        role_name = ram_name(f"{pulumi.get_stack()}-backups")
        self.role = alicloud.ram.Role(
            f"{name}-role",
            role_name=role_name,
            assume_role_policy_document=ECS_TRUST_POLICY,
            description="The database host writes its backups to OSS with this role (no AccessKey).",
            opts=pulumi.ResourceOptions(parent=self),
        )
        policy = alicloud.ram.Policy(
            f"{name}-policy",
            policy_name=ram_name(f"{pulumi.get_stack()}-backups-oss"),
            policy_document=bucket_policy(bucket_name, off_host.prefix),
            description=f"Write and read the backups under {off_host.prefix} of {bucket_name}, nothing else.",
            rotate_strategy="DeleteOldestNonDefaultVersionWhenLimitExceeded",
            opts=pulumi.ResourceOptions(parent=self),
        )
        alicloud.ram.RolePolicyAttachment(
            f"{name}-policy-attachment",
            role_name=self.role.role_name,
            policy_name=policy.policy_name,
            policy_type="Custom",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.attachment = alicloud.ram.RoleAttachment(
            f"{name}-role-attachment",
            role_name=self.role.role_name,
            instance_ids=[args.instance_id],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.target = OffHostTarget(
            bucket=bucket_name, prefix=off_host.prefix, endpoint=internal_endpoint(args.region), ram_role=role_name
        )
        self.register_outputs({"bucket": self.bucket.bucket, "role": self.role.role_name})


ECS_TRUST_POLICY = json.dumps(
    {
        "Version": "1",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": ["ecs.aliyuncs.com"]}},
        ],
    },
    sort_keys=True,
)


def bucket_policy(bucket: str, prefix: str) -> str:
    """The role's permissions: object actions under the prefix, listing only that prefix."""
    return json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": list(OBJECT_ACTIONS),
                    "Resource": [f"acs:oss:*:*:{bucket}/{prefix}*"],
                },
                {
                    "Effect": "Allow",
                    "Action": list(BUCKET_ACTIONS),
                    "Resource": [f"acs:oss:*:*:{bucket}"],
                    "Condition": {"StringLike": {"oss:Prefix": [f"{prefix}*"]}},
                },
            ],
        },
        sort_keys=True,
    )


def lifecycle_rules(prefix: str, backups: Backups) -> list[alicloud.oss.BucketLifecycleRuleArgs]:
    """Expiry by age matching the plan's retention, one rule per kind of copy.

    The host uploads each day's backup under ``<prefix>daily/`` and the week's under
    ``<prefix>weekly/``; a daily copy expires a day after ``keepDaily`` days, a weekly one a
    day after ``keepWeekly`` weeks (the day covers the timer's randomized delay, so the newest
    ``keep`` copies are always there). Versioning turns an expiry (or an overwrite) into a
    noncurrent version, removed after the longer retention: a copy deleted by mistake or by an
    intruder stays recoverable that long.
    """
    longest = max(backups.keep_daily, 7 * backups.keep_weekly) + 1
    rules = [
        alicloud.oss.BucketLifecycleRuleArgs(
            id="daily",
            enabled=True,
            prefix=f"{prefix}daily/",
            expirations=[alicloud.oss.BucketLifecycleRuleExpirationArgs(days=backups.keep_daily + 1)],
        )
    ]
    if backups.keep_weekly:
        rules.append(
            alicloud.oss.BucketLifecycleRuleArgs(
                id="weekly",
                enabled=True,
                prefix=f"{prefix}weekly/",
                expirations=[alicloud.oss.BucketLifecycleRuleExpirationArgs(days=7 * backups.keep_weekly + 1)],
            )
        )
    rules.append(
        alicloud.oss.BucketLifecycleRuleArgs(
            id="versions",
            enabled=True,
            prefix=prefix,
            noncurrent_version_expirations=[
                alicloud.oss.BucketLifecycleRuleNoncurrentVersionExpirationArgs(days=longest)
            ],
            abort_multipart_uploads=[
                alicloud.oss.BucketLifecycleRuleAbortMultipartUploadArgs(days=ABORT_MULTIPART_DAYS)
            ],
        )
    )
    return rules


def default_bucket_name(organization: str, project: str, stack: str) -> str:
    """``<project>-<stack>-backups-<8 hex>``: a valid OSS name, the same on every run.

    OSS bucket names are global across all accounts, so the name ends in a digest of
    ``organization/project/stack``: two organizations deploying this project get two names. The
    readable part is cut so the whole stays within 63 characters. The name never changes for
    a stack; moving the stack to another organization would derive another one, so set
    ``platform:backups.offHost.bucket`` to the existing name first (``protect`` refuses the replace).
    """
    digest = hashlib.sha256(f"{organization}/{project}/{stack}".encode()).hexdigest()[:8]
    readable = _slug(f"{project}-{stack}-backups")[: 63 - len(digest) - 1].strip("-") or "platform"
    return f"{readable}-{digest}"


def ram_name(text: str) -> str:
    """A RAM role or policy name from ``text``: letters, digits and '-', at most 64 characters."""
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")
    if len(slug) <= _RAM_NAME_LIMIT:
        return slug
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{slug[: _RAM_NAME_LIMIT - 9].rstrip('-')}-{digest}"


def internal_endpoint(region: str) -> str:
    """The OSS endpoint an ECS instance in ``region`` reaches without leaving the cloud's network."""
    if not re.fullmatch(r"[a-z]{2}-[a-z0-9-]{1,40}", region):
        raise pulumi.RunError(f"alicloud:region: {region!r} is not a region id such as cn-shenzhen")
    return f"oss-{region}-internal.aliyuncs.com"


def _slug(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", text.lower())).strip("-")
