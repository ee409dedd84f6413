"""safe-lifecycle: no replacement runs a destructive delete; an adopted group's rule set is protected."""

from __future__ import annotations

import copy
from functools import cache

from components.provisioning import as_command, render
from policies.facts import LOCAL_COMMAND, TENCENT_GROUP, TENCENT_RULE_SET
from tests.policies.shapes import (
    COMMAND,
    flagged,
    resource,
    run_of,
    shipped,
    shipped_and_created_groups,
    violations,
)

# A database step as provisioning renders it: the script inside ``bash -c '...'``.
DB_DELETE = as_command(
    render([], {"NAME": "production-mysql"}) + 'systemctl stop "$NAME.service"\n', "production-mysql", sudo=True
)
TRIGGERS = ["3f2c9d0e8b7a6f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c3b2a190807f6e"]
RULES = {
    "ingresses": [{"action": "ACCEPT", "cidrBlock": "198.51.100.7/32", "protocol": "TCP", "port": "22"}],
    "egresses": [{"action": "DROP", "cidrBlock": "0.0.0.0/0", "protocol": "ALL", "port": "ALL"}],
}


def _command(name: str, type_: str = COMMAND, *, delete_before_replace: bool = False, **inputs):
    return resource(type_, name, {"create": "true", **inputs}, delete_before_replace=delete_before_replace)


def _rule_set(name: str, *, protect: bool, group=None):
    group_id = "sg-0example0" if group is None else f"{group.name}-id"
    depends_on = {"securityGroupId": [group]} if group is not None else None
    return resource(
        TENCENT_RULE_SET, name, {"securityGroupId": group_id, **RULES}, protect=protect, depends_on=depends_on
    )


def _rule_set_on_a_created_group():
    group = resource(TENCENT_GROUP, "app-fw-sg", {"name": "app-fw-sg"})
    return run_of(group, _rule_set("app-fw-rules", protect=False, group=group))


@cache
def passing_resources():
    return {
        "destructive_delete_without_triggers": run_of(_command("db-mysql", delete=DB_DELETE)),
        "destructive_delete_with_empty_triggers": run_of(_command("db-mysql", delete=DB_DELETE, triggers=[])),
        "triggers_with_a_harmless_delete": run_of(_command("svc-deploy", delete="echo done", triggers=TRIGGERS)),
        "triggers_without_a_delete": run_of(_command("svc-deploy", triggers=TRIGGERS)),
        "delete_that_only_reports_a_stop": run_of(
            _command("svc-deploy", delete='echo "unit stopped and disabled" # rm later', triggers=TRIGGERS)
        ),
        "protected_adopted_rule_set": run_of(_rule_set("app-fw-rules", protect=True)),
        "unprotected_rule_set_on_a_created_group": _rule_set_on_a_created_group(),
    }


@cache
def failing_resources():
    return {
        "db_stop_with_triggers": run_of(_command("db-mysql", delete=DB_DELETE, triggers=TRIGGERS)),
        "container_stop_with_delete_before_replace": run_of(
            _command("db-redis", delete="podman stop production-redis", delete_before_replace=True)
        ),
        "rm_rf_with_triggers": run_of(
            _command("svc-release", LOCAL_COMMAND, delete="rm -rf /opt/platform/services/app", triggers=TRIGGERS)
        ),
        "stop_with_triggers_and_delete_before_replace": run_of(
            _command(
                "svc-app",
                delete="systemctl disable --now app.service",
                triggers=TRIGGERS,
                delete_before_replace=True,
            )
        ),
        "secret_looking_line_with_triggers": run_of(
            _command("db-cache", delete="REDIS_PASSWORD=placeholder-value redis-cli FLUSHALL", triggers=TRIGGERS)
        ),
        "unprotected_adopted_rule_set": run_of(_rule_set("app-fw-rules", protect=False)),
    }


def test_safe_lifecycle_passes_and_fails_the_named_fixtures():
    fixtures = {**passing_resources(), **failing_resources()}
    assert flagged(fixtures, "safe-lifecycle") == set(failing_resources())


def test_the_shipped_and_created_stacks_pass():
    # Workload commands carry no triggers and no delete; the adopted Tencent rule set is protected.
    fixtures = shipped_and_created_groups()
    assert {name: [v.message for v in violations(run, "safe-lifecycle")] for name, run in fixtures.items()} == {
        name: [] for name in fixtures
    }


def test_the_shipped_tencent_rule_set_is_adopted_so_it_must_stay_protected():
    run = copy.deepcopy(shipped("tencent"))
    (rule_set,) = run.of_type(TENCENT_RULE_SET)
    rule_set.protect = False
    assert [v.urn for v in violations(run, "safe-lifecycle")] == [rule_set.urn]


def test_messages_name_what_was_seen_and_what_the_engine_would_do():
    found = {name: [v.message for v in violations(run, "safe-lifecycle")] for name, run in failing_resources().items()}
    replaced = (
        "and triggers make it replaceable: a changed trigger replaces the command and runs this delete after "
        "the new create"
    )
    deleted_first = (
        "and deleteBeforeReplace is true: any replacement runs this delete before the new create, so the "
        "workload is down (or its data gone) whether or not the create succeeds"
    )
    assert found["db_stop_with_triggers"] == [
        f'delete stops or removes a workload (line 5: systemctl stop "$NAME.service") {replaced}'
    ]
    assert found["container_stop_with_delete_before_replace"] == [
        f"delete stops or removes a workload (line 1: podman stop production-redis) {deleted_first}"
    ]
    assert found["rm_rf_with_triggers"] == [
        f"delete stops or removes a workload (line 1: rm -rf /opt/platform/services/app) {replaced}"
    ]
    assert found["stop_with_triggers_and_delete_before_replace"] == [
        f"delete stops or removes a workload (line 1: systemctl disable --now app.service) {replaced}",
        f"delete stops or removes a workload (line 1: systemctl disable --now app.service) {deleted_first}",
    ]
    assert found["secret_looking_line_with_triggers"] == [
        f"delete stops or removes a workload (line 1: text withheld: it looks like it holds a secret) {replaced}"
    ]
    assert found["unprotected_adopted_rule_set"] == [
        "authoritative rule set on an adopted group is not protected: a destroy, a rename or a corrected group id "
        "writes an empty rule set, which blocks all traffic to the host, SSH included"
    ]


def test_each_violation_names_the_resource():
    for name, run in failing_resources().items():
        offender = run.resources[-1]
        assert {v.urn for v in violations(run, "safe-lifecycle")} == {offender.urn}, name
