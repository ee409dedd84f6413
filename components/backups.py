"""Backups on the database host: one systemd timer per database, a weekly restore drill.

Each step installs, over SSH like every other step, a program under ``paths.root/bin``, its
configuration under ``paths.state/backup`` and a ``.service`` + ``.timer`` pair in
``paths.units`` (``components/scripts/db_backup.sh``). The programs run later, on the timer:

- ``platform-backup CONFIG`` (``backup_run.sh``): one database's logical backup through
  ``podman exec`` inside the container's own memory limit, written atomically with a JSON
  manifest (size, sha256, check figures), promoted to ``weekly/`` on the first backup of an ISO
  week, pruned to ``keepDaily`` / ``keepWeekly`` (never the newest good backup), copied to OSS
  with the instance's RAM role, and reported as a textfile-collector metric and a status file.
- ``platform-restore-drill CONFIG [DATABASE [BACKUP]]`` (``restore_drill.sh``): restores the
  latest good (or the named) backup of each database into a scratch container limited to
  ``drillMemoryMib``, checks it against the manifest, removes the scratch, and reports.

Passwords never reach these steps: the programs read the host's 0600 secret file (written by the
database's own container step) when an engine needs one, and hand it to the tool on a pipe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from components.engines import BACKUP_HOOKS, KINDS, data_dir, engine, secret_file
from components.formats import unit_value, unit_words
from components.provisioning import GUARDS, ParamValue, Step, render
from plan import BACKUP_RUNNER_MEMORY_MIB, Backups, Database, Layout, Paths
from policies.facts import metrics_dir

BACKUP_PROGRAM = "platform-backup"
DRILL_PROGRAM = "platform-restore-drill"
DRILL_UNIT = "platform-restore-drill"
# The least scratch memory the drill restores each engine in, from the engines that have one.
DRILL_SCRATCH_MIN_MIB = {
    kind: module.DRILL_SCRATCH_MIN_MIB for kind, module in KINDS.items() if hasattr(module, "DRILL_SCRATCH_MIN_MIB")
}
# Chosen here: bounded waits. A job waits this long for another backup or the drill to finish...
LOCK_WAIT_S = 3 * 3600
# ...a Redis BGSAVE, an Elasticsearch snapshot or a Weaviate backup may take this long...
SAVE_TIMEOUT_S = 1800
# ...a scratch engine of the drill this long to answer, and the whole job this long.
DRILL_START_TIMEOUT_S = 300
JOB_TIMEOUT = "6h"
# The off-host copy's CLI (Alibaba's ossutil 1.7+, on PATH); the host authenticates as its ECS
# RAM role, so no key is ever configured.
OSSUTIL = "ossutil"


@dataclass(frozen=True)
class OffHostTarget:
    """Where the host copies its backups: ``oss://<bucket>/<prefix>{daily,weekly}/<db>/``."""

    bucket: str
    prefix: str
    endpoint: str
    """The bucket's internal endpoint (the host reaches it inside the cloud's network)."""
    ram_role: str
    """The ECS RAM role attached to the instance: ossutil reads its STS credentials from the metadata service."""

    @property
    def url(self) -> str:
        return f"oss://{self.bucket}/{self.prefix}"


def backup_dir(name: str, paths: Paths) -> str:
    """A database's backups: ``daily/`` and ``weekly/`` below it."""
    return f"{paths.backups}/{name}"


def config_dir(paths: Paths) -> str:
    return f"{paths.state}/backup"


def lock_file(paths: Paths) -> str:
    """The host-wide lock of the backup jobs: one job at a time carries their memory slot."""
    return f"{config_dir(paths)}/lock"


def database_config_file(name: str, paths: Paths) -> str:
    return f"{config_dir(paths)}/db/{name}.conf"


def backup_unit(name: str) -> str:
    return f"platform-backup-{name}"


def _config(values: Mapping[str, ParamValue]) -> str:
    """``KEY=value`` lines the programs read (no quoting: a value is the rest of its line)."""
    lines = []
    for key, value in values.items():
        text = str(value)
        if "\n" in text or "\r" in text:
            raise ValueError(f"backup configuration {key} cannot hold a line break")
        lines.append(f"{key}={text}\n")
    return "".join(lines)


def database_config(paths: Paths, backups: Backups, db: Database, off_host: OffHostTarget | None) -> str:
    """What ``platform-backup`` (and the drill) read for one database."""
    # Only an engine that dumps offline (Neo4j: a sibling container while the database is stopped)
    # uses its limits; the others leave them out, so a memory change updates only its own command.
    dumps_offline = getattr(KINDS[db.kind], "DUMPS_OFFLINE", False)
    heap = db.jvm.heap_mib if db.jvm is not None and dumps_offline else 0
    spec = engine(db)
    return _config(
        {
            "NAME": db.name,
            "KIND": db.kind.value,
            "IMAGE": db.image,
            "SERVICE": f"{db.name}.service",
            "DATA_DIR": data_dir(db.name, paths),
            "DATA_PATH": spec.data_path,
            "SECRET_FILE": secret_file(db.name, paths),
            "DB_USER": KINDS[db.kind].BACKUP_USER,
            "API_PORT": db.ports[0].port,
            "MEMORY_MIB": db.memory_mib if dumps_offline else 0,
            "HEAP_MIB": heap,
            "HEALTH_TIMEOUT_S": db.health_timeout_s,
            "BACKUPS_ROOT": paths.backups,
            "BACKUP_DIR": backup_dir(db.name, paths),
            "STATUS_FILE": f"{config_dir(paths)}/db/{db.name}.last",
            "METRICS_FILE": f"{metrics_dir(paths.state)}/backup_{db.name}.prom",
            "LOCK_FILE": lock_file(paths),
            "LOCK_WAIT_S": LOCK_WAIT_S,
            "SAVE_TIMEOUT_S": SAVE_TIMEOUT_S,
            "KEEP_DAILY": backups.keep_daily,
            "KEEP_WEEKLY": backups.keep_weekly,
            # Where Elasticsearch and Weaviate write their snapshots inside the data volume (the
            # engines' settings); the runner archives each one and removes it.
            "ES_SNAPSHOT_PATH": spec.environment.get("path.repo", ""),
            "WEAVIATE_BACKUP_PATH": spec.environment.get("BACKUP_FILESYSTEM_PATH", ""),
            "OFF_HOST_URL": off_host.url if off_host is not None else "",
            "OFF_HOST_ENDPOINT": off_host.endpoint if off_host is not None else "",
            "OFF_HOST_RAM_ROLE": off_host.ram_role if off_host is not None else "",
            "OSSUTIL": OSSUTIL,
        }
    )


def drill_config(paths: Paths, backups: Backups) -> str:
    """What ``platform-restore-drill`` reads: where the databases' configurations are, its limits."""
    return _config(
        {
            "CONFIG_DIR": f"{config_dir(paths)}/db",
            "BACKUPS_ROOT": paths.backups,
            "SCRATCH_ROOT": f"{paths.backups}/.drill",
            "DRILL_MEMORY_MIB": backups.drill_memory_mib,
            "SCRATCH_MIN_MIB": " ".join(f"{kind.value}:{mib}" for kind, mib in DRILL_SCRATCH_MIN_MIB.items()),
            "DRILL_START_TIMEOUT_S": DRILL_START_TIMEOUT_S,
            "STATUS_FILE": f"{config_dir(paths)}/drill.last",
            "METRICS_FILE": f"{metrics_dir(paths.state)}/restore_drill.prom",
            "LOCK_FILE": lock_file(paths),
            "LOCK_WAIT_S": LOCK_WAIT_S,
        }
    )


def service_unit(description: str, program: str, config: str, after: str | None) -> str:
    lines = [
        "# Managed by Pulumi (platform plan); edits are overwritten.",
        "[Unit]",
        f"Description={unit_value(description)}",
        *([f"After={after}"] if after else []),
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=" + unit_words([program, config], command=True),
        # The dump tools run inside their containers (podman exec); this bounds the programs on
        # the host: bash, gzip, tar, sha256sum, ossutil.
        f"MemoryMax={BACKUP_RUNNER_MEMORY_MIB}M",
        "Nice=10",
        "IOSchedulingClass=best-effort",
        "IOSchedulingPriority=7",
        "UMask=0077",
        f"TimeoutStartSec={JOB_TIMEOUT}",
        "",
    ]
    return "\n".join(lines)


def timer_unit(description: str, unit: str, schedule: str, randomized_delay_s: int) -> str:
    lines = [
        "# Managed by Pulumi (platform plan); edits are overwritten.",
        "[Unit]",
        f"Description={unit_value(description)}",
        "",
        "[Timer]",
        f"OnCalendar={unit_value(schedule)}",
        f"RandomizedDelaySec={randomized_delay_s}",
        # A run missed while the host was down starts when it boots.
        "Persistent=true",
        f"Unit={unit}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ]
    return "\n".join(lines)


def _program(file: str) -> str:
    """A program installed on the host: the guards, the shared functions, then its body."""
    return render([GUARDS, "lib/backup_common.sh", *BACKUP_HOOKS, file], {})


def _install_params(
    paths: Paths, *, name: str, program: str, body: str, config_file: str, config: str
) -> dict[str, ParamValue]:
    return {
        "NAME": name,
        "PROGRAM_FILE": f"{paths.root}/bin/{program}",
        "PROGRAM_CONTENT": _program(body),
        "CONFIG_FILE": config_file,
        "CONFIG_CONTENT": config,
        "CONFIG_DIR": f"{config_dir(paths)}/db",
        "UNITS_DIR": paths.units,
        "METRICS_DIR": metrics_dir(paths.state),
        "BACKUPS_ROOT": paths.backups,
    }


def backup_step(component: str, layout: Layout, backups: Backups, db: Database, off_host: OffHostTarget | None) -> Step:
    """``<component>-backup-<db>``: the database's backup program, configuration and timer."""
    paths = layout.paths
    unit = backup_unit(db.name)
    config_file = database_config_file(db.name, paths)
    program = f"{paths.root}/bin/{BACKUP_PROGRAM}"
    params = {
        **_install_params(
            paths,
            name=db.name,
            program=BACKUP_PROGRAM,
            body="backup_run.sh",
            config_file=config_file,
            config=database_config(paths, backups, db, off_host),
        ),
        "UNIT": unit,
        "SERVICE_CONTENT": service_unit(
            f"Backup of {db.name} ({db.kind.value})", program, config_file, after=f"{db.name}.service"
        ),
        "TIMER_CONTENT": timer_unit(f"Daily backup of {db.name}", unit, backups.schedule, backups.randomized_delay_s),
        "SCHEDULE": backups.schedule,
        "DIRS": f"{backup_dir(db.name, paths)}/daily {backup_dir(db.name, paths)}/weekly",
        "STOP_BACKUPS": "",
        "OFF_HOST_URL": off_host.url if off_host is not None else "",
        "OSSUTIL": OSSUTIL,
    }
    return Step(
        f"{component}-backup-{db.name}",
        files=("db_backup.sh",),
        params=params,
        label=f"platform-backup-{db.name}",
        sudo=layout.sudo,
    )


def drill_step(component: str, layout: Layout, backups: Backups, unscheduled: Sequence[str]) -> Step:
    """``<component>-restore-drill``: the drill program, its configuration and its weekly timer.

    The drill restores the host's own copies (the off-host ones are the same bytes, checked by the
    same sha256 when fetched). ``unscheduled``: the databases whose backup timers its install
    takes down (``Plan.unscheduled_backups``).
    """
    paths = layout.paths
    program = f"{paths.root}/bin/{DRILL_PROGRAM}"
    config_file = f"{config_dir(paths)}/drill.conf"
    params = {
        **_install_params(
            paths,
            name="restore-drill",
            program=DRILL_PROGRAM,
            body="restore_drill.sh",
            config_file=config_file,
            config=drill_config(paths, backups),
        ),
        "UNIT": DRILL_UNIT,
        "SERVICE_CONTENT": service_unit(
            "Restore drill: each database's latest backup into a scratch container", program, config_file, None
        ),
        "TIMER_CONTENT": timer_unit(
            "Weekly restore drill", DRILL_UNIT, backups.drill_schedule, min(backups.randomized_delay_s, 600)
        ),
        "SCHEDULE": backups.drill_schedule,
        "DIRS": f"{paths.backups}/.drill",
        "STOP_BACKUPS": " ".join(unscheduled),
        "CONFIG_DIR": f"{config_dir(paths)}/db",
        "OFF_HOST_URL": "",
        "OSSUTIL": OSSUTIL,
    }
    return Step(
        f"{component}-restore-drill",
        files=("db_backup.sh",),
        params=params,
        label="platform-restore-drill",
        sudo=layout.sudo,
    )
