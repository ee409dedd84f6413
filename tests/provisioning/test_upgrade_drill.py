"""The upgrade drill: realistic second `pulumi up`s, run over SSH in the engine's order.

Each scenario deploys a plan from nothing, changes it the way a pull request would, and runs
exactly what ``preflight --from`` derives for that change (``tests/provisioning/drill.py``).
After it: the workloads the change did not touch kept running the whole time (same process or
container, no stop or restart), the changed one runs its new version, data directories are
intact unless a retirement purged them, and another ``up`` of the same plan runs nothing.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import program
from components.engines import data_dir
from plan import Paths
from policies.facts import COMMAND as COMMAND_TYPE
from preflight.diff import steps
from tests.provisioning.drill import Applied, Scenario, nothing, program_on, up
from tests.provisioning.harness import SshHost, free_port
from tests.provisioning.workloads import databases as seed_databases
from tests.provisioning.workloads import service

MYSQL, REDIS = "production-mysql", "production-redis"
COMMAND = "alibaba-db-{}"
BACKUP = "alibaba-db-backup-{}"


@pytest.fixture
def scenario(request: pytest.FixtureRequest):
    timer = Scenario(request.node.name.removeprefix("test_"))
    yield
    timer.done()


def ops(applied: Applied) -> dict[str, str]:
    """The non-``same`` steps of a derived diff: resource name -> op."""
    return {s.name: s.op for s in applied.diff.changes()}


def command_ops(applied: Applied) -> dict[str, str]:
    return {s.name: s.op for s in applied.diff.changes() if s.type == COMMAND_TYPE}


def systemctl_verbs_for(host: SshHost, unit: str, since: int) -> list[str]:
    return [call.split()[0] for call in host.systemctl_calls()[since:] if unit in call.split()[1:]]


def version(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as response:
        return response.read().decode()


def settled(host: SshHost, stack: str, applied: Applied, **plan: Any) -> None:
    """The same plan again is a diff with nothing to run (the second `up` changes nothing)."""
    new = program_on(host, stack, **plan)
    again = steps(new, new)
    assert again.changes() == []
    assert again.hazards == ()
    assert applied.failed() == []


# ---------------------------------------------------------------------------------------
# The database host
# ---------------------------------------------------------------------------------------


class DatabaseHost:
    """Two of the seeds' databases deployed from nothing, each with data in its directory."""

    def __init__(self, host: SshHost) -> None:
        self.host = host
        self.databases = seed_databases(MYSQL, REDIS)
        self.before = program_on(host, "alibaba", databases=self.databases)
        first = up(host, nothing(self.before), self.before)
        assert first.failed() == [], first.runs
        assert {op for op in command_ops(first).values()} == {"create"}
        self.data = {db["name"]: Path(data_dir(db["name"], _paths(host))) for db in self.databases}
        for name, directory in self.data.items():
            (directory / "rows.db").write_text(f"{name} rows\n")
        self.containers = {name: host.container(name) for name in self.data}
        self.calls = len(host.systemctl_calls())

    def change(self, **plan: Any) -> tuple[Applied, dict[str, Any]]:
        plan = {"databases": self.databases, **plan}
        return up(self.host, self.before, program_on(self.host, "alibaba", **plan)), plan

    def untouched(self, name: str) -> None:
        assert self.host.container(name) == self.containers[name], f"{name} was recreated"
        verbs = systemctl_verbs_for(self.host, f"{name}.service", self.calls)
        assert set(verbs) <= {"is-active"}, f"{name}: systemctl {verbs}"
        assert (self.data[name] / "rows.db").read_text() == f"{name} rows\n"

    def with_changed(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        return [{**db, **fields} if db["name"] == name else db for db in self.databases]

    def without(self, name: str) -> list[dict[str, Any]]:
        return [db for db in self.databases if db["name"] != name]


def _paths(host: SshHost) -> Paths:
    return Paths.model_validate(host.paths())


@pytest.fixture
def databases(host: SshHost, scenario: None) -> DatabaseHost:
    return DatabaseHost(host)


def podman_run_of(host: SshHost, name: str) -> list[str]:
    return [call for call in host.podman_calls() if call[:2] == ["run", f"--name={name}"]][-1]


def test_a_databases_memory_is_one_update_and_its_neighbour_never_stops(host: SshHost, databases: DatabaseHost):
    applied, plan = databases.change(databases=databases.with_changed(MYSQL, memoryMib=256))

    assert command_ops(applied) == {COMMAND.format(MYSQL): "update"}
    assert applied.ran() == [(COMMAND.format(MYSQL), "update")]
    assert applied.result(COMMAND.format(MYSQL)).stdout == f"{MYSQL}: updated, healthy\n"
    assert "--memory=256m" in podman_run_of(host, MYSQL)
    assert (databases.data[MYSQL] / "rows.db").read_text() == f"{MYSQL} rows\n"
    databases.untouched(REDIS)
    settled(host, "alibaba", applied, **plan)


def test_a_new_image_tag_recreates_only_that_container_and_keeps_its_data(
    host: SshHost, databases: DatabaseHost
) -> None:
    applied, plan = databases.change(databases=databases.with_changed(REDIS, image="docker.io/library/redis:7.4"))

    # Its backup's configuration names the image too (the drill's scratch runs it): an update
    # that rewrites that file and restarts nothing.
    assert command_ops(applied) == {COMMAND.format(REDIS): "update", BACKUP.format(REDIS): "update"}
    assert applied.failed() == []
    container = host.container(REDIS)
    assert container is not None
    assert container["image"] == "docker.io/library/redis:7.4"
    assert (databases.data[REDIS] / "rows.db").read_text() == f"{REDIS} rows\n"
    databases.untouched(MYSQL)
    settled(host, "alibaba", applied, **plan)


def test_a_new_port_moves_the_published_port_and_its_marker(host: SshHost, databases: DatabaseHost) -> None:
    old_port, new_port = databases.databases[0]["ports"][0]["port"], free_port()
    moved = databases.with_changed(MYSQL, ports=[{"port": new_port, "expose": "peer"}])
    applied, plan = databases.change(databases=moved)

    # The host check learns the new port first (its PLAN_PORTS), then the container moves.
    assert command_ops(applied) == {
        "alibaba-db-bootstrap": "update",
        COMMAND.format(MYSQL): "update",
        BACKUP.format(MYSQL): "update",  # the port its dump connects to
    }
    assert applied.ran() == [
        ("alibaba-db-bootstrap", "update"),
        (COMMAND.format(MYSQL), "update"),
        (BACKUP.format(MYSQL), "update"),
    ]
    assert applied.failed() == []
    assert "--publish" in podman_run_of(host, MYSQL)
    assert f"{new_port}:3306/tcp" in podman_run_of(host, MYSQL)
    markers = Path(_paths(host).state) / "ports"
    assert (markers / str(new_port)).read_text() == f"{MYSQL}\n"
    assert not (markers / str(old_port)).exists()
    # The firewall follows the plan: the rule for the old port goes, one for the new one comes.
    rules = {s.name: s.op for s in applied.diff.changes() if s.type.startswith("alicloud:ecs/securityGroupRule")}
    assert sorted(rules.values()) == ["create", "delete"]
    databases.untouched(REDIS)
    settled(host, "alibaba", applied, **plan)


def test_retiring_a_database_stops_it_and_keeps_its_data(host: SshHost, databases: DatabaseHost) -> None:
    applied, plan = databases.change(databases=databases.without(REDIS), retired={"databases": [{"name": REDIS}]})

    assert command_ops(applied) == {
        "alibaba-db-bootstrap": "update",  # its host check no longer expects the redis port
        "alibaba-db-retire-production-redis": "retire",
        COMMAND.format(REDIS): "delete",
        BACKUP.format(REDIS): "delete",
        "alibaba-db-restore-drill": "update",  # it takes the retired database's backup timer down
    }
    # The engine forgets the old commands (retained: nothing runs); the retire command removes
    # the database, the drill's install its backup timer.
    assert sorted(applied.ran()) == [
        ("alibaba-db-bootstrap", "update"),
        ("alibaba-db-restore-drill", "update"),
        ("alibaba-db-retire-production-redis", "create"),
    ]
    assert applied.result("alibaba-db-retire-production-redis").stdout == (
        f"{REDIS}: retired, data kept in {databases.data[REDIS]}\n"
    )
    assert f"{REDIS}: no longer backed up" in applied.result("alibaba-db-restore-drill").stdout
    assert not (host.units / f"platform-backup-{REDIS}.timer").exists()
    assert (host.units / f"platform-backup-{MYSQL}.timer").exists()
    assert host.container(REDIS) is None
    assert (databases.data[REDIS] / "rows.db").read_text() == f"{REDIS} rows\n"
    assert applied.diff.hazards == ()
    databases.untouched(MYSQL)
    settled(host, "alibaba", applied, **plan)


def test_retiring_a_database_with_purge_deletes_only_its_data(host: SshHost, databases: DatabaseHost) -> None:
    retired = {"databases": [{"name": REDIS, "purge": True}]}
    applied, plan = databases.change(databases=databases.without(REDIS), retired=retired)

    assert applied.result("alibaba-db-retire-production-redis").stdout == f"{REDIS}: retired, data purged\n"
    assert not databases.data[REDIS].exists()
    databases.untouched(MYSQL)
    settled(host, "alibaba", applied, **plan)


def test_a_database_dropped_without_retiring_keeps_running_and_is_a_hazard(
    host: SshHost, databases: DatabaseHost
) -> None:
    applied, _ = databases.change(databases=databases.without(REDIS))

    assert command_ops(applied) == {
        "alibaba-db-bootstrap": "update",
        COMMAND.format(REDIS): "delete",
        BACKUP.format(REDIS): "delete",
    }
    assert applied.ran() == [("alibaba-db-bootstrap", "update")]
    assert any(REDIS in hazard and "platform:retired" in hazard for hazard in applied.diff.hazards)
    # Still running, so still backed up.
    assert (host.units / f"platform-backup-{REDIS}.timer").exists()
    databases.untouched(REDIS)
    databases.untouched(MYSQL)


def test_renaming_the_component_with_an_alias_runs_nothing(
    host: SshHost, monkeypatch: pytest.MonkeyPatch, scenario: None
) -> None:
    dbs = seed_databases(MYSQL)
    monkeypatch.setitem(program.PROVISIONING_SUFFIX, "databases", "databases")
    before = program_on(host, "alibaba", databases=dbs)
    assert up(host, nothing(before), before).failed() == []
    container, calls = host.container(MYSQL), len(host.systemctl_calls())

    monkeypatch.setitem(program.PROVISIONING_SUFFIX, "databases", "db")
    monkeypatch.setitem(program.FORMER_NAMES, "alibaba-db", ("alibaba-databases",))
    applied = up(host, before, program_on(host, "alibaba", databases=dbs))

    assert applied.ran() == []
    assert {s.op for s in applied.diff.steps} == {"same"}
    assert any("renamed: was alibaba-databases-production-mysql" in n for s in applied.diff.steps for n in s.notes)
    assert host.container(MYSQL) == container
    assert systemctl_verbs_for(host, f"{MYSQL}.service", calls) == []


def test_an_unchanged_plan_runs_nothing(host: SshHost, databases: DatabaseHost) -> None:
    applied, _ = databases.change()

    assert ops(applied) == {}
    assert applied.ran() == []
    databases.untouched(MYSQL)
    databases.untouched(REDIS)


# ---------------------------------------------------------------------------------------
# The application host
# ---------------------------------------------------------------------------------------


class ApplicationHost:
    """alpha in batch 1 and beta in batch 2, both serving 1.0.0."""

    def __init__(self, host: SshHost) -> None:
        self.host = host
        self.ports = {"alpha": free_port(), "beta": free_port()}
        self.before = program_on(host, "tencent", **self.plan())
        first = up(host, nothing(self.before), self.before)
        assert first.failed() == [], first.runs
        self.pids = host.service_pids()
        assert set(self.pids) == {"platform-alpha.service", "platform-beta.service"}

    def plan(
        self, releases: dict[str, dict[str, str]] | None = None, extra: Sequence[dict[str, Any]] = ()
    ) -> dict[str, Any]:
        releases = releases or {}
        services = [
            service(name, port, releases.get(name, self.host.release("1.0.0"))) for name, port in self.ports.items()
        ]
        batches = [["alpha", *(s["name"] for s in extra)], ["beta"]]
        # No existing workloads, so no nginx: the proxy is tests/provisioning/test_app_platform.py's.
        return {"services": [*services, *extra], "batches": batches, "existing": [], "proxy": None}

    def change(self, **plan: Any) -> tuple[Applied, dict[str, Any]]:
        plan = self.plan(**plan)
        return up(self.host, self.before, program_on(self.host, "tencent", **plan)), plan

    def untouched(self, name: str) -> None:
        unit = f"platform-{name}.service"
        assert self.host.service_pids().get(unit) == self.pids[unit], f"{name} was restarted"
        assert self.host.process_runs(self.pids[unit])
        assert version(self.ports[name]) == "1.0.0"


@pytest.fixture
def services(host: SshHost, scenario: None) -> ApplicationHost:
    return ApplicationHost(host)


def test_a_release_bump_updates_only_that_service(host: SshHost, services: ApplicationHost) -> None:
    applied, plan = services.change(releases={"alpha": host.release("1.1.0")})

    assert command_ops(applied) == {"tencent-svc-alpha": "update"}
    assert applied.result("tencent-svc-alpha").stdout.splitlines()[-1] == "alpha: 1.1.0 deployed, healthy"
    assert version(services.ports["alpha"]) == "1.1.0"
    services.untouched("beta")
    settled(host, "tencent", applied, **plan)


def test_a_failed_bump_rolls_back_and_stops_the_later_batch(host: SshHost, services: ApplicationHost) -> None:
    releases = {"alpha": host.release("1.1.0", "unhealthy"), "beta": host.release("1.1.0")}
    applied, _ = services.change(releases=releases)

    assert command_ops(applied) == {"tencent-svc-alpha": "update", "tencent-svc-beta": "update"}
    assert applied.failed() == ["tencent-svc-alpha"]
    assert applied.result("tencent-svc-alpha").code == 7
    assert ("tencent-svc-beta", "update", None) in applied.runs  # batch 2 never started
    assert version(services.ports["alpha"]) == "1.0.0"  # rolled back
    services.untouched("beta")


def test_a_service_added_to_a_batch_is_one_create(host: SshHost, services: ApplicationHost) -> None:
    gamma = service("gamma", free_port(), host.release("1.0.0"))
    applied, plan = services.change(extra=[gamma])

    assert command_ops(applied) == {"tencent-svc-bootstrap": "update", "tencent-svc-gamma": "create"}
    assert applied.result("tencent-svc-gamma").stdout.splitlines()[-1] == "gamma: 1.0.0 deployed, healthy"
    services.untouched("alpha")
    services.untouched("beta")
    settled(host, "tencent", applied, **plan)
