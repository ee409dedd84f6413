"""The plan: the seeds' defaults, and one clear line for every kind of bad config."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from plan import BACKUP_RUNNER_MEMORY_MIB, REPLICATION_USER, PlanError, load_plan
from plan_values import Calendar
from tests.stacks import CREATED_ALIBABA_HOST, config_for, plan_of, stack_values

SEEDS_DATABASE_PORTS = {
    "production-mysql": [3306],
    "production-postgres": [5432],
    "production-redis": [6379],
    "production-neo4j": [7474, 7687],
    "production-elasticsearch": [9200, 9300],
    "production-weaviate": [8080],
}


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


def _replica(**fields: Any) -> dict[str, Any]:
    base = {
        "name": "mysql",
        "ports": [{"port": 3306, "expose": "peer"}],
        "memoryMib": 384,
        "database": True,
        "replicaOf": {"source": "production-mysql", "kind": "mysql"},
    }
    return {**base, **fields}


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
        ("platform:databases[db].kind", "'oracle'", "'mysql'"),
    ),
    (
        "port-zero",
        "alibaba",
        {"databases": _database(ports=[{"port": 0}])},
        ("platform:databases[db].ports[0].port", "greater than or equal to 1", "got 0"),
    ),
    (
        "port-too-high",
        "tencent",
        {"services": [_service(port=70000)], "batches": [["api"]]},
        ("platform:services[api].port", "less than or equal to 65535", "70000"),
    ),
    (
        "zero-memory",
        "alibaba",
        {"databases": _database(memoryMib=0)},
        ("platform:databases[db].memoryMib", "greater than 0", "got 0"),
    ),
    (
        "negative-memory",
        "tencent",
        {"existing": [{"name": "nginx", "memoryMib": -64}]},
        ("platform:existing[nginx].memoryMib", "greater than 0", "-64"),
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
        ("platform:databases[graph]", "neo4j listens on 2 port(s)", "7474, 7687"),
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
        ("platform:databases[graph]", "memoryMib 300", "at least 534", "OOM"),
    ),
    (
        "jvm-without-heap",
        "alibaba",
        {"databases": _database(kind="elasticsearch", name="search", ports=[{"port": 9200}, {"port": 9300}])},
        ("platform:databases[search]", "jvm.heapMib"),
    ),
    (
        "start-command-with-shell",
        "tencent",
        {"services": [_service(startCommand="./api; rm -rf /")], "batches": [["api"]]},
        ("platform:services[api].startCommand", "./api; rm -rf /"),
    ),
    (
        "artifact-over-http",
        "tencent",
        {"services": [_service(release={"version": "1", "artifact": "http://x/api.tgz"})], "batches": [["api"]]},
        ("platform:services[api].release.artifact", "http://x/api.tgz"),
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
        ("platform:databases[db].image", "'mysql'"),
    ),
    (
        "purge-on-an-active-database",
        "alibaba",
        {"databases": _database(purge=True)},
        ("platform:databases[db]", "purge", "platform:retired.databases"),
    ),
    (
        "retired-and-active-at-once",
        "alibaba",
        {
            "databases": [{"name": "production-mysql", "memoryMib": 256}],
            "retired": {"databases": [{"name": "production-mysql"}]},
        },
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
        ("platform:databases[retire-cache]", "'retire-cache'", "'retire-'"),
    ),
    (
        "workload-named-like-a-backup-command",
        "alibaba",
        {"databases": _database(name="backup-cache")},
        ("platform:databases[backup-cache]", "'backup-cache'", "'backup-'"),
    ),
    (
        "workload-named-like-the-tls-command",
        "tencent",
        {"existing": [{"name": "tls", "memoryMib": 16}]},
        ("platform:existing[tls]", "'tls'"),
    ),
    (
        "schedule-not-a-calendar-expression",
        "alibaba",
        {"backups": {"schedule": "every night"}},
        ("platform:backups.schedule", "'every night'", "not a systemd calendar expression", "*-*-* 03:00:00"),
    ),
    (
        "schedule-with-shell",
        "alibaba",
        {"backups": {"drillSchedule": "daily; reboot"}},
        ("platform:backups.drillSchedule", "';'", "daily"),
    ),
    (
        "retention-of-zero",
        "alibaba",
        {"backups": {"keepDaily": 0}},
        ("platform:backups.keepDaily", "(got 0)", "at least 1"),
    ),
    (
        "replica-of-neo4j",
        "tencent",
        {"existing": [_replica(replicaOf={"source": "production-neo4j", "kind": "neo4j"})]},
        ("platform:existing[mysql].replicaOf.kind", "'neo4j'", "off-host backup", "mysql, postgres and redis"),
    ),
    (
        "replica-of-not-the-peer",
        "tencent",
        {"existing": [_replica(replicaOf={"source": "production-mysql", "kind": "mysql", "host": "198.51.100.7"})]},
        ("platform:existing[mysql].replicaOf.host", "'198.51.100.7'", "47.115.168.107"),
    ),
    (
        "replica-patch-without-source",
        "tencent",
        {"existing": [{"name": "redis", "replicaOf": {"discard": True}}]},
        ("platform:existing[redis].replicaOf.source", "required but not set", "its source and kind with any other"),
    ),
    (
        "replica-without-source-stack",
        "tencent",
        {"existing": [_replica()], "replication": None, "databaseStack": None},
        ("platform:databaseStack", "required", "replicaOf"),
    ),
    (
        "replication-source-cannot-replicate",
        "alibaba",
        {"replication": {"sources": ["production-elasticsearch"]}},
        ("platform:replication.sources[0]", "production-elasticsearch", "off-host backup"),
    ),
    (
        "replication-source-unknown",
        "alibaba",
        {"replication": {"sources": ["production-mongo"]}},
        ("platform:replication.sources[0]", "'production-mongo'", "production-mysql"),
    ),
    (
        "backups-inside-data",
        "alibaba",
        {"paths": {"backups": "/var/lib/platform/backups"}},
        ("platform:paths.backups", "/var/lib/platform/backups", "paths.data"),
    ),
    (
        "backup-none-without-reason",
        "alibaba",
        {"databases": _database(backup={"none": ""})},
        ("platform:databases[db].backup.none",),
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


# --- Backups and replication ---------------------------------------------------------------------

# Calendar expressions the plan accepts: systemd must accept each too.
CALENDAR_ACCEPTED = (
    "minutely",
    "hourly",
    "daily",
    "Daily",
    "weekly",
    "monthly",
    "yearly",
    "quarterly",
    "semiannually",
    "annually",
    "Mon..Fri",
    "mon..fri 03:00",
    "Sat,Sun 10:00",
    "Mon..Wed,Fri *-*-* 01:00",
    "Monday *:00",
    "*-*-* 03:00:00",
    "*-*-1,15 02:30",
    "*:0/15",
    "*:*:0/15",
    "Sun *-*-* 05:00:00",
    "03:00",
    "3:0",
    "*-*-*",
    "*-1,15",
    "*-01,07-01 00:00",
    "*-02~03",
    "*-*~1 23:30",
    "*-*-1..7",
    "*-*-1..7/2",
    "*-1/11-1",
    "*-*-* 00..06:00",
    "*-*-* 0,12:00",
    "*-*-* 0/23:00",
    "*:00/59",
    "Mon  03:00",
)
# Not calendar expressions at all: systemd refuses each too.
CALENDAR_INVALID = (
    "",
    " daily",
    "daily ",
    "now",
    "every night",
    "12",
    ":00",
    "*:",
    "Mo",
    "Fri..Mon",
    "Mon/2",
    "Mon..",
    "Mon,,Tue",
    "Mon, Tue",
    "Mon Tue",
    "*-*-* 03:00 Mon",
    "*/2:00",
    "*-*-* */15:00",
    "*-*-*/2",
    "*-*-0",
    "*-*-32",
    "*-13-01",
    "*-*-5..3",
    "*-*-1/0",
    "*-*-2/30",
    "*-*~29",
    "*-*-1~2",
    "*-*-*-* 03:00",
    "*-*-* 24:00",
    "*-*-* 03:00:60",
    "*:60",
    "*:0/0",
    "*:00/60",
    "*-*-* 03",
    "*-*-* 3:00:00:00",
    "*-*-* *,3:00",
    "* 03:00",
)
# Valid for systemd, refused here on purpose (Calendar's docstring says why).
CALENDAR_STRICTER = (
    "2024-01-01",  # a fixed year: the backups stop after it
    "24-01-01",  # a two-digit year
    "*-*-* 03:00:00.5",  # fractional seconds
    "*-*-* 003:00",  # three digits for an hour
    "*-*~7/1",  # a repetition counted from the month's end
    "*:0..59/70",  # a repetition whose next occurrence does not exist
)
# Valid for systemd, and never elapse ("Next elapse: never"): a backup that never runs.
CALENDAR_NEVER = ("*-02-30 03:00:00", "*-04-31", "*-02-30,31 01:00", "Mon *-11-31 03:00")
# A time zone after the time, as systemd takes it.
CALENDAR_ZONED = ("*-*-* 03:00:00 UTC", "*-*-* 03:00 Asia/Shanghai", "Sun *-*-* 05:00:00 America/New_York")
CALENDAR_HOSTILE = ("daily; reboot", "*-*-* 03:00\nExecStart=/bin/sh", "$(reboot)", "*-*-* 03:00:00 #", "@1")


def _calendar_refused(value: str) -> str:
    with pytest.raises(ValidationError) as raised:
        TypeAdapter(Calendar).validate_python(value)
    return raised.value.errors()[0]["msg"]


@pytest.mark.parametrize("value", CALENDAR_ACCEPTED + CALENDAR_ZONED)
def test_calendar_accepts_systemd_expressions(value):
    assert TypeAdapter(Calendar).validate_python(value) == value


@pytest.mark.parametrize("value", CALENDAR_INVALID + CALENDAR_STRICTER + CALENDAR_HOSTILE + CALENDAR_NEVER)
def test_calendar_refuses_with_an_example(value):
    message = _calendar_refused(value)
    assert "\n" not in message
    assert "*-*-* 03:00:00" in message


def _systemd_analyze(value: str) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None
    return subprocess.run([analyze, "calendar", value], capture_output=True, text=True, timeout=30, check=False)


def _systemd_accepts(value: str) -> bool:
    return _systemd_analyze(value).returncode == 0


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed: the Calendar examples are not compared with systemd's own parser",
)
def test_calendar_examples_agree_with_systemd_analyze():
    """What the plan accepts systemd accepts; what it refuses as invalid systemd refuses; the
    deliberate refusals are ones systemd would take (so each is a choice, not a parser gap)."""
    assert [v for v in CALENDAR_ACCEPTED + CALENDAR_ZONED if not _systemd_accepts(v)] == []
    assert [v for v in CALENDAR_NEVER if "Next elapse: never" not in _systemd_analyze(v).stdout] == []
    assert [v for v in CALENDAR_INVALID if _systemd_accepts(v)] == []
    assert [v for v in CALENDAR_STRICTER if not _systemd_accepts(v)] == []
    assert [v for v in CALENDAR_HOSTILE if v.isprintable() and _systemd_accepts(v)] == ["@1"]


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("schedule", "minutely", "fires up to 60 times an hour"),
        ("schedule", "*:0/15", "fires up to 4 times an hour"),
        ("schedule", "*-*-* *:*:00", "fires up to 60 times an hour"),
        ("drillSchedule", "hourly", "fires up to 24 times a day"),
        ("drillSchedule", "*-*-* *:*:0/10", "times a day"),
        ("drillSchedule", "Sun *-*-* 05,17:00", "fires up to 2 times a day"),
    ],
)
def test_a_schedule_that_fires_too_often_is_refused(key: str, value: str, fragment: str):
    with pytest.raises(PlanError) as raised:
        plan_of("alibaba", backups={key: value})
    message = str(raised.value)
    assert message.startswith(f"platform:backups.{key}: "), message
    assert fragment in message


@pytest.mark.parametrize(
    ("schedule", "drill"), [("hourly", "daily"), ("*-*-* *:30:00", "Sun *-*-* 05:00 Asia/Shanghai")]
)
def test_the_most_frequent_schedules_each_job_allows_pass(schedule: str, drill: str):
    plan = plan_of("alibaba", backups={"schedule": schedule, "drillSchedule": drill})
    assert (plan.backups.schedule, plan.backups.drill_schedule) == (schedule, drill)


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({"backups": {"keepDialy": 3}}, "platform:backups.keepDialy: unknown field; did you mean keepDaily?"),
        ({"host": {"memoryMb": 3}}, "platform:host.memoryMb: unknown field; did you mean memoryMib?"),
        (
            {"backups": {"offHost": {"bukcet": "b"}}},
            "platform:backups.offHost.bukcet: unknown field; did you mean bucket?",
        ),
        (
            {"monitoring": {"alerting": {"memoryAvailablePercnt": 5}}},
            "platform:monitoring.alerting.memoryAvailablePercnt: unknown field; did you mean memoryAvailablePercent?",
        ),
        ({"paths": {"dat": "/var/lib/platform"}}, "platform:paths.dat: unknown field; did you mean data?"),
    ],
)
def test_a_nested_typo_gets_the_field_it_was_meant_to_be(changes: dict[str, Any], line: str):
    with pytest.raises(PlanError) as raised:
        plan_of("alibaba", **changes)
    assert str(raised.value) == f"{line} (README.md lists each field)"


def test_a_port_clash_names_both_workloads_and_where_each_is():
    """The stack file moved production-mysql onto PostgreSQL's port: the line names both, so the one
    that moved is not left out."""
    with pytest.raises(PlanError) as raised:
        plan_of("alibaba", databases=[{"name": "production-mysql", "ports": [{"port": 5432, "expose": "peer"}]}],
                exact=False)  # fmt: skip
    message = str(raised.value)
    assert "production-mysql (platform:databases[production-mysql])" in message
    assert message.startswith("platform:databases[production-postgres]: port 5432/tcp of production-postgres")


def test_a_proxy_in_the_stack_without_services_says_where_it_belongs():
    proxy = {"serverName": "api.example.com", "certificate": "/etc/ssl/a.pem", "certificateKey": "/etc/ssl/a.key"}
    with pytest.raises(PlanError) as raised:
        plan_of("alibaba", proxy=proxy)
    assert str(raised.value).startswith("platform:proxy: this alibaba stack runs no services for a TLS proxy")
    assert "the tencent stack's" in str(raised.value)


@pytest.mark.parametrize(
    ("stack", "changes", "line"),
    [
        (
            "tencent",
            {"databases": [{"name": "production-mysql", "memoryMib": 256}]},
            "platform:databases[production-mysql].kind: required but not set; production-mysql is a default of "
            "the alibaba stack (Pulumi.alibaba.yaml), not of this one",
        ),
        (
            "alibaba",
            {"services": [{"name": "zervigo", "memoryMib": 100}]},
            "platform:services[zervigo].port: required but not set; zervigo is a default of the tencent stack "
            "(Pulumi.tencent.yaml), not of this one",
        ),
    ],
)
def test_a_patch_of_the_other_stacks_default_names_that_stack(stack: str, changes: dict[str, Any], line: str):
    with pytest.raises(PlanError) as raised:
        plan_of(stack, **changes)
    assert str(raised.value) == line


def test_an_omit_of_the_other_stacks_default_names_that_stack():
    with pytest.raises(PlanError) as raised:
        plan_of("tencent", omit={"databases": ["production-neo4j"]})
    assert str(raised.value).endswith(
        "production-neo4j is a default of the alibaba stack (Pulumi.alibaba.yaml), not of this one"
    )


def test_a_new_workload_missing_a_field_gets_no_stack_hint():
    with pytest.raises(PlanError) as raised:
        plan_of("tencent", databases=[{"name": "orders", "memoryMib": 256}])
    assert str(raised.value) == "platform:databases[orders].kind: required but not set"


def test_a_field_unlike_any_gets_no_guess():
    with pytest.raises(PlanError) as raised:
        plan_of("alibaba", host={"password": "PLANTED-x"})
    assert str(raised.value) == "platform:host.password: unknown field; check the spelling against README.md"


def test_plan_defaults_for_backups_and_replication():
    plan = plan_of("alibaba")
    assert plan.backups.schedule == "*-*-* 03:00:00"
    assert plan.backups.off_host is not None
    assert (plan.backups.off_host.bucket, plan.backups.off_host.prefix) == (None, "platform/")
    assert [db.name for db in plan.backed_up] == list(SEEDS_DATABASE_PORTS)
    assert [db.name for db in plan.replication_sources] == [
        "production-mysql",
        "production-postgres",
        "production-redis",
    ]
    assert plan.replicas == ()
    assert REPLICATION_USER == "replication"


def test_backup_none_is_left_out_and_said_in_the_props():
    databases = [*plan_of("alibaba").props()["workloads"]]
    assert {w["name"]: w["backup"] for w in databases}["production-mysql"] == {"mode": "scheduled"}
    plan = plan_of("alibaba", databases=_database(backup={"none": "a cache, rebuilt from mysql"}))
    assert plan.backed_up == ()
    assert plan.transient == ()
    assert plan.props()["workloads"][0]["backup"] == {"mode": "none", "reason": "a cache, rebuilt from mysql"}


def test_the_backup_jobs_count_in_the_memory_budget():
    plan = plan_of("alibaba", backups={"drillMemoryMib": 96})
    jobs = next(w for w in plan.props()["workloads"] if w["name"] == "backup-jobs")
    assert jobs == {
        "name": "backup-jobs",
        "role": "transient:backup-jobs",
        "memoryMib": BACKUP_RUNNER_MEMORY_MIB + 96,
        "family": None,
        "ports": [],
        "backup": None,
    }
    workloads = sum(w.memory_mib for w in (*plan.databases, *plan.monitoring_workloads))
    assert plan.used_mib == workloads + BACKUP_RUNNER_MEMORY_MIB + 96


def test_replication_sources_can_be_narrowed():
    plan = plan_of("alibaba", replication={"sources": ["production-redis"]})
    assert plan.props()["replication"] == {
        "sources": [{"name": "production-redis", "kind": "redis", "port": 6379, "peerCidr": "101.33.251.158/32"}],
        "replicas": [],
    }


def test_a_replica_names_its_source_and_the_peer():
    plan = plan_of(
        "tencent",
        existing=[
            _replica(
                name="postgres",
                ports=[{"port": 5432, "expose": "peer"}],
                replicaOf={"source": "production-postgres", "kind": "postgres"},
            )
        ],
        databaseStack=None,
        replication={"sourceStack": "org/platform/alibaba"},
        proxy=None,  # no nginx among these existing workloads
    )
    (replica,) = plan.replicas
    assert replica.replica_of is not None
    assert replica.replica_of.replicated_database == "future_user"
    assert plan.props()["replication"]["replicas"] == [
        {
            "name": "postgres",
            "kind": "postgres",
            "source": "production-postgres",
            "sourceAddress": "47.115.168.107",
            "sourcePort": 5432,
            "port": 5432,
        }
    ]


# --- A stack's entries patch the defaults by name ---------------------------------------


def test_an_entry_replaces_only_the_fields_it_lists_of_the_default_of_its_name():
    plan = plan_of("alibaba", exact=False, databases=[{"name": "production-neo4j", "memory_mib": 600}])
    neo4j = next(db for db in plan.databases if db.name == "production-neo4j")
    assert (neo4j.memory_mib, neo4j.image, [p.port for p in neo4j.ports]) == (
        600,
        "docker.io/library/neo4j:5-community",
        [7474, 7687],
    )
    assert len(plan.databases) == 6


def test_a_default_leaves_only_when_omit_or_retired_names_it():
    from tests.stacks import default_services

    plan = plan_of(
        "tencent",
        exact=False,
        services=default_services(without=("ai-service-2", "looma-crm")),  # the committed releases of the others
        omit={"existing": ["statistics"], "services": ["ai-service-2"]},
        retired={"services": [{"name": "looma-crm"}]},
    )
    assert [w.name for w in plan.existing] == ["mysql", "postgres", "redis", "nginx", "nodejs", "template"]
    assert [s.name for s in plan.services] == ["zervigo", "shared-service", "ai-service-1"]
    assert plan.batches == (("zervigo", "shared-service"), ("ai-service-1",))


def test_a_service_of_the_stacks_own_is_deployed_last_in_a_batch_of_its_own():
    from tests.stacks import default_services

    extra = {**default_services()[0], "name": "billing", "port": 8701, "family": "looma-crm"}
    plan = plan_of("tencent", exact=False, services=[*default_services(), extra])
    assert plan.batches[-1] == ("billing",)
    assert plan.batches[:-1] == (("zervigo", "shared-service"), ("ai-service-1", "ai-service-2"), ("looma-crm",))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"omit": {"databases": ["production-mongo"]}},
            "platform:omit.databases[0]: 'production-mongo' is not a default database of this cloud's plan",
        ),
        (
            {"databases": [{"name": "production-redis", "memoryMib": 96}], "omit": {"databases": ["production-redis"]}},
            "platform:omit.databases[0]: 'production-redis' is also listed in platform:databases[0]",
        ),
    ],
)
def test_a_default_named_twice_or_a_stranger_omitted_is_one_line(changes, message):
    with pytest.raises(PlanError) as raised:
        plan_of("alibaba", exact=False, **changes)
    assert str(raised.value).startswith(message)


def test_the_effective_plan_reads_back_as_the_same_plan():
    from plan import effective_config

    plan = plan_of("alibaba", exact=False, omit={"databases": ["production-weaviate"]})
    document = effective_config(plan)
    config = {key: json.dumps(value) for key, value in document["config"].items()}
    assert load_plan(config) == plan
