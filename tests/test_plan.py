"""The plan: the seeds' defaults, and one clear line for every kind of bad config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from plan import PlanError, load_plan
from tests.stacks import CREATED_ALIBABA_HOST, config_for, stack_values

SEEDS_DATABASE_PORTS = {
    "production-mysql": [3306],
    "production-postgres": [5432],
    "production-redis": [6379],
    "production-neo4j": [7474, 7687],
    "production-elasticsearch": [9200, 9300],
    "production-weaviate": [8080],
}


def plan_of(stack: str, **changes: Any):
    config = config_for(stack, **changes)
    return load_plan(config.config, config.secret_keys)


def test_alibaba_defaults_are_the_six_databases_of_the_seeds():
    plan = plan_of("alibaba")
    assert {db.name: [p.port for p in db.ports] for db in plan.databases} == SEEDS_DATABASE_PORTS
    assert plan.services == ()
    neo4j = next(db for db in plan.databases if db.kind == "neo4j")
    assert neo4j.jvm is not None
    assert (neo4j.jvm.heap_mib, neo4j.jvm.page_cache_mib, neo4j.jvm.transaction_mib) == (256, 128, 64)
    elasticsearch = next(db for db in plan.databases if db.kind == "elasticsearch")
    assert elasticsearch.jvm is not None
    assert elasticsearch.jvm.heap_mib == 128


def test_tencent_defaults_are_five_services_in_three_batches_beside_the_existing_workloads():
    plan = plan_of("tencent")
    assert {s.name: (s.port, s.memory_mib) for s in plan.services} == {
        "zervigo": (8207, 200),
        "shared-service": (8120, 250),
        "ai-service-1": (8100, 600),
        "ai-service-2": (8110, 600),
        "looma-crm": (8700, 250),
    }
    assert plan.batches == (("zervigo", "shared-service"), ("ai-service-1", "ai-service-2"), ("looma-crm",))
    assert sum(s.memory_mib for s in plan.services) == 1900  # the seeds' "new 1.9 GB"
    existing = {w.name: [p.port for p in w.ports] for w in plan.existing}
    assert existing == {
        "mysql": [3306],
        "postgres": [5432],
        "redis": [6379],
        "nginx": [80, 443],
        "nodejs": [],
        "statistics": [],
        "template": [],
    }
    assert 1200 <= sum(w.memory_mib for w in plan.existing) <= 1400  # the seeds' 1.2-1.4 GB


def test_peer_database_ports_default_to_the_other_hosts_plan():
    assert plan_of("tencent").peer_database_ports == (3306, 5432, 6379, 7474, 7687, 8080, 9200, 9300)
    assert plan_of("alibaba").peer_database_ports == (3306, 5432, 6379)


def _host(**fields: Any) -> dict[str, Any]:
    return {**stack_values("alibaba")["host"], **fields}


def _database(**fields: Any) -> list[dict[str, Any]]:
    base = {
        "kind": "mysql",
        "name": "db",
        "image": "docker.io/library/mysql:8.0",
        "ports": [{"port": 3306, "expose": "peer"}],
        "memoryMib": 256,
    }
    return [{**base, **fields}]


def _service(**fields: Any) -> dict[str, Any]:
    base = {
        "name": "api",
        "port": 8207,
        "family": "zervigo-future",
        "memoryMib": 200,
        "release": {"version": "1.0.0", "artifact": "/srv/api.tar.gz"},
        "startCommand": "./api",
    }
    return {**base, **fields}


# (id, stack, changes, fragments the one-line message must contain)
BAD_CONFIG: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    (
        "unknown-top-level-key",
        "alibaba",
        {"databse": []},
        ("platform:databse", "unknown config key", "platform:databases"),
    ),
    ("unknown-field", "alibaba", {"host": _host(memoryMiB=1)}, ("platform:host.memoryMiB", "unknown field")),
    ("unknown-cloud", "alibaba", {"cloud": "aws"}, ("platform:cloud", "'aws'", "'alibaba' or 'tencent'")),
    (
        "unknown-database-kind",
        "alibaba",
        {"databases": _database(kind="oracle")},
        ("platform:databases[0].kind", "'oracle'", "'mysql'"),
    ),
    (
        "port-zero",
        "alibaba",
        {"databases": _database(ports=[{"port": 0}])},
        ("platform:databases[0].ports[0].port", "greater than or equal to 1", "got 0"),
    ),
    (
        "port-too-high",
        "tencent",
        {"services": [_service(port=70000)], "batches": [["api"]]},
        ("platform:services[0].port", "less than or equal to 65535", "70000"),
    ),
    (
        "zero-memory",
        "alibaba",
        {"databases": _database(memoryMib=0)},
        ("platform:databases[0].memoryMib", "greater than 0", "got 0"),
    ),
    (
        "negative-memory",
        "tencent",
        {"existing": [{"name": "nginx", "memoryMib": -64}]},
        ("platform:existing[0].memoryMib", "greater than 0", "-64"),
    ),
    (
        "duplicate-port-on-host",
        "alibaba",
        {"databases": [*_database(), *_database(name="db2", ports=[{"port": 3306}])]},
        ("port 3306/tcp", "db", "db2", "one workload"),
    ),
    (
        "service-port-clashes-with-existing",
        "tencent",
        {"services": [_service(name="shared", port=3306)], "batches": [["shared"]]},
        ("port 3306/tcp", "mysql", "shared"),
    ),
    (
        "host-bits-set",
        "alibaba",
        {"firewall": {"adminCidrs": ["10.0.0.1/8"]}},
        ("platform:firewall.adminCidrs[0]", "no host bits", "10.0.0.1/8"),
    ),
    (
        "invalid-cidr",
        "alibaba",
        {"firewall": {"adminCidrs": ["300.1.1.0/24"]}},
        ("platform:firewall.adminCidrs[0]", "IPv4 CIDR", "300.1.1.0/24"),
    ),
    (
        "ssh-open-to-world",
        "alibaba",
        {"firewall": {"adminCidrs": ["0.0.0.0/0"]}},
        ("platform:firewall.adminCidrs", "never opened to 0.0.0.0/0"),
    ),
    (
        "peer-not-an-address",
        "alibaba",
        {"firewall": {"peerAddress": "101.33.251.0/24"}},
        ("platform:firewall.peerAddress", "single IPv4 address", "101.33.251.0/24"),
    ),
    (
        "batch-names-unknown-service",
        "tencent",
        {"batches": [["zervigo", "shared-service"], ["ai-service-1", "ai-service-2"], ["looma"]]},
        ("platform:batches[2]", "unknown service 'looma'", "looma-crm"),
    ),
    (
        "service-in-no-batch",
        "tencent",
        {"batches": [["zervigo", "shared-service"], ["ai-service-1", "ai-service-2"]]},
        ("platform:batches", "looma-crm"),
    ),
    (
        "service-in-two-batches",
        "tencent",
        {"batches": [["zervigo", "shared-service"], ["ai-service-1", "ai-service-2", "zervigo"], ["looma-crm"]]},
        ("platform:batches[1]", "'zervigo'", "earlier batch"),
    ),
    ("adopt-without-address", "alibaba", {"host": {"publicIp": None}}, ("platform:host.publicIp", "required")),
    (
        "adopt-without-security-group",
        "alibaba",
        {"firewall": {"securityGroupId": None}},
        ("platform:firewall.securityGroupId", "required when host.mode is 'adopt'"),
    ),
    (
        "unknown-host-mode",
        "alibaba",
        {"host": _host(mode="rebuild")},
        ("platform:host", "'rebuild'", "'create' or 'adopt'"),
    ),
    (
        "create-without-zone",
        "alibaba",
        {"host": {**CREATED_ALIBABA_HOST, "zone": None}},
        ("platform:host.zone", "required"),
    ),
    ("bad-host-key", "alibaba", {"host": _host(hostKey="not-a-key")}, ("platform:host.hostKey", "not-a-key")),
    (
        "database-port-count-differs-from-engine",
        "alibaba",
        {"databases": _database(kind="neo4j", name="graph", ports=[{"port": 7687}])},
        ("platform:databases[0]", "neo4j listens on 2 port(s)", "7474, 7687"),
    ),
    (
        "jvm-limit-below-heap",
        "alibaba",
        {
            "databases": _database(
                kind="neo4j",
                name="graph",
                ports=[{"port": 7474}, {"port": 7687}],
                memoryMib=300,
                jvm={"heapMib": 256, "pageCacheMib": 128},
            )
        },
        ("platform:databases[0]", "memoryMib 300", "at least 534", "OOM"),
    ),
    (
        "jvm-without-heap",
        "alibaba",
        {"databases": _database(kind="elasticsearch", name="search", ports=[{"port": 9200}, {"port": 9300}])},
        ("platform:databases[0]", "jvm.heapMib"),
    ),
    (
        "start-command-with-shell",
        "tencent",
        {"services": [_service(startCommand="./api; rm -rf /")], "batches": [["api"]]},
        ("platform:services[0].startCommand", "./api; rm -rf /"),
    ),
    (
        "artifact-over-http",
        "tencent",
        {"services": [_service(release={"version": "1", "artifact": "http://x/api.tgz"})], "batches": [["api"]]},
        ("platform:services[0].release.artifact", "http://x/api.tgz"),
    ),
    (
        "ssh-port-used-by-workload",
        "tencent",
        {"existing": [{"name": "gitea", "ports": [{"port": 22}], "memoryMib": 100}]},
        ("platform:host.sshPort", "22"),
    ),
    (
        "subnet-outside-vpc",
        "alibaba",
        {"network": {"vpcCidr": "10.0.0.0/16", "subnetCidr": "10.1.0.0/24"}},
        ("platform:network", "10.1.0.0/24", "10.0.0.0/16"),
    ),
    (
        "bad-image-reference",
        "alibaba",
        {"databases": _database(image="mysql")},
        ("platform:databases[0].image", "'mysql'"),
    ),
    (
        "purge-on-an-active-database",
        "alibaba",
        {"databases": _database(purge=True)},
        ("platform:databases[0]", "purge", "platform:retired.databases"),
    ),
    (
        "retired-and-active-at-once",
        "alibaba",
        {"retired": {"databases": [{"name": "production-mysql"}]}},
        ("platform:retired.databases[0]", "'production-mysql'", "platform:databases"),
    ),
    (
        "retired-twice",
        "tencent",
        {"retired": {"services": [{"name": "old-api"}, {"name": "old-api"}]}},
        ("platform:retired.services", "listed twice", "old-api"),
    ),
    (
        "workload-named-like-a-retire-command",
        "alibaba",
        {"databases": _database(name="retire-cache")},
        ("platform:databases[0]", "'retire-cache'", "'retire-'"),
    ),
    (
        "retired-unknown-field",
        "alibaba",
        {"retired": {"databases": [{"name": "old", "keepData": True}]}},
        ("platform:retired.databases[0].keepData", "unknown field"),
    ),
]


@pytest.mark.parametrize(("stack", "changes", "fragments"), [c[1:] for c in BAD_CONFIG], ids=[c[0] for c in BAD_CONFIG])
def test_bad_config_gets_one_line_naming_key_value_and_what_is_valid(stack, changes, fragments):
    with pytest.raises(PlanError) as raised:
        plan_of(stack, **changes)
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_bad_config_cases_are_distinct_and_at_least_twenty():
    assert len({c[0] for c in BAD_CONFIG}) == len(BAD_CONFIG) >= 20


@pytest.mark.parametrize("key", ["platform:sshPrivateKey", "platform:dbPasswords", "platform:adminPassword"])
def test_a_secret_in_plain_config_is_refused(key):
    config = config_for("alibaba")
    plain = {**config.config, key: json.dumps({"production-mysql": "hunter2"})}
    with pytest.raises(PlanError, match=rf"{key} is stored in plain text.*--secret"):
        load_plan(plain, config.secret_keys - {key})


def test_a_secret_set_with_secret_is_accepted():
    config = config_for("alibaba")
    assert {"platform:sshPrivateKey", "platform:dbPasswords"} <= config.secret_keys
    assert load_plan(config.config, config.secret_keys).cloud == "alibaba"
