"""The offline runner drives the pack as CrossGuard does: config, levels, inputs vs outputs, unknowns."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime import proto

from policies import pack as policies
from preflight.engine import UNKNOWN
from preflight.policy import PackConfigError, evaluate, load_pack, validate_config
from tests.policies.shapes import (
    ROOT,
    alibaba_rule,
    edit_inputs,
    resource,
    run_program,
    secret,
    shipped,
    violations,
    with_resources,
)

FIXTURES = ROOT / "tests" / "policies" / "fixtures"


@pytest.fixture(scope="module")
def refused():
    return run_program("services-on-alibaba", root=FIXTURES)


def test_the_pack_lists_every_policy_with_a_description_and_a_level():
    pack = load_pack()
    assert list(pack.policies) == [p.name for p in policies.POLICIES]
    assert {name: pack.level(name) for name in pack.policies} == {
        "memory-budget": "mandatory",
        "memory-headroom": "advisory",
        "port-plan": "mandatory",
        "firewall-matches-plan": "mandatory",
        "no-public-database": "mandatory",
        "egress-least-privilege": "mandatory",
        "secret-hygiene": "mandatory",
        "data-protection": "mandatory",
        "safe-lifecycle": "mandatory",
        "database-backups": "mandatory",
        "backup-waivers": "advisory",
        "replication-over-tls": "mandatory",
        "services-behind-tls": "mandatory",
        "disk-encryption": "advisory",
        "default-network": "advisory",
        "user-data-secrets": "advisory",
    }
    assert all(info.description and info.severity for info in pack.policies.values())


def test_every_policys_defaults_satisfy_its_own_schema():
    pack = load_pack()
    validate_config(pack.policies, pack.config)  # raises on the first property its schema refuses
    assert {name for name, info in pack.policies.items() if info.schema} == {
        "memory-budget",
        "memory-headroom",
        "port-plan",
        "no-public-database",
        "egress-least-privilege",
        "database-backups",
    }


def test_schema_defaults_fill_the_config_as_the_cli_does():
    pack = load_pack(config={"memory-budget": {"osReserveMib": 300}})
    assert pack.properties("memory-budget") == {"osReserveMib": 300, "reserveByCloudMib": {}}
    assert pack.properties("memory-headroom")["osReserveMib"] == 256
    assert pack.properties("memory-headroom")["headroomPercent"] == 10


def test_all_sets_every_level_and_a_named_policy_overrides_it(refused):
    config = {"all": "advisory", "port-plan": "mandatory"}
    pack = load_pack(config=config)
    assert pack.level("memory-budget") == "advisory"
    assert pack.level("port-plan") == "mandatory"
    (budget,) = [v for v in evaluate(refused, pack) if v.policy == "memory-budget"]
    assert budget.level == "advisory"


def test_remediate_reports_as_mandatory_as_the_cli_does(refused):
    (budget,) = violations(refused, "memory-budget", {"memory-budget": "remediate"})
    assert budget.level == "mandatory"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"memory-budget": {"osReserveMib": -5}}, "memory-budget: osReserveMib: -5 is less than the minimum of 0"),
        ({"memory-budget": "strict"}, "memory-budget: 'strict' is not a valid enforcement level"),
        ({"memory-budgte": "advisory"}, "unknown policy memory-budgte; policies: memory-budget, memory-headroom"),
        ({"port-plan": {"families": {"ai": {"first": 8100}}}}, "port-plan: families.ai: 'last' is a required property"),
        (
            {"egress-least-privilege": {"allowed": "dns"}},
            "egress-least-privilege: allowed: 'dns' is not of type 'array'",
        ),
    ],
)
def test_a_config_the_schema_refuses_is_an_error(config, message):
    with pytest.raises(PackConfigError) as error:
        load_pack(config=config)
    assert str(error.value).startswith(message)


def test_resource_policies_read_inputs_and_stack_policies_read_outputs():
    # The provider reports outputs that differ from the inputs: the rule the program asked for
    # is the peer's /32, the state says 0.0.0.0/0; the disk asked to outlive its instance, the
    # state says it dies with it.
    alibaba = shipped("alibaba")
    rule = alibaba_rule("drifted-3306", alibaba.named("alibaba-fw"), cidrIp="101.33.251.158/32")
    rule.outputs = {**rule.outputs, "cidrIp": "0.0.0.0/0"}
    disk = resource(
        "alicloud:ecs/ecsDisk:EcsDisk",
        "drifted-disk",
        {"deleteWithInstance": False, "encrypted": True},
        protect=True,
        outputs={"deleteWithInstance": True, "encrypted": True},
    )
    run = with_resources(alibaba, rule, disk)
    assert violations(run, "data-protection") == []  # a resource policy: the inputs are fine
    (found,) = violations(run, "firewall-matches-plan")  # stack policies: the outputs are not
    assert "drifted-3306: accept tcp 3306 from 0.0.0.0/0" in found.message
    (found,) = violations(run, "no-public-database")
    assert found.message == "drifted-3306: accept tcp 3306 from 0.0.0.0/0: opens 3306 (database) to the whole Internet"


def test_secrets_reach_validators_unwrapped_so_a_secret_command_text_is_still_read():
    def hide(inputs):
        inputs["create"] = secret(inputs["create"] + "\nmysql -uroot -pS3cretPassw0rd\n")

    run = edit_inputs(shipped("alibaba"), "alibaba-db-production-mysql", hide)
    assert [v.message for v in violations(run, "secret-hygiene")] == [
        "create: a mysql -p<password> argument; pass secrets on stdin from `pulumi config --secret`"
    ]


def test_a_value_unknown_during_preview_gives_an_advisory_cant_run_as_the_cli_does():
    def unknown_source(inputs):
        inputs["ingresses"][0]["cidrBlock"] = UNKNOWN

    run = edit_inputs(shipped("tencent"), "tencent-fw-rules", unknown_source)
    (found,) = violations(run, "no-public-database")
    assert found.level == "advisory"
    assert found.message == (
        "can't run policy 'no-public-database' from policy pack 'platform-guardrails@v1.0.0' during preview: "
        "string value at .ingresses.0.cidrBlock can't be known during preview"
    )


def test_the_pack_served_over_grpc_reports_what_the_runner_reports(refused):
    """The pack as the CLI starts it (``python policies``), asked over gRPC: same verdicts."""
    server = subprocess.Popen(
        [sys.executable, "-u", str(ROOT / "policies")],
        stdout=subprocess.PIPE,
        cwd=Path("/"),  # the pack must not depend on the working directory
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = proto.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty())
            assert [p.name for p in info.policies] == [p.name for p in policies.POLICIES]
            served = evaluate(refused, load_pack(), _Remote(stub))
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert served == evaluate(refused, load_pack())
    assert {v.policy for v in served} == {"memory-budget"}


class _Remote:
    """A gRPC stub with the servicer's (request, context) call shape."""

    def __init__(self, stub):
        self.stub = stub

    def Configure(self, request, _context):  # noqa: N802 - the gRPC method names
        return self.stub.Configure(request)

    def Analyze(self, request, _context):  # noqa: N802
        return self.stub.Analyze(request)

    def AnalyzeStack(self, request, _context):  # noqa: N802
        return self.stub.AnalyzeStack(request)


def test_runs_are_not_mutated_by_evaluation(refused):
    before = copy.deepcopy(refused)
    evaluate(refused, load_pack())
    assert refused == before


def test_stack_policies_read_each_hosts_plan_from_its_components_outputs_when_registered():
    # DESIGN.md: components register their plan as props *and outputs*. When they do, stack
    # policies read it per host from them rather than from the stack's one `plan` output.
    run = copy.deepcopy(shipped("alibaba"))
    plan = run.outputs.pop("plan")
    for component in (run.named("alibaba-host"), run.named("alibaba-fw")):
        component.outputs["plan"] = copy.deepcopy(plan)
    assert [v.urn.rsplit("::", 1)[-1] for v in violations(run, "memory-headroom")] == ["alibaba-host"]
    assert violations(run, "firewall-matches-plan") == []
    assert violations(run, "egress-least-privilege") == []
    run.named("alibaba-host").outputs["plan"]["hostMemoryMib"] = 1500.0
    (found,) = violations(run, "memory-budget")
    assert "short by 336 MiB" in found.message
