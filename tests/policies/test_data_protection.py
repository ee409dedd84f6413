"""data-protection: instances and disks survive a destroy; data leaves only with purge: true."""

from __future__ import annotations

import copy
import shlex
from functools import cache

from components.provisioning import render
from plan import DEFAULT_DATABASES
from policies.facts import ALIBABA_INSTANCE, COMMAND, TENCENT_INSTANCE, step_record_name
from preflight.engine import unwrap
from tests.policies.shapes import (
    created,
    edit_inputs,
    flagged,
    resource,
    run_program,
    shipped,
    step_parameter,
    violations,
    with_resources,
)
from tests.stacks import default_services

MYSQL = "alibaba-db-production-mysql"
RETIRE_REDIS = "alibaba-db-retire-production-redis"
RETIRE_LOOMA = "tencent-svc-retire-looma-crm"
REDIS_STEP, LOOMA_STEP = step_record_name(RETIRE_REDIS), step_record_name(RETIRE_LOOMA)  # their step records


@cache
def _retiring():
    """The alibaba stack with production-redis retired (kept): its retire command's create removes it."""
    databases = [db for db in DEFAULT_DATABASES if db["name"] != "production-redis"]
    return run_program("alibaba", databases=databases, retired={"databases": [{"name": "production-redis"}]})


@cache
def _purging():
    """The alibaba stack with production-redis retired with purge: true (its command renders PURGE=1)."""
    databases = [db for db in DEFAULT_DATABASES if db["name"] != "production-redis"]
    return run_program(
        "alibaba", databases=databases, retired={"databases": [{"name": "production-redis", "purge": True}]}
    )


@cache
def _retiring_a_service():
    """The tencent stack with looma-crm retired: its command removes SERVICE_DIR."""
    services = default_services(without=("looma-crm",))
    batches = [["zervigo", "shared-service"], ["ai-service-1", "ai-service-2"]]
    return run_program("tencent", services=services, batches=batches, retired={"services": [{"name": "looma-crm"}]})


def _declared(path: str, when: str | None = None, **params: str):
    """An edit of a step record: one more declared removal (as a script's ``# Removes:`` would add), and parameters."""

    def edit(inputs):
        inputs["removes"].append({"path": path, "when": when})
        inputs["parameters"].update(params)

    return edit


def _delete(text: str):
    def edit(inputs):
        inputs["delete"] = text

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
            _retiring(), REDIS_STEP, _declared("${DATA_DIR}/*", "PURGE", PURGE="1")
        ),
        "data_removal_guarded_by_purge": edit_inputs(_retiring(), REDIS_STEP, _declared("${DATA_DIR}/*", "PURGE")),
        "database_purged_from_its_own_directory": _purging(),
        "purged_directory_with_a_space": edit_inputs(
            _purging(), REDIS_STEP, step_parameter("DATA_DIR", "/var/lib/platform/production redis")
        ),
        # Without purge the data directory is kept, so where it points removes nothing.
        "system_directory_kept_without_purge": edit_inputs(_retiring(), REDIS_STEP, step_parameter("DATA_DIR", "/etc")),
        "service_retired_from_its_own_directory": _retiring_a_service(),
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
        "database_data_removed_without_purge": edit_inputs(_retiring(), REDIS_STEP, _declared("${DATA_DIR}")),
        "podman_volume_removed": edit_inputs(
            _retiring(), RETIRE_REDIS, _delete("podman volume rm production-redis-data")
        ),
        "unprotected_disk_deleted_with_instance": with_resources(
            alibaba, resource("alicloud:ecs/ecsDisk:EcsDisk", "data", {"deleteWithInstance": True, "encrypted": True})
        ),
        **failing_removal_targets(),
    }


@cache
def failing_removal_targets():
    """Removals that land on a system directory or can reach beyond their own, one per case."""
    return {
        "purge_of_etc": edit_inputs(_purging(), REDIS_STEP, step_parameter("DATA_DIR", "/etc")),
        "purge_of_the_root": edit_inputs(_purging(), REDIS_STEP, step_parameter("DATA_DIR", "/")),
        "purge_of_var_lib": edit_inputs(_purging(), REDIS_STEP, step_parameter("DATA_DIR", "/var/lib/")),
        "purge_of_usr_through_dot_dot": edit_inputs(
            _purging(), REDIS_STEP, step_parameter("DATA_DIR", "/usr/local/..")
        ),
        "purge_climbing_out_with_dot_dot": edit_inputs(
            _purging(),
            REDIS_STEP,
            step_parameter("DATA_DIR", "/var/lib/platform/../production-redis"),
        ),
        "purge_with_an_empty_component": edit_inputs(
            _purging(),
            REDIS_STEP,
            step_parameter("DATA_DIR", "/var/lib/platform//production-redis"),
        ),
        "purge_of_a_glob": edit_inputs(_purging(), REDIS_STEP, step_parameter("DATA_DIR", "/var/lib/platform/*")),
        "service_retired_from_opt": edit_inputs(
            _retiring_a_service(), LOOMA_STEP, step_parameter("SERVICE_DIR", "/opt")
        ),
        "rm_of_a_parameter_naming_a_system_directory": edit_inputs(
            _retiring(), REDIS_STEP, _declared("${STATE_DIR}", STATE_DIR="/var/lib")
        ),
        "rm_of_a_glob_over_a_system_directory": edit_inputs(
            _retiring(), REDIS_STEP, _declared("${STATE_DIR}/*", STATE_DIR="/etc")
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
    assert found["database_data_removed_without_purge"] == [
        "removes ${DATA_DIR} = /var/lib/platform/production-redis, a database's data directory, on every run (only "
        "a database retired with purge: true may lose its data)"
    ]
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


def test_removal_targets_are_read_from_the_step_records():
    def messages(name):
        return [v.message for v in violations(failing_removal_targets()[name], "data-protection")]

    rest = "; a removal stays inside a directory of the platform's own (platform:paths)"
    assert messages("purge_of_etc") == [f"purges ${{DATA_DIR}} = /etc, which is the system directory /etc{rest}"]
    assert messages("purge_of_the_root") == [f"purges ${{DATA_DIR}} = /, which is the root directory{rest}"]
    assert messages("purge_of_var_lib") == [
        f"purges ${{DATA_DIR}} = /var/lib/, which is the system directory /var/lib{rest}"
    ]
    assert messages("purge_of_usr_through_dot_dot") == [
        f"purges ${{DATA_DIR}} = /usr/local/.., which is the system directory /usr{rest}"
    ]
    assert messages("purge_climbing_out_with_dot_dot") == [
        "purges ${DATA_DIR} = /var/lib/platform/../production-redis, which has a '..' component: it "
        f"can climb out of the directory it names{rest}"
    ]
    assert messages("purge_with_an_empty_component") == [
        "purges ${DATA_DIR} = /var/lib/platform//production-redis, which has an empty component "
        f"('//'): a parameter is empty or '/'{rest}"
    ]
    (glob,) = messages("purge_of_a_glob")
    assert "which has a glob character in a parameter" in glob
    assert messages("service_retired_from_opt") == [
        f"removes ${{SERVICE_DIR}} = /opt, which is the system directory /opt{rest}"
    ]
    assert messages("rm_of_a_parameter_naming_a_system_directory") == [
        f"removes ${{STATE_DIR}} = /var/lib, which is the system directory /var/lib{rest}"
    ]
    assert messages("rm_of_a_glob_over_a_system_directory") == [
        f"removes ${{STATE_DIR}}/* = /etc/*, which is a glob over the system directory /etc{rest}"
    ]


def test_a_step_record_describes_exactly_the_script_its_command_runs():
    """The policy reads the record; the record holds the scripts and parameters the command renders."""
    run = _purging()
    record = unwrap(run.named(REDIS_STEP).inputs)
    expected = {
        "DATA_DIR": "/var/lib/platform/production-redis",
        "NAME": "production-redis",
        "PURGE": "1",
        "STATE_DIR": "/var/lib/platform-state",
        "UNIT_FILE": "/etc/containers/systemd/production-redis.container",
    }
    assert record["parameters"].items() >= expected.items()
    assert {"path": "${DATA_DIR}", "when": "PURGE"} in record["removes"]
    for command in run.of_type(COMMAND):
        step = unwrap(run.named(step_record_name(command.name)).inputs)
        create = unwrap(command.inputs["create"])
        assert shlex.quote(render(step["scripts"], step["parameters"])) in create, command.name
