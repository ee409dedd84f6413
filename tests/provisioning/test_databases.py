"""Database containers: the declared Quadlet units, the planned memory, data kept, bounded health waits."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import databases
from components.engines import data_dir, engine, quadlet_unit, secret_file, secret_option
from plan import ENGINE_PORTS, Plan, RetiredDatabase
from tests.provisioning.harness import SshHost
from tests.provisioning.workloads import database_step
from tests.provisioning.workloads import databases as seed_databases

ALL = [db["name"] for db in seed_databases()]


def bootstrap(host: SshHost, plan: Plan) -> None:
    run = host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases))
    assert run.code == 0, run


def install(host: SshHost, plan: Plan, name: str) -> str:
    db = next(d for d in plan.databases if d.name == name)
    step, stdin = database_step(plan, db)
    run = host.step(step, stdin)
    assert run.code == 0, run
    return run.stdout


def podman_runs(host: SshHost, name: str) -> list[list[str]]:
    return [call for call in host.podman_calls() if call[:2] == ["run", f"--name={name}"]]


def values_of(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


@pytest.mark.parametrize("name", ALL)
def test_unit_file_is_the_declared_one_and_memory_flags_equal_the_plan(host: SshHost, name: str) -> None:
    plan = host.plan("alibaba", databases=seed_databases(name))
    db = plan.databases[0]
    bootstrap(host, plan)

    assert install(host, plan, name) == f"{name}: updated, healthy\n"

    unit = host.quadlet / f"{name}.container"
    assert unit.read_text() == quadlet_unit(db, plan.paths)
    assert oct(unit.stat().st_mode & 0o777) == "0o644"
    [argv] = podman_runs(host, name)
    assert [a for a in argv if a.startswith("--memory")] == [
        f"--memory={db.memory_mib}m",
        f"--memory-swap={db.memory_mib}m",
    ]
    assert argv[argv.index(db.image) - 1].startswith("--memory-swap=")  # options end at the image
    assert f"{data_dir(db.name, plan.paths)}:{engine(db).data_path}:Z,U" in values_of(argv, "-v")
    assert values_of(argv, "--secret") == [secret_option(db)]
    assert values_of(argv, "--env-file") == []
    secret = Path(secret_file(db.name, plan.paths)).read_bytes()
    assert host.podman_secret(db.name) == hashlib.sha256(secret).hexdigest()
    container = host.container(name)
    assert container is not None
    assert (container["image"], container["status"], container["healthcheck"]) == (db.image, "running", "1")


@pytest.mark.parametrize("name", ALL)
def test_container_environment_is_exactly_the_engines(host: SshHost, name: str) -> None:
    plan = host.plan("alibaba", databases=seed_databases(name))
    bootstrap(host, plan)
    install(host, plan, name)

    [argv] = podman_runs(host, name)

    assert values_of(argv, "--env") == [f"{k}={v}" for k, v in sorted(engine(plan.databases[0]).environment.items())]


def test_plan_ports_are_published_to_the_engines_own_ports(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases())  # every port moved off its default
    bootstrap(host, plan)
    for name in ALL:
        install(host, plan, name)

    for db in plan.databases:
        [argv] = podman_runs(host, db.name)
        wanted = [f"{spec.port}:{inner}/tcp" for spec, inner in zip(db.ports, ENGINE_PORTS[db.kind], strict=True)]
        assert values_of(argv, "--publish") == wanted


def test_update_recreates_the_container_and_keeps_its_data(host: SshHost) -> None:
    mysql = seed_databases("production-mysql")
    plan = host.plan("alibaba", databases=mysql)
    bootstrap(host, plan)
    install(host, plan, "production-mysql")
    data = Path(data_dir(plan.databases[0].name, plan.paths))
    (data / "ibdata1").write_bytes(b"the rows")
    data_inode, first = data.stat().st_ino, host.container("production-mysql")
    assert first is not None

    bigger = host.plan("alibaba", databases=[{**mysql[0], "memoryMib": 256}])
    assert install(host, bigger, "production-mysql") == "production-mysql: updated, healthy\n"

    second = host.container("production-mysql")
    assert second is not None
    assert second["id"] != first["id"]
    assert (data / "ibdata1").read_bytes() == b"the rows"
    assert data.stat().st_ino == data_inode
    assert [a for a in podman_runs(host, "production-mysql")[-1] if a.startswith("--memory=")] == ["--memory=256m"]
    assert "--memory=256m" in (host.quadlet / "production-mysql.container").read_text()
    calls = host.podman_calls()
    assert [c for c in calls if c[0] == "volume"] == []
    assert [c for c in calls if c[0] != "run" and any(str(data) in arg for arg in c)] == []


def test_health_wait_gives_up_after_its_timeout(host: SshHost) -> None:
    (redis,) = seed_databases("production-redis")
    plan = host.plan("alibaba", databases=[{**redis, "healthTimeoutS": 3}])
    bootstrap(host, plan)
    host.set_health("production-redis", "unhealthy")
    short, stdin = database_step(plan, plan.databases[0])
    assert short.script.count("\nHEALTH_TIMEOUT=3\n") == 1

    started = time.monotonic()
    run = host.step(short, stdin)
    elapsed = time.monotonic() - started

    assert run.code == 5, run
    assert run.stderr == "production-redis: not healthy after 3s (docker.io/library/redis:7): unhealthy\n"
    assert 3 <= elapsed < 10
    checks = [c for c in host.podman_calls() if c == ["healthcheck", "run", "production-redis"]]
    assert 2 <= len(checks) <= 4


def test_an_update_that_fails_its_health_check_goes_back_to_the_previous_unit(host: SshHost) -> None:
    (redis,) = seed_databases("production-redis")
    plan = host.plan("alibaba", databases=[{**redis, "healthTimeoutS": 3}])
    bootstrap(host, plan)
    assert install(host, plan, "production-redis") == "production-redis: updated, healthy\n"
    working_unit = (host.quadlet / "production-redis.container").read_text()
    data = Path(data_dir(plan.databases[0].name, plan.paths))
    (data / "appendonly.aof").write_bytes(b"SET k v")

    broken = host.plan("alibaba", databases=[{**redis, "healthTimeoutS": 3, "image": "docker.io/library/redis:8"}])
    host.set_health("production-redis", 3)  # the new image never answers within 3 s; then it is the old one
    step, stdin = database_step(broken, broken.databases[0])
    run = host.step(step, stdin)

    assert run.code == 5, run
    assert run.stderr.splitlines() == [
        "production-redis: not healthy after 3s (docker.io/library/redis:8): starting",
        "production-redis: rolled back to the previous unit, healthy",
    ]
    assert (host.quadlet / "production-redis.container").read_text() == working_unit
    container = host.container("production-redis")
    assert container is not None
    assert (container["image"], container["status"]) == ("docker.io/library/redis:7", "running")
    assert (data / "appendonly.aof").read_bytes() == b"SET k v"


def test_a_host_provisioned_before_the_healthy_unit_record_adopts_the_running_unit(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases("production-redis"))
    bootstrap(host, plan)
    install(host, plan, "production-redis")
    record = Path(plan.paths.state) / "healthy/production-redis.container"
    assert record.read_text() == quadlet_unit(plan.databases[0], plan.paths)
    record.unlink()  # what an earlier version of db_container.sh left
    container = host.container("production-redis")

    assert install(host, plan, "production-redis") == "production-redis: unchanged, healthy\n"
    assert host.container("production-redis") == container  # adopted, not restarted
    assert record.read_text() == quadlet_unit(plan.databases[0], plan.paths)


def test_a_first_install_that_fails_its_health_check_has_nothing_to_go_back_to(host: SshHost) -> None:
    (redis,) = seed_databases("production-redis")
    plan = host.plan("alibaba", databases=[{**redis, "healthTimeoutS": 2}])
    bootstrap(host, plan)
    host.set_health("production-redis", "unhealthy")
    step, stdin = database_step(plan, plan.databases[0])

    run = host.step(step, stdin)

    assert run.code == 5, run
    assert "rolled back" not in run.stderr
    assert len(run.stderr.splitlines()) == 1


def test_health_wait_retries_until_the_engine_answers(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases("production-postgres"))
    bootstrap(host, plan)
    host.set_health("production-postgres", 1)  # one failed check while the engine starts

    assert install(host, plan, "production-postgres") == "production-postgres: updated, healthy\n"
    assert host.podman_calls().count(["healthcheck", "run", "production-postgres"]) == 2


def test_empty_stdin_installs_no_secret_and_no_container(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases("production-mysql"))
    bootstrap(host, plan)
    step, _ = database_step(plan, plan.databases[0])

    run = host.step(step, "")

    assert run.code == 2, run
    assert "no secret on stdin" in run.stderr
    assert not Path(secret_file(plan.databases[0].name, plan.paths)).exists()
    assert podman_runs(host, "production-mysql") == []


def test_elasticsearch_kernel_setting_is_written_and_applied_without_touching_this_kernel(host: SshHost) -> None:
    real = Path("/proc/sys/vm/max_map_count").read_text()
    plan = host.plan("alibaba", databases=seed_databases("production-elasticsearch"))

    bootstrap(host, plan)

    assert (host.root / "etc/sysctl.d/99-platform-elasticsearch.conf").read_text() == "vm.max_map_count = 262144\n"
    assert (host.standin_state / "sysctl/vm.max_map_count").read_text() == "262144\n"
    assert Path("/proc/sys/vm/max_map_count").read_text() == real


def test_no_elasticsearch_no_kernel_setting(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases("production-redis"))

    bootstrap(host, plan)

    assert not (host.root / "etc/sysctl.d/99-platform-elasticsearch.conf").exists()
    assert (host.standin_state / "sysctl/vm.max_map_count").read_text() == "65530\n"


@pytest.fixture
def second_disk(host: SshHost) -> Iterator[Path]:
    """A second filesystem (a 128 MiB ext4 image on a loop device), mounted below the host's root as a
    data disk is on a host (/mnt/disk1); unmounted after the test."""
    image, mount = host.base / "disk1.img", host.root / "mnt/disk1"
    mount.mkdir(parents=True)
    formatted = subprocess.run(
        ["mkfs.ext4", "-q", "-F", str(image), "128M"], capture_output=True, timeout=60, check=False
    )
    mounted = (
        formatted.returncode == 0
        and subprocess.run(
            ["mount", "-o", "loop", str(image), str(mount)], capture_output=True, timeout=60, check=False
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip("a second filesystem needs mkfs.ext4 and a loop device (root on a host or a privileged container)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=60, check=False)
        image.unlink(missing_ok=True)


def test_a_database_on_a_second_filesystem_is_installed_and_retired_there(host: SshHost, second_disk: Path) -> None:
    """paths.data on a data disk (an allowlisted root: /mnt/<disk>/platform...): the bootstrap, the
    container and a purging retire all work across the filesystem boundary."""
    paths = {**host.paths(), "data": f"{second_disk}/platform"}
    plan = host.plan("alibaba", databases=seed_databases("production-redis"), host={"minFreeDiskMib": 64},
                     extra={"paths": paths})  # fmt: skip
    db = plan.databases[0]
    step, stdin = database_step(plan, db)

    assert host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
    installed = host.step(step, stdin)
    data = Path(data_dir(db.name, plan.paths))
    (data / "appendonly.aof").write_bytes(b"SET k v")
    retired = host.step(databases.retire_step("db", plan.layout, RetiredDatabase(name=db.name, purge=True)))

    assert installed.code == 0, installed
    assert os.stat(second_disk).st_dev != os.stat(host.root).st_dev  # truly another filesystem
    assert retired.code == 0, retired
    assert retired.stdout == "production-redis: retired, data purged\n"
    assert not data.exists()
    assert (second_disk / "platform").is_dir()  # the data root stays; only the database's own directory went
