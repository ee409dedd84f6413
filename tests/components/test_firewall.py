"""Firewall: the exact rules each stack registers, derived from the plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import RunError

from components.adopted_rules import GroupRule, defeating_rules, revoke_command
from plan import load_plan
from policies.facts import ALIBABA_GROUP, ALIBABA_RULE, TENCENT_GROUP, TENCENT_RULE_SET
from preflight.engine import (
    ALIBABA_GROUP_RULES,
    CloudMocks,
    RecordingMonitor,
    StackOutputs,
    StackRun,
    run_stack,
    unwrap,
)
from preflight.inspect import firewall_rules
from tests.stacks import (
    CREATED_ALIBABA_HOST,
    CREATED_TENCENT_HOST,
    cache_database,
    config_for,
    evaluate,
    inputs,
    preflight_cli,
    stack_folder,
    step_parameters,
    without_replicas,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alibaba_security_group_rules"
GROUP = "sg-wz9example000000001"

ALIBABA = "47.115.168.107/32"
TENCENT = "101.33.251.158/32"
ADMINS = "203.0.113.0/24"
WORLD = "0.0.0.0/0"
DATABASE_PORTS = (3306, 5432, 6379, 7474, 7687, 9200, 9300, 8080)


# The metrics tunnel's login: SSH from the peer, on the Alibaba host (components/metrics_tunnel.py).
PEER_SSH = ("tcp", 22, TENCENT)
# Each cloud's rules on the shipped Alibaba stack: one per peer database port, SSH from the peer
# and from the admins, the deny-all, and the egress allowlist with its deny-all.
ALIBABA_RULES = len(DATABASE_PORTS) + 1 + 11
EGRESS_ALLOWLIST = {
    ("udp", 53, WORLD),
    ("tcp", 53, WORLD),
    ("tcp", 80, WORLD),
    ("tcp", 443, WORLD),
    ("udp", 123, WORLD),
}


def rule_set(rules, direction, action="accept"):
    return {
        (r["protocol"], r["port"], r["cidr"]) for r in rules if r["direction"] == direction and r["action"] == action
    }


def test_alibaba_ingress_is_exactly_the_eight_database_ports_and_ssh_from_the_peer_and_ssh_from_admins(alibaba):
    """The design card's eight inbound ports: the exporters listen on loopback and travel through
    the metrics tunnel, so SSH is the only other port the peer reaches."""
    rules = firewall_rules(alibaba)
    peer = {("tcp", port, TENCENT) for port in DATABASE_PORTS}
    assert len(DATABASE_PORTS) == 8
    assert rule_set(rules, "ingress") == peer | {PEER_SSH, ("tcp", 22, ADMINS)}
    assert rule_set(rules, "ingress", "drop") == {("all", None, WORLD)}
    assert not {9100, 9104, 9121, 9187} & {port for _, port, _ in rule_set(rules, "ingress")}


def test_without_monitoring_the_alibaba_group_admits_no_ssh_from_the_peer():
    rules = firewall_rules(evaluate("alibaba", monitoring={"enabled": False}))
    assert PEER_SSH not in rule_set(rules, "ingress")


def test_alibaba_egress_is_the_allowlist_then_deny_all_at_the_lowest_priority(alibaba):
    rules = firewall_rules(alibaba)
    peer_replicas = {("tcp", port, TENCENT) for port in (3306, 5432, 6379)}
    assert rule_set(rules, "egress") == EGRESS_ALLOWLIST | peer_replicas
    deny = [r for r in rules if r["direction"] == "egress" and r["action"] == "drop"]
    assert [(r["protocol"], r["port"], r["cidr"], r["order"]) for r in deny] == [("all", None, WORLD, 100)]
    assert all(r["order"] == 1 for r in rules if r["action"] == "accept")


def test_alibaba_rules_live_in_the_adopted_group_and_are_named_by_identity(alibaba):
    rules = alibaba.of_type(ALIBABA_RULE)
    assert len(rules) == ALIBABA_RULES == 20
    assert {inputs(r)["securityGroupId"] for r in rules} == {"sg-wz9example000000001"}
    assert {inputs(r)["nicType"] for r in rules} == {"intranet"}
    mysql = alibaba.named("alibaba-fw-in-accept-tcp-3306-101-33-251-158-32")
    assert inputs(mysql) == {
        "type": "ingress",
        "ipProtocol": "tcp",
        "portRange": "3306/3306",
        "cidrIp": TENCENT,
        "policy": "accept",
        "priority": 1.0,
        "nicType": "intranet",
        "securityGroupId": "sg-wz9example000000001",
        "description": "platform: production-mysql: MySQL",
    }


def test_every_alibaba_rule_description_carries_the_marker_that_tells_it_from_hand_made_ones(alibaba):
    rules = alibaba.of_type(ALIBABA_RULE)
    assert all(inputs(r)["description"].startswith("platform: ") for r in rules)
    deny = alibaba.named("alibaba-fw-in-drop-all-all-0-0-0-0-0")
    assert inputs(deny)["description"] == "platform: deny everything else"


def test_tencent_ingress_exposes_the_plan_and_ssh_then_denies(tencent):
    rules = firewall_rules(tencent)
    public = {("tcp", port, WORLD) for port in (80, 443)}  # the services are reached through nginx
    replicas = {("tcp", port, ALIBABA) for port in (3306, 5432, 6379)}
    assert rule_set(rules, "ingress") == public | replicas | {("tcp", 22, ADMINS)}
    ingress = [r for r in rules if r["direction"] == "ingress"]
    assert ingress[-1]["action"] == "drop"
    assert ingress[-1]["port"] is None


def test_tencent_egress_reaches_the_alibaba_databases_and_its_ssh_only(tencent):
    rules = firewall_rules(tencent)
    databases = {("tcp", port, ALIBABA) for port in DATABASE_PORTS}
    assert rule_set(rules, "egress") == EGRESS_ALLOWLIST | databases | {("tcp", 22, ALIBABA)}
    egress = [r for r in rules if r["direction"] == "egress"]
    assert (egress[-1]["action"], egress[-1]["protocol"], egress[-1]["port"]) == ("drop", "all", None)


def test_tencent_rules_are_one_ordered_rule_set_in_the_adopted_group(tencent):
    (rule_set_resource,) = tencent.of_type(TENCENT_RULE_SET)
    values = inputs(rule_set_resource)
    assert values["securityGroupId"] == "sg-example1"
    assert values["ingresses"][0] == {
        "action": "ACCEPT",
        "protocol": "TCP",
        "port": "22",
        "cidrBlock": ADMINS,
        "description": "SSH from admins",
    }
    assert values["egresses"][-1]["port"] == "ALL"
    assert values["egresses"][-1]["action"] == "DROP"


def test_tencent_rule_set_on_an_adopted_group_is_protected_and_retained(tencent):
    # Deleting it would write an empty rule set to a group we did not create: all traffic, SSH too, blocked.
    (rule_set_resource,) = tencent.of_type(TENCENT_RULE_SET)
    assert (rule_set_resource.protect, rule_set_resource.retain_on_delete) == (True, True)


def test_tencent_rule_set_on_a_created_group_goes_with_its_group():
    run = evaluate("tencent", host=CREATED_TENCENT_HOST, firewall={"securityGroupId": None})
    (group,) = run.of_type(TENCENT_GROUP)
    (rule_set_resource,) = run.of_type(TENCENT_RULE_SET)
    assert inputs(rule_set_resource)["securityGroupId"] == f"{group.name}-id"
    assert (rule_set_resource.protect, rule_set_resource.retain_on_delete) == (False, False)


def test_a_port_added_to_the_plan_gets_its_rule_and_nothing_else_changes(alibaba):
    grown = evaluate(
        "alibaba",
        databases=[cache_database()],
    )
    assert rule_set(firewall_rules(grown), "ingress") == {("tcp", 6380, TENCENT), ("tcp", 22, ADMINS), PEER_SSH}


def test_a_created_host_gets_a_new_group_in_the_created_vpc():
    run = evaluate(
        "alibaba",
        host=CREATED_ALIBABA_HOST,
        firewall={"securityGroupId": None},
    )
    (group,) = run.of_type(ALIBABA_GROUP)
    (vpc,) = run.of_type("alicloud:vpc/network:Network")
    assert inputs(group)["vpcId"] == f"{vpc.name}-id"
    assert inputs(group)["innerAccessPolicy"] == "Drop"
    rules = run.of_type(ALIBABA_RULE)
    assert {inputs(r)["securityGroupId"] for r in rules} == {f"{group.name}-id"}


# ---------------------------------------------------------------------------------------
# An adopted Alibaba group's hand-made rules
# ---------------------------------------------------------------------------------------

REGION = "cn-shenzhen"  # alicloud:region in Pulumi.alibaba.yaml
HEADING = (
    "platform:firewall.securityGroupId sg-wz9example000000001: the adopted group holds {count} hand-made rules that "
    "defeat the plan; remove each with the command on its line, or set platform:firewall.allowUnmanagedRules: true "
    "to proceed knowingly:"
)
CONSOLE = (
    "Or in the ECS console: Network & Security > Security Groups > sg-wz9example000000001 > Manage Rules, "
    "delete each rule above on its Inbound or Outbound tab."
)
REVOKE = "aliyun ecs RevokeSecurityGroup --RegionId cn-shenzhen --SecurityGroupId sg-wz9example000000001"
WORLD_OPEN = (
    '- ingress tcp {port}/{port} from 0.0.0.0/0 accept priority 1 "{description}": beats the plan\'s deny-all at '
    "priority 100; opens {what} {port}/tcp to the world. Remove: " + REVOKE + " --IpProtocol tcp --PortRange "
    "{port}/{port} --SourceCidrIp 0.0.0.0/0 --Policy accept --Priority 1 --NicType intranet"
)
SEEDS_CONVENIENCE = [
    WORLD_OPEN.format(port=22, what="SSH", description="System created rule."),
    WORLD_OPEN.format(port=3306, what="production-mysql", description="MySQL数据库主从复制和外部访问"),
    WORLD_OPEN.format(port=5432, what="production-postgres", description="PostgreSQL数据库流复制和外部访问"),
    WORLD_OPEN.format(port=6379, what="production-redis", description="Redis数据库主从复制和外部访问"),
    WORLD_OPEN.format(port=7474, what="production-neo4j", description="Neo4j HTTP接口访问"),
    WORLD_OPEN.format(port=7687, what="production-neo4j", description="Neo4j Bolt协议连接"),
    WORLD_OPEN.format(port=9200, what="production-elasticsearch", description="Elasticsearch HTTP接口访问"),
    WORLD_OPEN.format(port=9300, what="production-elasticsearch", description="Elasticsearch节点间通信"),
    WORLD_OPEN.format(port=8080, what="production-weaviate", description="Weaviate HTTP接口访问"),
]
TAKEN_OVER = "identical to a rule of the plan: `pulumi up` would take it over and a later plan would revoke it"
HAND_MADE_TWINS = [
    f'- ingress tcp 3306/3306 from {TENCENT} accept priority 1 "只允许腾讯云服务器访问": {TAKEN_OVER}. Remove: '
    f"{REVOKE} --IpProtocol tcp --PortRange 3306/3306 --SourceCidrIp {TENCENT} --Policy accept --Priority 1 "
    "--NicType intranet",
    f'- ingress all -1/-1 from 0.0.0.0/0 drop priority 100 "deny everything else": {TAKEN_OVER}. Remove: '
    f"{REVOKE} --IpProtocol all --PortRange -1/-1 --SourceCidrIp 0.0.0.0/0 --Policy drop --Priority 100 "
    "--NicType intranet",
    '- egress all -1/-1 to 0.0.0.0/0 accept priority 1 "允许全部出方向": beats the plan\'s deny-all at priority 100. '
    "Remove: aliyun ecs RevokeSecurityGroupEgress --RegionId cn-shenzhen --SecurityGroupId sg-wz9example000000001 "
    "--IpProtocol all --PortRange -1/-1 --DestCidrIp 0.0.0.0/0 --Policy accept --Priority 1 --NicType intranet",
]


def group_response(fixture: str) -> dict[str, Any]:
    """A response of the provider's getSecurityGroupRules, as recorded in tests/fixtures."""
    return json.loads((FIXTURES / f"{fixture}.json").read_text())


def adopted_group_holding(fixture: str) -> CloudMocks:
    response = group_response(fixture)
    return CloudMocks(group_rules={response["groupId"]: response["rules"]})


def evaluate_with(mocks: CloudMocks, stack: str = "alibaba", **changes: Any) -> StackRun:
    return evaluate(stack, monitor=RecordingMonitor(mocks), **changes)


def refusal_lines(mocks: CloudMocks, **changes: Any) -> list[str]:
    with pytest.raises(RunError) as refused:
        evaluate_with(mocks, **changes)
    return str(refused.value).splitlines()


def test_the_shipped_alibaba_stack_reads_its_adopted_group_once_and_finds_it_empty():
    mocks = CloudMocks()
    run = evaluate_with(mocks)
    assert mocks.calls == [(ALIBABA_GROUP_RULES, {"groupId": GROUP, "nicType": "intranet"})]
    assert len(run.of_type(ALIBABA_RULE)) == ALIBABA_RULES


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [("seeds_convenience", SEEDS_CONVENIENCE), ("hand_made_twins", HAND_MADE_TWINS)],
)
def test_hand_made_rules_that_defeat_the_plan_stop_the_preview_one_line_each(fixture, expected):
    lines = refusal_lines(adopted_group_holding(fixture))
    assert lines == [HEADING.format(count=len(expected)), *expected, CONSOLE]


def test_hand_made_rules_that_cannot_defeat_the_plan_and_the_programs_own_are_not_named():
    message = "\n".join(refusal_lines(adopted_group_holding("hand_made_twins")))
    assert "443/443" not in message  # an accept at priority 100 loses to the deny-all (a drop wins a tie)
    assert "3389" not in message  # a drop
    assert "SSH from admins" not in message  # carries the marker: the program's own


def test_a_group_holding_only_the_programs_rules_passes_stale_ones_included():
    stale = {("ingress", "6380/6380", "platform: cache: redis"), ("egress", "7687/7687", "platform: peer database")}
    held = {(r["direction"], r["portRange"], r["description"]) for r in group_response("program_only")["rules"]}
    assert stale <= held  # marked rules of an earlier plan: the engine deletes them, they are not hand-made
    run = evaluate_with(adopted_group_holding("program_only"))
    assert len(run.of_type(ALIBABA_RULE)) == ALIBABA_RULES


def test_allow_unmanaged_rules_proceeds_with_the_same_lines_as_a_warning():
    run = evaluate_with(adopted_group_holding("seeds_convenience"), firewall={"allowUnmanagedRules": True})
    assert len(run.of_type(ALIBABA_RULE)) == ALIBABA_RULES
    (warning,) = [message for message in run.warnings if "hand-made rules" in message]
    assert warning.splitlines() == [HEADING.format(count=9), *SEEDS_CONVENIENCE, CONSOLE]


def test_without_a_region_the_command_says_where_it_goes():
    config = config_for("alibaba")
    without_region = {k: v for k, v in config.config.items() if k != "alicloud:region"}
    monitor = RecordingMonitor(adopted_group_holding("seeds_convenience"))
    with pytest.raises(RunError) as refused:
        run_stack(config.project, "alibaba", without_region, set(config.secret_keys), monitor=monitor)
    assert "RevokeSecurityGroup --RegionId <region> --SecurityGroupId sg-wz9example000000001" in str(refused.value)


def test_a_created_group_is_not_read():
    mocks = adopted_group_holding("seeds_convenience")
    evaluate_with(mocks, host=CREATED_ALIBABA_HOST, firewall={"securityGroupId": None})
    assert [token for token, _ in mocks.calls if token == ALIBABA_GROUP_RULES] == []


def test_the_tencent_rule_set_is_authoritative_so_its_group_is_not_read():
    mocks = CloudMocks()
    evaluate_with(mocks, "tencent")
    assert mocks.calls == []


def hand_made(**fields: Any) -> GroupRule:
    rule = GroupRule(
        direction="ingress",
        ip_protocol="tcp",
        port_range="22/22",
        cidr=WORLD,
        peer_group="",
        policy="accept",
        priority=100,
        nic_type="intranet",
        description="",
    )
    return GroupRule(**{**rule, **fields})


SENSITIVE = {(22, "tcp"): "SSH", (3306, "tcp"): "production-mysql", (6379, "tcp"): "production-redis"}


@pytest.mark.parametrize(
    ("rule", "reasons"),
    [
        (
            hand_made(port_range="1/65535"),
            ("opens SSH 22/tcp, production-mysql 3306/tcp, production-redis 6379/tcp to the world",),
        ),
        (
            hand_made(ip_protocol="all", port_range="-1/-1"),
            ("opens SSH 22/tcp, production-mysql 3306/tcp, production-redis 6379/tcp to the world",),
        ),
        (
            hand_made(port_range="3000/4000", priority=99),
            ("beats the plan's deny-all at priority 100", "opens production-mysql 3306/tcp to the world"),
        ),
        (
            hand_made(direction="egress", port_range="3306/3306", priority=5),
            ("beats the plan's deny-all at priority 100",),
        ),
    ],
)
def test_a_port_range_covering_a_sensitive_port_counts(rule, reasons):
    (finding,) = defeating_rules([rule], [], SENSITIVE)
    assert finding.reasons == reasons


@pytest.mark.parametrize(
    "rule",
    [
        hand_made(ip_protocol="udp"),  # SSH is tcp
        hand_made(cidr="198.51.100.0/24"),  # not the world, and loses to the deny-all
        hand_made(port_range="8000/8100"),  # no sensitive port
        hand_made(policy="drop", priority=1),
        hand_made(priority=1, description="platform: SSH from a plan since changed"),  # ours, stale
    ],
)
def test_rules_that_cannot_defeat_the_plan_are_not_findings(rule):
    assert defeating_rules([rule], [], SENSITIVE) == []


def test_hand_made_rules_that_together_cover_more_than_a_slash_8_are_the_world():
    two_slash_8s = [hand_made(cidr="10.0.0.0/8"), hand_made(cidr="11.0.0.0/8", port_range="1/65535")]
    findings = defeating_rules(two_slash_8s, [], SENSITIVE)
    assert [f.reasons for f in findings] == [
        ("with 1 other hand-made rule opens SSH 22/tcp to more than a /8 (the world)",),
        ("with 1 other hand-made rule opens SSH 22/tcp to more than a /8 (the world)",),
    ]
    alone = [hand_made(cidr="0.0.0.0/1"), hand_made(cidr="10.0.0.0/7")]  # each wider than a /8 on its own
    assert [f.reasons for f in defeating_rules(alone, [], SENSITIVE)] == [("opens SSH 22/tcp to the world",)] * 2
    two_slash_9s = [hand_made(cidr="10.0.0.0/9"), hand_made(cidr="10.128.0.0/9")]  # exactly a /8
    assert defeating_rules(two_slash_9s, [], SENSITIVE) == []


def test_a_rule_from_a_source_group_is_revoked_by_that_group():
    rule = hand_made(cidr="", peer_group="sg-wz9other", priority=1)
    assert revoke_command(rule, GROUP, REGION) == (
        f"{REVOKE} --IpProtocol tcp --PortRange 22/22 --SourceGroupId sg-wz9other --Policy accept --Priority 1 "
        "--NicType intranet"
    )


# --- The Tencent egress follows what the Alibaba stack runs (its peerIngress output) ---


def _peer_egress(run) -> set[int]:
    (rule_set,) = run.of_type(TENCENT_RULE_SET)
    return {int(rule["port"]) for rule in inputs(rule_set)["egresses"] if rule["cidrBlock"] == "47.115.168.107/32"}


def test_the_alibaba_stack_exports_what_its_firewall_opens_to_the_peer():
    run = evaluate("alibaba")
    exported = unwrap(run.outputs["peerIngress"])
    opened = {r["port"] for r in firewall_rules(run) if r["direction"] == "ingress" and r["cidr"] == TENCENT}
    assert {entry["port"] for entry in exported} == opened
    assert {"port": 3306, "protocol": "tcp", "workload": "production-mysql"} in exported
    # The HTTP port of each engine without an exporter carries the path its health is asked on.
    assert {(e["workload"], e["port"], e["health"]) for e in exported if "health" in e} == {
        ("production-neo4j", 7474, "/"),
        ("production-elasticsearch", 9200, "/"),
        ("production-weaviate", 8080, "/v1/.well-known/ready"),
    }


def test_with_a_database_stack_the_tencent_egress_follows_its_output_not_the_default_plan(tmp_path: Path):
    """A database moved to another port on Alibaba: the Tencent host may reach the new port and no
    longer the old one (the default plan would keep 3306 and miss 3307)."""
    root = stack_folder(tmp_path, "tencent", existing=without_replicas())
    moved = {"name": "production-mysql", "ports": [{"port": 3307, "expose": "peer", "purpose": "MySQL"}]}
    alibaba = yaml.safe_load((root / "Pulumi.alibaba.yaml").read_text())
    alibaba["config"]["platform:databases"] = [moved]
    (root / "Pulumi.alibaba.yaml").write_text(yaml.safe_dump(alibaba, sort_keys=False))
    run = evaluate("tencent", root=root)
    assert 3307 in _peer_egress(run)
    assert 3306 not in _peer_egress(run)
    assert not [w for w in run.warnings if "default plan" in w]
    result = preflight_cli("tencent", "--format", "json", root=root)
    assert result.returncode == 0, result.stderr
    assert [v for v in json.loads(result.stdout)["violations"] if v["level"] == "mandatory"] == []


def test_a_database_stack_without_the_output_yet_falls_back_to_the_default_plan_and_says_so():
    references = {"organization/platform/alibaba": StackOutputs(outputs={"publicIp": "47.115.168.107"})}
    config = config_for("tencent", existing=without_replicas())
    run = run_stack(config.project, "tencent", config.config, set(config.secret_keys), references=references)
    plan = load_plan(config.config, config.secret_keys)
    assert _peer_egress(run) == {*plan.peer_database_ports, *plan.peer_monitoring_ports}
    (warning,) = [w for w in run.warnings if "peerIngress" in w]
    assert warning.startswith("platform:databaseStack 'organization/platform/alibaba' has no output 'peerIngress' yet")
    (tunnel,) = [w for w in run.warnings if "metricsTunnel" in w]
    assert tunnel.startswith("platform:databaseStack 'organization/platform/alibaba' has no output 'metricsTunnel' (")
    assert tunnel.endswith("the Alibaba host's exporters are not scraped until it has")


def test_without_a_database_stack_the_preview_says_the_egress_follows_the_default_plan():
    run = evaluate("tencent", databaseStack=None, existing=without_replicas())
    assert any(
        w.startswith("platform:firewall: the egress to the peer follows the Alibaba default plan") for w in run.warnings
    )


def _peer_scrapes(run) -> dict[str, list[tuple[str, str]]]:
    """Job -> (target, instance label) of the peer's targets in the Tencent Prometheus's configuration."""
    scraped = yaml.safe_load(step_parameters(run, "tencent-svc-monitoring")["FILE_PROMETHEUS_YML"])
    return {
        job["job_name"]: [
            (target, c["labels"]["instance"])
            for c in job["static_configs"]
            if c["labels"].get("host") == "alibaba"
            for target in c["targets"]
        ]
        for job in scraped["scrape_configs"]
        if "metrics_path" not in job
    }


def test_the_peer_s_exporters_are_scraped_through_the_tunnel_s_forwards_on_loopback(tencent):
    """Each Alibaba exporter is a forward on the Tencent loopback (its port plus 10000), labelled
    with its address on the Alibaba host, so dashboards and alerts read as before."""
    assert _peer_scrapes(tencent) == {
        "node-exporter": [("127.0.0.1:19100", "47.115.168.107:9100")],
        "mysqld-exporter": [("127.0.0.1:19104", "47.115.168.107:9104")],
        "redis-exporter": [("127.0.0.1:19121", "47.115.168.107:9121")],
        "postgres-exporter": [("127.0.0.1:19187", "47.115.168.107:9187")],
    }
    assert not {9100, 9104, 9121, 9187} & _peer_egress(tencent)


def test_an_exporter_moved_on_alibaba_is_forwarded_where_it_went(tmp_path: Path):
    """One definition per coupling: the Alibaba plan's exporter port is what its login permits,
    what its stack exports and where the Tencent tunnel forwards; no firewall port follows it."""
    root = stack_folder(tmp_path, "tencent")
    alibaba = yaml.safe_load((root / "Pulumi.alibaba.yaml").read_text())
    alibaba["config"]["platform:monitoring"] = {"ports": {"node-exporter": 9250}}
    (root / "Pulumi.alibaba.yaml").write_text(yaml.safe_dump(alibaba, sort_keys=False))
    run = evaluate("tencent", root=root)
    assert _peer_scrapes(run)["node-exporter"] == [("127.0.0.1:19100", "47.115.168.107:9250")]
    unit = step_parameters(run, "tencent-svc-monitoring")["UNIT_METRICS_TUNNEL"]
    assert "-L 127.0.0.1:19100:127.0.0.1:9250" in unit
    assert 9250 not in _peer_egress(run)
    login = step_parameters(evaluate("alibaba", root=root), "alibaba-db-metrics-login")["AUTHORIZED"]
    assert 'permitopen="127.0.0.1:9250"' in login
    assert 'permitopen="127.0.0.1:9100"' not in login


def test_without_a_database_stack_the_peer_s_exporters_are_not_scraped_and_the_preview_says_so():
    """The tunnel's key is an output of the Alibaba stack: without the reference there is no way in."""
    run = evaluate("tencent", databaseStack=None, existing=without_replicas())
    assert _peer_scrapes(run) == {"node-exporter": []}
    assert "UNIT_METRICS_TUNNEL" not in step_parameters(run, "tencent-svc-monitoring")
    assert 22 not in _peer_egress(run)
    assert any(w.startswith("monitoring: the Alibaba host's exporters are not scraped") for w in run.warnings)


def test_with_prometheus_moved_off_the_tencent_host_its_exporters_are_scraped_by_nobody_and_the_preview_says_so():
    run = evaluate("tencent", monitoring={"prometheus": False})
    assert "UNIT_METRICS_TUNNEL" not in step_parameters(run, "tencent-svc-monitoring")
    assert any(w.startswith("monitoring: this host's exporters are scraped by nobody") for w in run.warnings)
    assert not any("scraped by nobody" in w for w in evaluate("tencent").warnings)
