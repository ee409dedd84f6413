"""Host: adopted hosts are imported, created hosts are protected; data outlives the instance."""

from __future__ import annotations

import pytest

from policies.facts import ALIBABA_INSTANCE, COMMAND, FIREWALL, HOST, SERVICES, STEP, TENCENT_GROUP, TENCENT_INSTANCE
from tests.stacks import CREATED_ALIBABA_HOST, CREATED_TENCENT_HOST, evaluate, inputs

INSTANCE = {"alibaba": ALIBABA_INSTANCE, "tencent": TENCENT_INSTANCE}


@pytest.mark.parametrize(("stack", "instance_id"), [("alibaba", "i-wz9example0000000001"), ("tencent", "ins-example1")])
def test_adopt_mode_imports_the_instance_instead_of_creating_one(stack, instance_id):
    run = evaluate(stack)
    (instance,) = run.of_type(INSTANCE[stack])
    assert instance.import_id == instance_id
    assert instance.protect
    # Nothing about the adopted instance is declared and every property is ignored, so
    # importing it cannot plan a change, now or later.
    assert inputs(instance) == {}
    assert instance.ignore_changes == ["*"]
    assert not run.of_type("alicloud:vpc/network:Network")
    assert not run.of_type("tencentcloud:Vpc/instance:Instance")


@pytest.mark.parametrize(("stack", "host"), [("alibaba", CREATED_ALIBABA_HOST), ("tencent", CREATED_TENCENT_HOST)])
def test_a_created_instance_is_protected_and_never_replaced_by_an_ordinary_change(stack, host):
    run = evaluate(stack, host=host, firewall={"securityGroupId": None})
    (instance,) = run.of_type(INSTANCE[stack])
    assert instance.import_id == ""
    assert instance.protect
    assert instance.retain_on_delete
    assert {"imageId", "availabilityZone", "dataDisks", "userData"} <= set(instance.ignore_changes)


def test_alibaba_created_instance_keeps_its_encrypted_data_disk_and_has_deletion_protection():
    run = evaluate("alibaba", host=CREATED_ALIBABA_HOST, firewall={"securityGroupId": None})
    (instance,) = run.of_type(INSTANCE["alibaba"])
    values = inputs(instance)
    assert values["deletionProtection"] is True
    assert values["dataDisks"] == [
        {
            "name": "alibaba-host-data",
            "size": 40.0,
            "category": "cloud_essd",
            "encrypted": True,
            "deleteWithInstance": False,
        }
    ]
    assert values["instanceType"] == "ecs.t6-c1m1.large"
    assert values["availabilityZone"] == "cn-shenzhen-a"


def test_tencent_created_instance_keeps_its_encrypted_data_disk_and_refuses_api_termination():
    run = evaluate("tencent", host=CREATED_TENCENT_HOST, firewall={"securityGroupId": None})
    (instance,) = run.of_type(INSTANCE["tencent"])
    values = inputs(instance)
    assert values["disableApiTermination"] is True
    assert values["dataDisks"] == [
        {
            "dataDiskName": "tencent-host-data",
            "dataDiskSize": 40.0,
            "dataDiskType": "CLOUD_PREMIUM",
            "encrypt": True,
            "deleteWithInstance": False,
        }
    ]
    (group,) = run.of_type(TENCENT_GROUP)
    assert values["orderlySecurityGroups"] == [f"{group.name}-id"]


def test_a_created_host_without_a_pinned_key_is_not_provisioned():
    run = evaluate("alibaba", host=CREATED_ALIBABA_HOST, firewall={"securityGroupId": None})
    assert run.of_type(COMMAND) == []
    pinned = evaluate(
        "alibaba",
        host={
            **CREATED_ALIBABA_HOST,
            "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMmDv/NdJQz7SSKw1mESeTlaszpqQledSbKMYCelqTQl",
        },
        firewall={"securityGroupId": None},
    )
    databases = [db["name"] for db in pinned.outputs["plan"]["workloads"] if db["role"].startswith("database:")]
    assert {c.name for c in pinned.of_type(COMMAND)} == {
        "alibaba-db-bootstrap",
        "alibaba-db-tls",
        "alibaba-db-restore-drill",
        *(f"alibaba-db-{db}" for db in databases),
        *(f"alibaba-db-backup-{db}" for db in databases),
        *(f"alibaba-db-repl-production-{kind}" for kind in ("mysql", "postgres", "redis")),
        "alibaba-db-replication-counts",
        *(f"alibaba-db-exporter-production-{kind}" for kind in ("mysql", "postgres", "redis")),
        *(f"alibaba-db-clients-production-{kind}" for kind in ("mysql", "postgres")),
        "alibaba-db-monitoring",
        "alibaba-db-certificate-check",
        "alibaba-db-heartbeat",
        "alibaba-db-metrics-login",
    }


@pytest.mark.parametrize("stack", ["alibaba", "tencent"])
def test_every_connection_pins_the_host_key_and_uses_the_private_key(stack):
    run = evaluate(stack)
    connections = [inputs(c)["connection"] for c in run.of_type(COMMAND)]
    assert connections
    for connection in connections:
        assert connection["hostKey"].startswith("ssh-ed25519 ")
        assert connection["privateKey"].startswith("PLACEHOLDER-SECRET-")
        assert "password" not in connection


def test_every_component_registers_the_plan_it_was_given():
    run = evaluate("tencent")
    components = [r for r in run.resources if not r.custom and r.type != STEP]  # a step record holds no plan
    assert {c.type for c in components} == {
        HOST,
        FIREWALL,
        SERVICES,
    }
    for component in components:
        plan = inputs(component)["plan"]
        assert plan["hostMemoryMib"] == 3686.0
        assert {w["name"]: w["memoryMib"] for w in plan["workloads"]}["ai-service-1"] == 600.0
