"""How each database engine runs inside its memory limit, rendered as a Quadlet unit.

One package per engine kind, named after it (``mysql``, ``postgres``, ``redis``, ``neo4j``,
``elasticsearch``, ``weaviate``), whose module holds ``settings(db)`` (data path, health check,
environment, argv, how the image reads its password), ``BACKUP_USER``, and, where the engine
has them, ``replication_args(db, tls_path)`` (a cross-cloud replication source's flags),
``TLS_HEALTH`` and ``secret_content(...)`` (a secret other than the bare password). Beside it,
its shell for each part of the platform it takes part in (``hook``): ``backup.sh`` always,
``source.sh`` and ``replica.sh`` for a replicating engine, ``exporter.sh`` for one with an
exporter, ``clients.sh`` for one whose clients' users are made in SQL. ``KINDS`` is the one
table of them; this module renders what they share.

Every engine setting is derived from the plan's ``memoryMib`` (and ``jvm`` for Neo4j and
Elasticsearch), so a memory change in the plan changes the unit, and only that unit.

Passwords reach the engine as Podman secrets (``Secret=``): never in the unit, an
environment file, ``podman inspect`` or a process's argv.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import ModuleType

from components.engines import elasticsearch, mysql, neo4j, postgres, redis, weaviate
from components.engines.base import (
    IMAGE_ENGINE_OWNER,
    TLS_CA,
    TLS_CERT,
    TLS_KEY,
    TLS_MOUNT,
    Engine,
    server_id,
)
from components.formats import unit_assignment, unit_value, unit_words
from plan import ENGINE_PORTS, Database, DatabaseKind, Paths

__all__ = [
    "BACKUP_HOOKS",
    "IMAGE_ENGINE_OWNER",
    "KINDS",
    "POSTGRES_SUPERUSER",
    "TLS_CA",
    "TLS_CERT",
    "TLS_KEY",
    "TLS_MOUNT",
    "Engine",
    "data_dir",
    "engine",
    "hook",
    "mysql_flavour",
    "quadlet_unit",
    "replication_args",
    "secret_content",
    "secret_file",
    "secret_option",
    "server_id",
    "tls_engine",
]

KINDS: dict[DatabaseKind, ModuleType] = {
    DatabaseKind.MYSQL: mysql,
    DatabaseKind.POSTGRES: postgres,
    DatabaseKind.REDIS: redis,
    DatabaseKind.NEO4J: neo4j,
    DatabaseKind.ELASTICSEARCH: elasticsearch,
    DatabaseKind.WEAVIATE: weaviate,
}


def hook(kind: DatabaseKind | str, part: str) -> str:
    """The engine's own shell for one part of the platform, beside its module (a file name for
    components.provisioning.render): ``backup`` (backup_<kind>, verify_<kind>, drill_<kind> in the
    backup programs), ``source`` and ``replica`` (cross-cloud replication), ``exporter``, ``clients``
    (the other host's services' users: components/clients.py)."""
    return f"engines/{DatabaseKind(kind).value}/{part}.sh"


# Every engine's part of the backup programs: components/backups.py renders them all into
# platform-backup and platform-restore-drill, which serve every database of the host.
BACKUP_HOOKS = tuple(hook(kind, "backup") for kind in KINDS)
POSTGRES_SUPERUSER = postgres.SUPERUSER
mysql_flavour = mysql.flavour


def engine(db: Database) -> Engine:
    return KINDS[db.kind].settings(db)


def replication_args(db: Database, tls_path: str) -> tuple[str, ...]:
    """A replication source's TLS and replication settings in the engine's own argv syntax, reading
    its CA, certificate and key from ``tls_path`` (the mount in its container; the tests pass the
    directory itself). The engines whose module has ``replication_args`` only."""
    own = getattr(KINDS[db.kind], "replication_args", None)
    if own is None:
        raise ValueError(f"{db.name}: {db.kind} has no cross-cloud replication (only mysql, postgres and redis)")
    return own(db, tls_path)


def tls_engine(db: Database) -> Engine:
    """The engine as a replication source: its settings plus ``replication_args`` on ``TLS_MOUNT``."""
    spec = engine(db)
    health = getattr(KINDS[db.kind], "TLS_HEALTH", spec.health)
    return replace(spec, exec_args=(*spec.exec_args, *replication_args(db, TLS_MOUNT)), health=health)


def secret_file(name: str, paths: Paths) -> str:
    """The host's 0600 copy, from which the Podman secret named like the database is made."""
    return f"{paths.secrets}/{name}.secret"


def data_dir(name: str, paths: Paths) -> str:
    """Where a database keeps its data: named after the database alone, so retiring needs no more."""
    return f"{paths.data}/{name}"


def secret_content(
    db: Database,
    password: str,
    replication_password: str | None = None,
    exporter_acl: str | None = None,
    clients: Mapping[str, str] | None = None,
) -> str:
    """What reaches the host on stdin: the secret's exact value (an env secret has no newline).

    ``replication_password``: a Redis replication source's auth file also defines the ACL user its
    replicas log in as (components/engines/redis); the other engines' replication users are made
    by components/replication.py: source_step. ``exporter_acl``: the Redis exporter's user line
    (components/exporters.py: redis_acl_line), when the monitoring watches this database.
    ``clients``: each client's password (service -> password): a Redis auth file defines their
    users too; the other engines' are made by components/clients.py.
    """
    own = getattr(KINDS[db.kind], "secret_content", None)
    return own(password, replication_password, exporter_acl, clients or {}) if own is not None else password


def secret_option(db: Database) -> str:
    """The Quadlet ``Secret=`` value that hands the engine its password."""
    spec = engine(db)
    if spec.credential_mount is not None:
        return f"{db.name},type=mount,target={spec.credential_mount},mode=0444"
    return f"{db.name},type=env,target={spec.credential_env}"


def quadlet_unit(db: Database, paths: Paths, tls_dir: str | None = None) -> str:
    """The ``.container`` unit Quadlet turns into ``<name>.service`` (Podman >= 4.5).

    ``tls_dir``: the database is a replication source; its TLS files are mounted read-only from
    there (no ``U``: podman would chown them to the image's root user; repl_tls.sh owns them).
    """
    spec = engine(db) if tls_dir is None else tls_engine(db)
    lines = [
        "# Managed by Pulumi (platform plan); edits are overwritten.",
        "[Unit]",
        f"Description={unit_value(f'{db.name} ({db.kind}) database container')}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Container]",
        f"ContainerName={db.name}",
        f"Image={db.image}",
        # The plan's port on the host, the engine's own port inside (the seeds' isolated
        # per-version ports, e.g. 3308, still reach MySQL's 3306).
        *(
            f"PublishPort={p.port}:{inner}/{p.protocol}"
            for p, inner in zip(db.ports, ENGINE_PORTS[db.kind], strict=True)
        ),
        # U: podman chowns the data directory to the engine's user (Elasticsearch runs as 1000).
        f"Volume={data_dir(db.name, paths)}:{spec.data_path}:Z,U",
        *([f"Volume={tls_dir}:{TLS_MOUNT}:ro,Z"] if tls_dir is not None else []),
        *(f"Environment={unit_assignment(key, value)}" for key, value in sorted(spec.environment.items())),
    ]
    lines.append(f"Secret={secret_option(db)}")
    if spec.exec_args:
        lines.append("Exec=" + unit_words(spec.exec_args, command=True))
    # --memory-swap equal to --memory: the limit is real, not spilled to swap.
    lines += [
        f"PodmanArgs=--memory={db.memory_mib}m --memory-swap={db.memory_mib}m",
        f"HealthCmd={spec.health}",
        "HealthInterval=30s",
        "HealthRetries=5",
        "",
        "[Service]",
        "Restart=always",
        "TimeoutStartSec=600",
        "",
        "[Install]",
        "WantedBy=multi-user.target default.target",
        "",
    ]
    return "\n".join(lines)
