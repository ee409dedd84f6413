"""How each database engine runs inside its memory limit, rendered as a Quadlet unit.

Every engine setting is derived from the plan's ``memoryMib`` (and ``jvm`` for Neo4j and
Elasticsearch), so a memory change in the plan changes the unit, and only that unit.

Passwords reach the engine as Podman secrets (``Secret=``): never in the unit, an
environment file, ``podman inspect`` or a process's argv.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field, replace
from typing import Literal

from components.formats import redis_string, unit_assignment, unit_value, unit_words
from plan import ENGINE_PORTS, REPLICATION_USER, Database, DatabaseKind, Paths


@dataclass(frozen=True)
class Engine:
    data_path: str
    """Where the engine keeps its data inside the container (the persistent volume)."""
    health: str
    """Run inside the container; exit 0 when the engine answers."""
    environment: dict[str, str] = field(default_factory=dict)
    exec_args: tuple[str, ...] = ()
    credential_env: str | None = None
    """The variable the image reads its password from (a Podman secret of type env)..."""
    credential_mount: str | None = None
    """...or the file it reads it from (type mount; world-readable inside the container only,
    because the entrypoints drop root before they read it)."""


# Where a replication source's TLS files (components/replication.py: tls_dir) appear in its container.
TLS_MOUNT = "/etc/platform-tls"
TLS_CA, TLS_CERT, TLS_KEY = "ca.crt", "server.crt", "server.key"
# The engine's user in the official mysql, mariadb, postgres and redis images (uid and gid 999):
# the owner of its TLS key until the image's entrypoint has chowned the data directory to it.
IMAGE_ENGINE_OWNER = "999:999"
# The superuser (and its database) the postgres image creates from POSTGRES_USER.
POSTGRES_SUPERUSER = "future_user"
# The user each engine's password (platform:dbPasswords) belongs to: what a service connects as.
CLIENT_USER: dict[DatabaseKind, str] = {
    DatabaseKind.MYSQL: "root",
    DatabaseKind.POSTGRES: POSTGRES_SUPERUSER,
    DatabaseKind.REDIS: "default",
    DatabaseKind.NEO4J: "neo4j",
    DatabaseKind.ELASTICSEARCH: "elastic",
    DatabaseKind.WEAVIATE: "",  # an API key, no user
}


def mysql_flavour(db: Database) -> Literal["mariadb", "mysql"]:
    """MariaDB or Oracle MySQL, from the image's repository name (their flags differ)."""
    repository = db.image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return "mariadb" if "mariadb" in repository else "mysql"


def server_id(name: str) -> int:
    """A replication source's MySQL server id: stable per database name, never 1 (every fresh MySQL's
    default, so a replica that kept it still differs) nor 0 (replication off)."""
    return 2 + zlib.crc32(f"platform/{name}".encode()) % (2**32 - 3)


def replication_args(db: Database, tls_path: str) -> tuple[str, ...]:
    """A replication source's TLS and replication settings in the engine's own argv syntax, reading
    its CA, certificate and key from ``tls_path`` (the mount in its container; the tests pass the
    directory itself). mysql, postgres and redis only."""
    ca, cert, key = (f"{tls_path}/{file}" for file in (TLS_CA, TLS_CERT, TLS_KEY))
    match db.kind:
        case DatabaseKind.MYSQL:
            # MariaDB always has GTIDs; Oracle MySQL turns them on with two flags.
            gtids = ("--gtid-mode=ON", "--enforce-gtid-consistency=ON") if mysql_flavour(db) == "mysql" else ()
            return (
                f"--server-id={server_id(db.name)}",
                # MySQL 8's own default name (MariaDB has no binary log until this).
                "--log-bin=binlog",
                "--binlog-format=ROW",
                *gtids,
                f"--ssl-ca={ca}",
                f"--ssl-cert={cert}",
                f"--ssl-key={key}",
            )
        case DatabaseKind.POSTGRES:
            settings = {"wal_level": "logical", "ssl": "on", "ssl_cert_file": cert, "ssl_key_file": key}
            return tuple(word for name, value in settings.items() for word in ("-c", f"{name}={value}"))
        case DatabaseKind.REDIS:
            # TLS only on the engine's port: nothing reaches it in plaintext. Clients are not asked
            # for certificates (the replication user's password authenticates the replica).
            return (
                "--port",
                "0",
                "--tls-port",
                str(ENGINE_PORTS[DatabaseKind.REDIS][0]),
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-ca-cert-file",
                ca,
                "--tls-auth-clients",
                "no",
            )
        case _:
            raise ValueError(f"{db.name}: {db.kind} has no cross-cloud replication (only mysql, postgres and redis)")


def tls_engine(db: Database) -> Engine:
    """The engine as a replication source: its settings plus ``replication_args`` on ``TLS_MOUNT``."""
    spec = engine(db)
    health = spec.health
    if db.kind == DatabaseKind.REDIS:
        # The port speaks TLS only. The check proves the engine answers on loopback inside its own
        # container, where nothing is sent that needs a verified peer (the replicas verify).
        health = "redis-cli --tls --insecure -h 127.0.0.1 ping"
    return replace(spec, exec_args=(*spec.exec_args, *replication_args(db, TLS_MOUNT)), health=health)


def engine(db: Database) -> Engine:
    memory = db.memory_mib
    match db.kind:
        case DatabaseKind.MYSQL:
            return Engine(
                data_path="/var/lib/mysql",
                health="mysqladmin ping -h 127.0.0.1 --silent",
                credential_env="MYSQL_ROOT_PASSWORD",
                exec_args=(
                    f"--innodb-buffer-pool-size={max(memory // 4, 8)}M",
                    "--performance-schema=OFF",
                    "--max-connections=60",
                    "--innodb-log-buffer-size=8M",
                ),
            )
        case DatabaseKind.POSTGRES:
            return Engine(
                data_path="/var/lib/postgresql/data",
                health=f"pg_isready -h 127.0.0.1 -U {POSTGRES_SUPERUSER}",
                credential_env="POSTGRES_PASSWORD",
                environment={"POSTGRES_USER": POSTGRES_SUPERUSER},
                exec_args=(
                    "postgres",
                    "-c",
                    f"shared_buffers={max(memory // 4, 16)}MB",
                    "-c",
                    "max_connections=40",
                    "-c",
                    "work_mem=2MB",
                ),
            )
        case DatabaseKind.REDIS:
            # The password lives in a config file, never in redis-server's argv.
            return Engine(
                data_path="/data",
                health="redis-cli -h 127.0.0.1 ping",
                credential_mount="/usr/local/etc/redis/auth.conf",
                exec_args=(
                    "redis-server",
                    "/usr/local/etc/redis/auth.conf",
                    "--maxmemory",
                    f"{memory * 3 // 4}mb",
                    "--maxmemory-policy",
                    "allkeys-lru",
                    "--appendonly",
                    "yes",
                ),
            )
        case DatabaseKind.NEO4J:
            assert db.jvm is not None
            return Engine(
                data_path="/data",
                health="wget -q -O /dev/null http://127.0.0.1:7474",
                credential_env="NEO4J_AUTH",
                environment={
                    "NEO4J_server_memory_heap_initial__size": f"{db.jvm.heap_mib}m",
                    "NEO4J_server_memory_heap_max__size": f"{db.jvm.heap_mib}m",
                    "NEO4J_server_memory_pagecache_size": f"{db.jvm.page_cache_mib}m",
                    "NEO4J_db_memory_transaction_total_max": f"{db.jvm.transaction_mib}m",
                },
            )
        case DatabaseKind.ELASTICSEARCH:
            assert db.jvm is not None
            return Engine(
                data_path="/usr/share/elasticsearch/data",
                # Any HTTP answer (401 included) means the node is up; no credentials needed.
                health="curl -s -o /dev/null http://127.0.0.1:9200/",
                credential_env="ELASTIC_PASSWORD",
                environment={
                    "discovery.type": "single-node",
                    "ES_JAVA_OPTS": f"-Xms{db.jvm.heap_mib}m -Xmx{db.jvm.heap_mib}m",
                    "xpack.security.enabled": "true",
                    "bootstrap.memory_lock": "false",
                    # The snapshot repository the backup writes into (inside the data volume, so the
                    # host archives it; components/backups.py reads this value).
                    "path.repo": "/usr/share/elasticsearch/data/platform-snapshots",
                },
            )
        case DatabaseKind.WEAVIATE:
            return Engine(
                data_path="/var/lib/weaviate",
                health="wget -q -O /dev/null http://127.0.0.1:8080/v1/.well-known/ready",
                credential_env="AUTHENTICATION_APIKEY_ALLOWED_KEYS",
                environment={
                    "LIMIT_RESOURCES": "true",
                    "GOMEMLIMIT": f"{memory * 8 // 10}MiB",
                    "PERSISTENCE_DATA_PATH": "/var/lib/weaviate",
                    "DEFAULT_VECTORIZER_MODULE": "none",
                    "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
                    "AUTHENTICATION_APIKEY_ENABLED": "true",
                    "AUTHENTICATION_APIKEY_USERS": "admin",
                    "QUERY_DEFAULTS_LIMIT": "25",
                    # The backup module the backup uses, writing inside the data volume (the host
                    # archives each backup; components/backups.py reads this value).
                    "ENABLE_MODULES": "backup-filesystem",
                    "BACKUP_FILESYSTEM_PATH": "/var/lib/weaviate/platform-backups",
                },
            )


def secret_file(name: str, paths: Paths) -> str:
    """The host's 0600 copy, from which the Podman secret named like the database is made."""
    return f"{paths.secrets}/{name}.secret"


def data_dir(name: str, paths: Paths) -> str:
    """Where a database keeps its data: named after the database alone, so retiring needs no more."""
    return f"{paths.data}/{name}"


def secret_content(
    db: Database, password: str, replication_password: str | None = None, exporter_acl: str | None = None
) -> str:
    """What reaches the host on stdin: the secret's exact value (an env secret has no newline).

    ``replication_password``: a Redis replication source's auth file also defines the ACL user its
    replicas log in as, allowed only what replication needs, by the password's SHA-256 (so the
    source host never keeps that password itself). The other engines' replication users are made
    by components/replication.py: source_step. ``exporter_acl``: the Redis exporter's user line
    (components/exporters.py: redis_acl_line), when the monitoring watches this database.
    """
    match db.kind:
        case DatabaseKind.REDIS:
            auth = f"requirepass {redis_string(password)}\n"
            if replication_password is not None:
                digest = hashlib.sha256(replication_password.encode()).hexdigest()
                auth += f"user {REPLICATION_USER} reset on #{digest} +psync +replconf +ping\n"
            return auth + (exporter_acl or "")
        case DatabaseKind.NEO4J:
            return f"neo4j/{password}"
        case _:
            return password


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
