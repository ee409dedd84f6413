"""Databases: one Quadlet container per database, its limit and engine settings from the plan."""

from __future__ import annotations

import json
import re

import pytest
from pulumi import RunError

from components.engines import quadlet_unit
from policies.facts import COMMAND
from preflight.engine import run_stack
from tests.stacks import cache_database, commands, config_for, evaluate

MEMORY = {
    "production-mysql": 192,
    "production-postgres": 128,
    "production-redis": 64,
    "production-neo4j": 544,
    "production-elasticsearch": 312,
    "production-weaviate": 160,
}


SOURCES = ("production-mysql", "production-postgres", "production-redis")


def test_one_container_command_per_database_after_the_bootstrap(alibaba):
    steps = commands(alibaba)
    assert set(steps) == {
        "alibaba-db-bootstrap",
        "alibaba-db-tls",
        "alibaba-db-restore-drill",
        "alibaba-db-metrics-login",
        *(f"alibaba-db-{name}" for name in MEMORY),
        *(f"alibaba-db-backup-{name}" for name in MEMORY),
        *(f"alibaba-db-repl-{name}" for name in SOURCES),
        "alibaba-db-replication-counts",  # the sources' row counts, for the consistency alert
        *(f"alibaba-db-exporter-{name}" for name in SOURCES),  # the MySQL, PostgreSQL and Redis exporters' users
        # Their clients' users (none by default: the step keeps it so, and drops former ones).
        "alibaba-db-clients-production-mysql",
        "alibaba-db-clients-production-postgres",
        "alibaba-db-monitoring",
        "alibaba-db-certificate-check",
        "alibaba-db-heartbeat",
    }
    by_name = {r.name: r for r in alibaba.of_type(COMMAND)}
    bootstrap_urn = by_name["alibaba-db-bootstrap"].urn
    for name in MEMORY:
        assert bootstrap_urn in by_name[f"alibaba-db-{name}"].dependencies


def test_the_sources_tls_files_come_before_their_containers_and_their_users_after(alibaba):
    tls = alibaba.named("alibaba-db-tls")
    assert alibaba.named("alibaba-db-bootstrap").urn in tls.dependencies
    for name in MEMORY:
        container = alibaba.named(f"alibaba-db-{name}")
        assert (tls.urn in container.dependencies) == (name in SOURCES), name
    for name in SOURCES:
        assert alibaba.named(f"alibaba-db-{name}").urn in alibaba.named(f"alibaba-db-repl-{name}").dependencies


def test_a_source_mounts_its_tls_files_and_others_do_not(alibaba):
    for name in MEMORY:
        create = commands(alibaba)[f"alibaba-db-{name}"]["create"]
        mounted = f"Volume=/etc/platform/secrets/tls/{name}:/etc/platform-tls:ro,Z" in create
        assert mounted == (name in SOURCES), name


def test_a_narrower_source_list_drops_the_others_replication():
    run = evaluate("alibaba", replication={"sources": ["production-postgres"]})
    steps = commands(run)
    assert [name for name in steps if "-repl-" in name] == ["alibaba-db-repl-production-postgres"]
    assert "/etc/platform-tls" not in steps["alibaba-db-production-mysql"]["create"]
    assert [r.name for r in run.of_type("random:index/randomPassword:RandomPassword")] == [
        "alibaba-repl-password-production-postgres"
    ]


@pytest.mark.parametrize(("name", "memory"), MEMORY.items())
def test_each_container_is_limited_to_its_planned_memory(alibaba, name, memory):
    create = commands(alibaba)[f"alibaba-db-{name}"]["create"]
    assert f"PodmanArgs=--memory={memory}m --memory-swap={memory}m" in create


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        (
            "production-neo4j",
            [
                "NEO4J_server_memory_heap_max__size=256m",
                "NEO4J_server_memory_pagecache_size=128m",
                "NEO4J_db_memory_transaction_total_max=64m",
            ],
        ),
        ("production-elasticsearch", ["ES_JAVA_OPTS=-Xms128m -Xmx128m", "discovery.type=single-node"]),
        ("production-mysql", ["--innodb-buffer-pool-size=48M", "--performance-schema=OFF"]),
        ("production-postgres", ["shared_buffers=32MB", "POSTGRES_USER=future_user"]),
        ("production-redis", ["--maxmemory 48mb", "--maxmemory-policy allkeys-lru"]),
        ("production-weaviate", ["LIMIT_RESOURCES=true", "GOMEMLIMIT=128MiB"]),
    ],
)
def test_engine_settings_fit_the_limit(alibaba_plan, name, settings):
    (db,) = [d for d in alibaba_plan.databases if d.name == name]
    unit = quadlet_unit(db, alibaba_plan.paths)
    for setting in settings:
        assert setting in unit


def test_each_unit_keeps_data_on_a_persistent_volume_and_restarts_on_boot(alibaba_plan):
    for db in alibaba_plan.databases:
        unit = quadlet_unit(db, alibaba_plan.paths)
        assert re.search(rf"^Volume=/var/lib/platform/{db.name}:/\S+:Z,U$", unit, re.MULTILINE)
        assert "Restart=always" in unit
        assert "WantedBy=multi-user.target" in unit
        assert "HealthCmd=" in unit


def test_plan_ports_map_to_the_engines_own_ports_inside_the_container():
    moved = evaluate("alibaba", databases=[cache_database(ports=[{"port": 6381, "expose": "peer"}])])
    assert "PublishPort=6381:6379/tcp" in commands(moved)["alibaba-db-cache"]["create"]


def test_an_environment_value_with_spaces_is_quoted_for_quadlet(alibaba_plan):
    (elasticsearch,) = [d for d in alibaba_plan.databases if d.kind == "elasticsearch"]
    assert (
        'Environment="ES_JAVA_OPTS=-Xms128m -Xmx128m"' in quadlet_unit(elasticsearch, alibaba_plan.paths).splitlines()
    )


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("production-mysql", "Secret=production-mysql,type=env,target=MYSQL_ROOT_PASSWORD"),
        ("production-postgres", "Secret=production-postgres,type=env,target=POSTGRES_PASSWORD"),
        ("production-redis", "Secret=production-redis,type=mount,target=/usr/local/etc/redis/auth.conf,mode=0444"),
        ("production-neo4j", "Secret=production-neo4j,type=env,target=NEO4J_AUTH"),
        ("production-elasticsearch", "Secret=production-elasticsearch,type=env,target=ELASTIC_PASSWORD"),
        ("production-weaviate", "Secret=production-weaviate,type=env,target=AUTHENTICATION_APIKEY_ALLOWED_KEYS"),
    ],
)
def test_each_engine_gets_its_password_as_a_podman_secret_never_an_environment_file(alibaba_plan, name, secret):
    (db,) = [d for d in alibaba_plan.databases if d.name == name]
    unit = quadlet_unit(db, alibaba_plan.paths).splitlines()
    assert [line for line in unit if line.startswith("Secret=")] == [secret]
    assert not [line for line in unit if line.startswith("EnvironmentFile=")]


def test_passwords_travel_on_stdin_as_secrets_never_in_the_command(alibaba):
    for resource in alibaba.of_type(COMMAND):
        reads_host_files = (
            "alibaba-db-bootstrap",
            "alibaba-db-monitoring",
            "alibaba-db-certificate-check",
            "alibaba-db-metrics-login",  # a public key only
            "alibaba-db-replication-counts",
        )
        if resource.name in reads_host_files or "-backup-" in resource.name or "-drill" in resource.name:
            assert "stdin" not in resource.inputs  # no secret needed: they read the host's own secret files
            continue
        raw = resource.inputs
        if resource.name == "alibaba-db-heartbeat":  # no URL set: nothing on stdin (test_heartbeat: one set)
            assert (raw["stdin"], raw["logging"]) == ("", "none")
            continue
        assert raw["stdin"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
        if "-clients-" in resource.name:  # the default plan's databases serve no clients: no password
            assert raw["stdin"]["value"] == ""
            assert raw["logging"] == "none"
            continue
        if "-exporter-" in resource.name:  # the exporter's password, derived from the database's
            assert re.fullmatch(r"[0-9a-f]{64}", raw["stdin"]["value"])
            assert raw["stdin"]["value"] not in raw["create"] + raw["update"]
            continue
        secret = "PRIVATE KEY" if resource.name == "alibaba-db-tls" else "PLACEHOLDER-SECRET"
        assert secret in raw["stdin"]["value"]
        assert secret not in raw["create"] + raw["update"]
        assert "PLACEHOLDER-SECRET" not in raw["create"] + raw["update"]
        assert raw["logging"] == "none"
        assert {"stdout", "stderr"} <= set(resource.additional_secret_outputs)


def test_replication_passwords_reach_only_their_own_commands(alibaba):
    generated = "PLACEHOLDER-SECRET-generated-alibaba-repl-password-"
    for resource in alibaba.of_type(COMMAND):
        stdin = (resource.inputs.get("stdin") or {}).get("value", "")
        carried = sorted(name for name in SOURCES if f"{generated}{name}" in stdin)
        expected = [resource.name.removeprefix("alibaba-db-repl-")] if "-repl-" in resource.name else []
        # The Redis source's auth file names the replication user by the password's SHA-256 only.
        assert carried == expected, resource.name
    redis = alibaba.named("alibaba-db-production-redis").inputs["stdin"]["value"]
    assert re.search(r"^user replication reset on #[0-9a-f]{64} ", redis, re.MULTILINE)


def test_a_retired_database_gets_a_retire_command_that_keeps_its_data_unless_purge_is_set():
    run = evaluate(
        "alibaba",
        databases=[cache_database()],
        retired={"databases": [{"name": "production-mysql"}, {"name": "production-redis", "purge": True}]},
    )
    retire = commands(run)
    assert set(retire) == {
        "alibaba-db-bootstrap",
        "alibaba-db-cache",
        "alibaba-db-tls",
        "alibaba-db-repl-cache",
        "alibaba-db-replication-counts",
        "alibaba-db-backup-cache",
        "alibaba-db-restore-drill",
        "alibaba-db-metrics-login",
        "alibaba-db-exporter-cache",
        "alibaba-db-monitoring",
        "alibaba-db-certificate-check",
        "alibaba-db-heartbeat",
        "alibaba-db-retire-production-mysql",
        "alibaba-db-retire-production-redis",
    }
    assert "PURGE=0" in retire["alibaba-db-retire-production-mysql"]["create"]
    assert "PURGE=1" in retire["alibaba-db-retire-production-redis"]["create"]
    assert "NAME=production-redis" in retire["alibaba-db-retire-production-redis"]["create"]
    bootstrap = run.named("alibaba-db-bootstrap").urn
    assert run.named("alibaba-db-retire-production-mysql").dependencies == [bootstrap]


def test_a_missing_password_is_one_clear_error_before_any_resource():
    config = config_for("alibaba")
    passwords = {name: "PLACEHOLDER-SECRET" for name in MEMORY if name != "production-redis"}
    with pytest.raises(RunError, match=r"^platform:dbPasswords.production-redis: not set.*--secret --path"):
        run_stack(
            config.project,
            "alibaba",
            {**config.config, "platform:dbPasswords": json.dumps(passwords)},
            set(config.secret_keys),
        )
