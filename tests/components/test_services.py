"""Services: systemd units from the plan, deployed batch by batch behind health checks."""

from __future__ import annotations

import pytest

from components.services import systemd_unit
from policies.facts import COMMAND
from tests.stacks import commands, default_services, evaluate

MEMORY = {"zervigo": 200, "shared-service": 250, "ai-service-1": 600, "ai-service-2": 600, "looma-crm": 250}


@pytest.mark.parametrize(("name", "memory"), MEMORY.items())
def test_each_unit_is_limited_to_its_planned_memory_and_hardened(tencent_plan, name, memory):
    (service,) = [s for s in tencent_plan.services if s.name == name]
    unit = systemd_unit(service, tencent_plan.paths)
    for line in (
        f"MemoryMax={memory}M",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"Environment=PORT={service.port}",
        f"WorkingDirectory=/opt/platform/{name}/current",
    ):
        assert line in unit.splitlines()


def test_batches_wait_for_the_previous_batch(tencent):
    by_name = {r.name: r for r in tencent.of_type(COMMAND)}
    urn = {name: by_name[f"tencent-svc-{name}"].urn for name in MEMORY}
    bootstrap = by_name["tencent-svc-bootstrap"].urn
    assert set(by_name["tencent-svc-zervigo"].dependencies) >= {bootstrap}
    assert {urn["zervigo"], urn["shared-service"]} <= set(by_name["tencent-svc-ai-service-1"].dependencies)
    assert {urn["zervigo"], urn["shared-service"]} <= set(by_name["tencent-svc-ai-service-2"].dependencies)
    assert {urn["ai-service-1"], urn["ai-service-2"]} <= set(by_name["tencent-svc-looma-crm"].dependencies)
    assert urn["looma-crm"] not in by_name["tencent-svc-ai-service-1"].dependencies


def test_each_deploy_gates_on_its_health_path(tencent):
    for name, command in commands(tencent).items():
        if name in (
            "tencent-svc-bootstrap",
            "tencent-svc-proxy",
            "tencent-svc-monitoring",
            "tencent-svc-certificate-check",
            "tencent-svc-heartbeat",
            "tencent-svc-replication-health",
            "tencent-svc-replication-counts",
        ) or name.startswith("tencent-svc-replica-"):
            continue
        service = name.removeprefix("tencent-svc-")
        assert f"UNIT_NAME=platform-{service}.service" in command["create"]
        assert "HEALTH_URL=http://127.0.0.1:" in command["create"]
        assert "/health" in command["create"]
        assert command["logging"] == "stdoutAndStderr"


def test_a_non_root_ssh_user_runs_the_scripts_through_sudo_without_a_prompt(tencent):
    for command in commands(tencent).values():
        assert command["create"].startswith("sudo -n bash -c ")
    as_root = evaluate("tencent", host={"sshUser": "root"})
    assert all(c["create"].startswith("bash -c ") for c in commands(as_root).values())


def test_a_retired_service_gets_a_retire_command_and_no_deploy():
    run = evaluate(
        "tencent",
        services=default_services(without=("looma-crm",)),
        batches=[["zervigo", "shared-service"], ["ai-service-1", "ai-service-2"]],
        retired={"services": [{"name": "looma-crm"}]},
    )
    by_name = commands(run)
    assert "tencent-svc-looma-crm" not in by_name
    retire = by_name["tencent-svc-retire-looma-crm"]["create"]
    assert "UNIT_NAME=platform-looma-crm.service" in retire
    assert "systemctl disable" in retire
    assert run.named("tencent-svc-retire-looma-crm").dependencies == [run.named("tencent-svc-bootstrap").urn]


def test_every_variable_the_platform_sets_for_a_database_is_reserved():
    """A stack's ``DB_<NAME>_TLS: "false"`` would be overwritten in the unit: it is refused instead."""
    from components.services import _ENDPOINT_FIELDS, credential_names
    from plan import DATABASE_VARIABLE_SUFFIXES, Service

    service = Service.model_validate(
        {
            "name": "reader",
            "port": 8300,
            "family": "reader",
            "memoryMib": 64,
            "release": {"version": "1", "artifact": "https://example.com/r.tgz", "sha256": "a" * 64},
            "startCommand": "./reader",
            "databases": ["production-mysql"],
        }
    )
    set_by_platform = {f"DB_PRODUCTION_MYSQL_{suffix}" for suffix in _ENDPOINT_FIELDS} | {
        *credential_names(service),
        "DB_PRODUCTION_MYSQL_PASSWORD_FILE",
        "DB_PRODUCTION_MYSQL_CA_FILE",
    }
    assert set_by_platform == {f"DB_PRODUCTION_MYSQL_{suffix}" for suffix in DATABASE_VARIABLE_SUFFIXES}
