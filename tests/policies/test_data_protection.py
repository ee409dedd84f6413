"""data-protection: instances and disks survive a destroy; data leaves only with purge: true."""

from __future__ import annotations

import copy
from functools import cache

from plan import DEFAULT_DATABASES
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
RETIRE_REDIS = "alibaba-db-retire-production-redis"


@cache
def _retiring():
    """The alibaba stack with production-redis retired (kept): its retire command's create removes it."""
    databases = [db for db in DEFAULT_DATABASES if db["name"] != "production-redis"]
    return run_program("alibaba", databases=databases, retired={"databases": [{"name": "production-redis"}]})


def _removal_text(extra: str, purge: str = "0", key: str = "create"):
    def edit(inputs):
        assert "PURGE=0" in inputs["create"]
        inputs[key] = inputs["create"].replace("PURGE=0", f"PURGE={purge}") + f"\n{extra}\n"

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
        "retiring_a_database": _retiring(),
        "database_retired_with_purge": edit_inputs(
            _retiring(), RETIRE_REDIS, _removal_text('rm -rf -- "$DATA_DIR"', purge="1")
        ),
        "data_removal_guarded_by_purge": edit_inputs(
            _retiring(), RETIRE_REDIS, _removal_text('if [ "$PURGE" = 1 ]; then\n  rm -rf -- "$DATA_DIR"\nfi')
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
        "database_data_removed_without_purge": edit_inputs(
            _retiring(), RETIRE_REDIS, _removal_text('rm -rf "$DATA_DIR"')
        ),
        "podman_volume_removed": edit_inputs(
            _retiring(), RETIRE_REDIS, _removal_text("podman volume rm production-redis-data", key="delete")
        ),
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
    assert removal.startswith("create line ")
    assert removal.endswith(
        ': removes a data directory: rm -rf "$DATA_DIR" (only a database retired with purge: true may lose its data)'
    )
    (volume,) = found["podman_volume_removed"]
    assert ": removes container volumes: podman volume rm production-redis-data" in volume
    assert found["unprotected_disk_deleted_with_instance"] == [
        "not protected: `pulumi destroy` or a replacing change would delete it",
        "deleteWithInstance is true: releasing the instance releases this disk",
    ]


def test_a_database_retired_with_purge_renders_a_removal_the_policy_accepts():
    databases = [db for db in DEFAULT_DATABASES if db["name"] != "production-redis"]
    run = run_program(
        "alibaba", databases=databases, retired={"databases": [{"name": "production-redis", "purge": True}]}
    )
    create = next(r.inputs["create"] for r in run.resources if r.name == RETIRE_REDIS)
    assert "PURGE=1" in create
    assert violations(run, "data-protection") == []
