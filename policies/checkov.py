"""Checkov's checks that apply to this platform, read from Pulumi inputs (advisory).

- disk-encryption: CKV_ALI_7 (``alicloud_disk.encrypted``) and CKV_TC_1 (``tencentcloud_cbs_storage.encrypt``),
  extended to the data disks an instance declares inline.
- default-network: CKV_TC_4 (a CVM lists a security group, none of them the default one) and
  CKV_TC_5 (a CVM names a VPC, not the default one). Unset means the default here.
- user-data-secrets: CKV_TC_13 (no TENCENTCLOUD_SECRET_ID/KEY in user data), extended to the
  Alibaba instance and to password or key literals.

An adopted instance declares nothing (it is imported and ignores every property): these
checks apply to what the program declares, as Checkov's apply to what Terraform declares.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from ._common import declares_inputs
from ._scan import secret_literals
from .data_protection import ALIBABA_DISKS, TENCENT_DISK
from .facts import ALIBABA_INSTANCE, INSTANCES, TENCENT_INSTANCE

_CLOUD_CREDENTIALS = ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY")


def _checkov(ids: str) -> PolicyComplianceFramework:
    return PolicyComplianceFramework(name="Checkov", reference=ids)


def check_encryption(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = args.props
    if args.resource_type in ALIBABA_DISKS and not props.get("snapshotId") and props.get("encrypted") is not True:
        report_violation("CKV_ALI_7: the disk is not encrypted (encrypted: true)", None)
    elif args.resource_type == TENCENT_DISK and props.get("encrypt") is not True:
        report_violation("CKV_TC_1: the CBS disk is not encrypted (encrypt: true)", None)
    elif args.resource_type in INSTANCES and declares_inputs(args):
        key, check_id = (
            ("encrypted", "CKV_ALI_7") if args.resource_type == ALIBABA_INSTANCE else ("encrypt", "CKV_TC_1")
        )
        for index, disk in enumerate(props.get("dataDisks") or []):
            if disk.get(key) is not True:
                report_violation(f"{check_id}: dataDisks[{index}] is not encrypted ({key}: true)", None)


def check_default_network(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != TENCENT_INSTANCE or not declares_inputs(args):
        return
    props = args.props
    groups = [str(g) for key in ("orderlySecurityGroups", "securityGroups") for g in props.get(key) or []]
    if not groups:
        report_violation("CKV_TC_4: no security group listed, so the CVM joins the default security group", None)
    elif any("default" in g.lower() for g in groups):
        report_violation("CKV_TC_4: the CVM uses the default security group", None)
    vpc = props.get("vpcId")
    if not vpc:
        report_violation("CKV_TC_5: no vpcId, so the CVM lands in the default VPC", None)
    elif "default" in str(vpc).lower():
        report_violation("CKV_TC_5: the CVM uses the default VPC", None)


def check_user_data(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in INSTANCES:
        return
    for key in ("userData", "userDataRaw"):
        text = args.props.get(key)
        if isinstance(text, str) and text:
            for finding in _user_data_findings(text):
                report_violation(f"CKV_TC_13: {key} holds {finding}; user data is readable from the instance", None)


def _user_data_findings(text: str) -> list[str]:
    texts = [text, *_decoded(text)]
    named = [f"the credential name {name}" for name in _CLOUD_CREDENTIALS if any(name in t for t in texts)]
    return list(dict.fromkeys(named + [finding for t in texts for finding in secret_literals(t)]))


def _decoded(text: str) -> list[str]:
    """User data is often base64 (Tencent's ``userData`` must be): read what it encodes too."""
    try:
        return [base64.b64decode(text, validate=True).decode()]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return []


def _policy(name: str, description: str, ids: str, validate: Any, severity: Severity) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.ADVISORY,
        severity=severity,
        framework=_checkov(ids),
        tags=["checkov"],
    )


disk_encryption = _policy(
    "disk-encryption",
    "Data disks are encrypted (Checkov CKV_ALI_7, CKV_TC_1).",
    "CKV_ALI_7, CKV_TC_1",
    check_encryption,
    Severity.MEDIUM,
)
default_network = _policy(
    "default-network",
    "A CVM uses its own security group and VPC, not the defaults (Checkov CKV_TC_4, CKV_TC_5).",
    "CKV_TC_4, CKV_TC_5",
    check_default_network,
    Severity.LOW,
)
user_data_secrets = _policy(
    "user-data-secrets",
    "Instance user data holds no cloud credential or password (Checkov CKV_TC_13).",
    "CKV_TC_13",
    check_user_data,
    Severity.HIGH,
)
