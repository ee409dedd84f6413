"""data-protection: instances and disks survive a destroy; data leaves only with purge: true."""

from __future__ import annotations

import copy
from functools import cache

from tests.policies.shapes import (
    ALIBABA_INSTANCE,
    TENCENT_INSTANCE,
    created,
    edit_inputs,
    flagged,
    resource,
    run_program,
    shipped,
    violations,
    with_resources,
)

MYSQL = "alibaba-db-production-mysql"


def _delete_text(extra: str, purge: str = "0"):
    def edit(inputs):
        assert "PURGE=0" in inputs["delete"]
        inputs["delete"] = inputs["delete"].replace("PURGE=0", f"PURGE={purge}") + f"\n{extra}\n"

    return edit


def _instance(run, edit):
    name = next(r.name for r in run.resources if r.type in (ALIBABA_INSTANCE, TENCENT_INSTANCE))
    return edit_inputs(run, name, edit)


def _disk(**fields):
    def edit(inputs):
        inputs["dataDisks"][0].update(fields)

    return edit


def _unprotected():
    run = copy.deepcopy(shipped("alibaba"))
    run.of_type(ALIBABA_INSTANCE)[0].protect = False
    return run


def _without_delete_flag(inputs):
    del inputs["dataDisks"][0]["deleteWithInstance"]


@cache
def passing_resources():
    alibaba = shipped("alibaba")
    return {
        "shipped_alibaba": alibaba,
        "shipped_tencent": shipped("tencent"),
        "created_alibaba_instance": created("alibaba"),
        "created_tencent_instance": created("tencent"),
        "database_removed_with_purge": edit_inputs(alibaba, MYSQL, _delete_text('rm -rf -- "$DATA_DIR"', purge="1")),
        "data_removal_guarded_by_purge": edit_inputs(
            alibaba, MYSQL, _delete_text('if [ "$PURGE" = 1 ]; then\n  rm -rf -- "$DATA_DIR"\nfi')
        ),
    }


@cache
def failing_resources():
    alibaba = shipped("alibaba")
    return {
        "adopted_instance_not_protected": _unprotected(),
        "created_alibaba_without_deletion_protection": _instance(
            created("alibaba"), lambda i: i.update(deletionProtection=False)
        ),
        "created_tencent_without_termination_guard": _instance(
            created("tencent"), lambda i: i.pop("disableApiTermination")
        ),
        "created_tencent_disk_deleted_with_instance": _instance(created("tencent"), _disk(deleteWithInstance=True)),
        "created_alibaba_disk_on_the_default": _instance(created("alibaba"), _without_delete_flag),
        "database_data_removed_without_purge": edit_inputs(alibaba, MYSQL, _delete_text('rm -rf "$DATA_DIR"')),
        "podman_volume_removed": edit_inputs(alibaba, MYSQL, _delete_text("podman volume rm production-mysql-data")),
        "unprotected_disk_deleted_with_instance": with_resources(
            alibaba, resource("alicloud:ecs/ecsDisk:EcsDisk", "data", {"deleteWithInstance": True, "encrypted": True})
        ),
    }


def test_data_protection_passes_and_fails_the_named_fixtures():
    fixtures = {**passing_resources(), **failing_resources()}
    assert flagged(fixtures, "data-protection") == set(failing_resources())


def test_messages_say_what_would_be_lost():
    found = {name: [v.message for v in violations(run, "data-protection")] for name, run in failing_resources().items()}
    assert found["adopted_instance_not_protected"] == [
        "not protected: `pulumi destroy` or a replacing change would delete it"
    ]
    assert found["created_tencent_without_termination_guard"] == [
        "disableApiTermination is not true: the cloud console or API can release the instance"
    ]
    assert found["created_alibaba_disk_on_the_default"] == [
        "dataDisks[0].deleteWithInstance is not false: the data dies with the instance"
    ]
    (removal,) = found["database_data_removed_without_purge"]
    assert removal.startswith("delete line ")
    assert removal.endswith(
        ': removes a data directory: rm -rf "$DATA_DIR" (only a database with purge: true may lose its data)'
    )
    (volume,) = found["podman_volume_removed"]
    assert ": removes container volumes: podman volume rm production-mysql-data" in volume
    assert found["unprotected_disk_deleted_with_instance"] == [
        "not protected: `pulumi destroy` or a replacing change would delete it",
        "deleteWithInstance is true: releasing the instance releases this disk",
    ]


def test_a_database_with_purge_in_its_plan_renders_a_delete_the_policy_accepts():
    run = run_program("alibaba", databases=[{
        "kind": "redis", "name": "cache", "image": "docker.io/library/redis:7", "memoryMib": 64,
        "ports": [{"port": 6380, "expose": "peer"}], "purge": True,
    }])  # fmt: skip
    delete = next(r.inputs["delete"] for r in run.resources if r.name == "alibaba-db-cache")
    assert "PURGE=1" in delete
    assert violations(run, "data-protection") == []
