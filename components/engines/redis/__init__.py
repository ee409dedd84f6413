"""Redis: its settings (the password in a mounted auth file, never in argv), its auth file and its
TLS-only replication settings."""

from __future__ import annotations

import hashlib

from components.engines.base import EXPORTER_USER, Engine, tls_files
from components.formats import redis_string
from plan import ENGINE_PORTS, REPLICATION_USER, Database, DatabaseKind

CLIENT_USER = "default"
BACKUP_USER = "root"  # the backup runner's default (BGSAVE needs no user: it reads the auth file)
# Chosen here: the least scratch memory the restore drill restores Redis in (an empty Redis);
# below it the drill verifies the archive only (see mysql.py).
DRILL_SCRATCH_MIN_MIB = 16
# The port speaks TLS only once the database is a replication source. The check proves the engine
# answers on loopback inside its own container, where nothing is sent that needs a verified peer
# (the replicas verify).
TLS_HEALTH = "redis-cli --tls --insecure -h 127.0.0.1 ping"


def settings(db: Database) -> Engine:
    return Engine(
        data_path="/data",
        health="redis-cli -h 127.0.0.1 ping",
        credential_mount="/usr/local/etc/redis/auth.conf",
        exec_args=(
            "redis-server",
            "/usr/local/etc/redis/auth.conf",
            "--maxmemory",
            f"{db.memory_mib * 3 // 4}mb",
            "--maxmemory-policy",
            "allkeys-lru",
            "--appendonly",
            "yes",
        ),
    )


def replication_args(db: Database, tls_path: str) -> tuple[str, ...]:
    ca, cert, key = tls_files(tls_path)
    # TLS only on the engine's port: nothing reaches it in plaintext. Clients are not asked for
    # certificates (the replication user's password authenticates the replica).
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


def secret_content(password: str, replication_password: str | None, exporter_acl: str | None) -> str:
    """The auth file: the password and, on a replication source, the ACL user its replicas log in
    as, allowed only what replication needs, by the password's SHA-256 (so the source host never
    keeps that password itself); then the exporter's user line, when the monitoring watches it."""
    auth = f"requirepass {redis_string(password)}\n"
    if replication_password is not None:
        digest = hashlib.sha256(replication_password.encode()).hexdigest()
        auth += f"user {REPLICATION_USER} reset on #{digest} +psync +replconf +ping\n"
    return auth + (exporter_acl or "")


# Its exporter (redis_exporter) reads a JSON file of passwords by address.
EXPORTER_CREDENTIAL = "redis-exporter.json"


def url(db: Database, tls_only: bool) -> str:
    """Where a client on the host reaches it: a replication source's port speaks TLS only."""
    scheme = "rediss" if tls_only else "redis"
    return f"{scheme}://127.0.0.1:{db.ports[0].port}"


def exporter_arguments(db: Database, credential: str, tls_only: bool) -> tuple[list[str], list[str]]:
    """The exporter's arguments and Environment= words; ``credential``: its file in the unit."""
    # The certificate names the host's public address, not loopback: the hop stays on the host.
    tls = ["-skip-tls-verification"] if tls_only else []
    arguments = [
        f"-redis.addr={url(db, tls_only)}",
        f"-redis.user={EXPORTER_USER}",
        f"-redis.password-file={credential}",
        "-config-command=-",
        *tls,
    ]
    return arguments, []
