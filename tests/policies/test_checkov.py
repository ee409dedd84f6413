"""Checkov's checks that apply here, advisory: CKV_ALI_7 / CKV_TC_1, CKV_TC_4 / CKV_TC_5, CKV_TC_13."""

from __future__ import annotations

import base64
from functools import cache

import pytest

from policies.facts import ALIBABA_INSTANCE, TENCENT_INSTANCE
from tests.policies.shapes import (
    created,
    edit_inputs,
    flagged,
    resource,
    shipped,
    violations,
    with_resources,
)

CBS = "tencentcloud:Cbs/storage:Storage"
ALIBABA_DISK = "alicloud:ecs/disk:Disk"


def _instance(run, edit):
    name = next(r.name for r in run.resources if r.type in (ALIBABA_INSTANCE, TENCENT_INSTANCE))
    return edit_inputs(run, name, edit)


def _set(**fields):
    return lambda inputs: inputs.update(fields)


def _disk(**fields):
    return lambda inputs: inputs["dataDisks"][0].update(fields)


def _drop(key):
    return lambda inputs: inputs.pop(key)


@cache
def passing_resources():
    tencent = shipped("tencent")
    return {
        "shipped_alibaba": shipped("alibaba"),
        "shipped_tencent": tencent,
        "created_alibaba_instance": created("alibaba"),
        "created_tencent_instance": created("tencent"),
        "encrypted_cbs_disk": with_resources(tencent, resource(CBS, "cbs", {"encrypt": True, "storageSize": 50})),
        "alibaba_disk_from_a_snapshot": with_resources(
            shipped("alibaba"), resource(ALIBABA_DISK, "disk", {"snapshotId": "s-1", "size": 40})
        ),
        "tencent_user_data_without_secrets": _instance(
            created("tencent"), _set(userData=base64.b64encode(b"#!/bin/sh\napt-get update\n").decode())
        ),
    }


FAILING = {
    "disk-encryption": {
        "created_alibaba_unencrypted_data_disk": lambda: _instance(created("alibaba"), _disk(encrypted=False)),
        "created_tencent_unencrypted_data_disk": lambda: _instance(created("tencent"), _disk(encrypt=False)),
        "unencrypted_cbs_disk": lambda: with_resources(shipped("tencent"), resource(CBS, "cbs", {"storageSize": 50})),
        "unencrypted_alibaba_disk": lambda: with_resources(
            shipped("alibaba"), resource(ALIBABA_DISK, "disk", {"size": 40, "encrypted": False})
        ),
    },
    "default-network": {
        "created_tencent_without_security_groups": lambda: _instance(
            created("tencent"), _drop("orderlySecurityGroups")
        ),
        "created_tencent_on_the_default_group": lambda: _instance(
            created("tencent"), _set(orderlySecurityGroups=["sg-default"])
        ),
        "created_tencent_without_a_vpc": lambda: _instance(created("tencent"), _drop("vpcId")),
    },
    "user-data-secrets": {
        "tencent_user_data_with_the_secret_id": lambda: _instance(
            created("tencent"),
            _set(userData=base64.b64encode(b"export TENCENTCLOUD_SECRET_ID=AKIDexample\n").decode()),
        ),
        "alibaba_user_data_with_a_password": lambda: _instance(
            created("alibaba"), _set(userData="#!/bin/sh\necho 'requirepass x' && REDIS_PASSWORD=Sup3rSecret1\n")
        ),
    },
}


@cache
def failing_resources(policy: str):
    return {name: build() for name, build in FAILING[policy].items()}


@pytest.mark.parametrize("policy", sorted(FAILING))
def test_each_check_passes_and_fails_the_named_fixtures(policy):
    fixtures = {**passing_resources(), **failing_resources(policy)}
    assert flagged(fixtures, policy) == set(FAILING[policy])


def test_checkov_equivalents_are_advisory_and_name_their_check():
    found = violations(failing_resources("default-network")["created_tencent_without_a_vpc"], "default-network")
    assert [(v.level, v.message) for v in found] == [
        ("advisory", "CKV_TC_5: no vpcId, so the CVM lands in the default VPC")
    ]
    found = violations(
        failing_resources("user-data-secrets")["tencent_user_data_with_the_secret_id"], "user-data-secrets"
    )
    # Read through the base64 Tencent requires; the value itself is never repeated.
    assert [v.message for v in found] == [
        "CKV_TC_13: userData holds the credential name TENCENTCLOUD_SECRET_ID; user data is readable from the instance",
        "CKV_TC_13: userData holds a literal assigned to TENCENTCLOUD_SECRET_ID; user data is readable from the "
        "instance",
    ]
