"""Databases: one Quadlet container per database, its limit and engine settings from the plan."""

from __future__ import annotations

import json
import re

import pytest
from pulumi import RunError

from components.engines import quadlet_unit
from plan import load_plan
from preflight.engine import run_stack
from tests.stacks import cache_database, commands, config_for, evaluate

MEMORY = {
    "production-mysql": 224,
    "production-postgres": 128,
    "production-redis": 64,
    "production-neo4j": 544,
    "production-elasticsearch": 352,
    "production-weaviate": 192,
}


@pytest.fixture(scope="module")
def run():
    return evaluate("alibaba")


@pytest.fixture(scope="module")
def plan():
    config = config_for("alibaba")
    return load_plan(config.config, config.secret_keys)


def test_one_container_command_per_database_after_the_bootstrap(run):
    steps = commands(run)
    assert set(steps) == {"alibaba-db-bootstrap", *(f"alibaba-db-{name}" for name in MEMORY)}
    by_name = {r.name: r for r in run.of_type("command:remote:Command")}
    bootstrap_urn = by_name["alibaba-db-bootstrap"].urn
    for name in MEMORY:
        assert bootstrap_urn in by_name[f"alibaba-db-{name}"].dependencies


@pytest.mark.parametrize(("name", "memory"), MEMORY.items())
def test_each_container_is_limited_to_its_planned_memory(run, name, memory):
    create = commands(run)[f"alibaba-db-{name}"]["create"]
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
        ("production-mysql", ["--innodb-buffer-pool-size=56M", "--performance-schema=OFF"]),
        ("production-postgres", ["shared_buffers=32MB", "POSTGRES_USER=future_user"]),
        ("production-redis", ["--maxmemory 48mb", "--maxmemory-policy allkeys-lru"]),
        ("production-weaviate", ["LIMIT_RESOURCES=true", "GOMEMLIMIT=153MiB"]),
    ],
)
def test_engine_settings_fit_the_limit(plan, name, settings):
    (db,) = [d for d in plan.databases if d.name == name]
    unit = quadlet_unit(db, plan.paths)
    for setting in settings:
        assert setting in unit


def test_each_unit_keeps_data_on_a_persistent_volume_and_restarts_on_boot(plan):
    for db in plan.databases:
        unit = quadlet_unit(db, plan.paths)
        assert re.search(rf"^Volume=/var/lib/platform/{db.name}:/\S+:Z,U$", unit, re.MULTILINE)
        assert "Restart=always" in unit
        assert "WantedBy=multi-user.target" in unit
        assert "HealthCmd=" in unit


def test_plan_ports_map_to_the_engines_own_ports_inside_the_container():
    moved = evaluate("alibaba", databases=[cache_database(ports=[{"port": 6381, "expose": "peer"}])])
    assert "PublishPort=6381:6379/tcp" in commands(moved)["alibaba-db-cache"]["create"]


def test_an_environment_value_with_spaces_is_quoted_for_quadlet(plan):
    (elasticsearch,) = [d for d in plan.databases if d.kind == "elasticsearch"]
    assert 'Environment="ES_JAVA_OPTS=-Xms128m -Xmx128m"' in quadlet_unit(elasticsearch, plan.paths).splitlines()


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
def test_each_engine_gets_its_password_as_a_podman_secret_never_an_environment_file(plan, name, secret):
    (db,) = [d for d in plan.databases if d.name == name]
    unit = quadlet_unit(db, plan.paths).splitlines()
    assert [line for line in unit if line.startswith("Secret=")] == [secret]
    assert not [line for line in unit if line.startswith("EnvironmentFile=")]


def test_passwords_travel_on_stdin_as_secrets_never_in_the_command(run):
    for resource in run.of_type("command:remote:Command"):
        if resource.name == "alibaba-db-bootstrap":
            continue
        raw = resource.inputs
        assert raw["stdin"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
        assert "PLACEHOLDER-SECRET" in raw["stdin"]["value"]
        assert "PLACEHOLDER-SECRET" not in raw["create"] + raw["update"]
        assert raw["logging"] == "none"
        assert {"stdout", "stderr"} <= set(resource.additional_secret_outputs)


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
