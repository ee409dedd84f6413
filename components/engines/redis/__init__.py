"""Redis: its settings (the password in a mounted auth file, never in argv), its auth file and its
TLS-only replication settings."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from components.engines.base import EXPORTER_USER, Engine, tls_files
from components.formats import redis_string
from plan import ENGINE_PORTS, REPLICATION_USER, Database, DatabaseKind, client_key_prefix

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


def secret_content(
    password: str, replication_password: str | None, exporter_acl: str | None, clients: Mapping[str, str]
) -> str:
    """The auth file: the password and, on a replication source, the ACL user its replicas log in
    as, allowed only what replication needs; then the exporter's user line, when the monitoring
    watches it; then one user per client, confined to its own keys and channels. Every user by its
    password's SHA-256, so the host never keeps those passwords themselves."""
    auth = f"requirepass {redis_string(password)}\n"
    if replication_password is not None:
        auth += f"user {REPLICATION_USER} reset on #{_digest(replication_password)} +psync +replconf +ping\n"
    auth += exporter_acl or ""
    for client, client_password in sorted(clients.items()):
        auth += client_acl_line(client, client_password)
    return auth


def client_acl_line(client: str, password: str) -> str:
    """A client's user: every command but the administrative and dangerous ones (CONFIG, KEYS,
    FLUSHALL, ...), on its own key prefix and channels only."""
    prefix = client_key_prefix(client)
    return f"user {client} reset on #{_digest(password)} ~{prefix}* &{prefix}* +@all -@admin -@dangerous\n"


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


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
