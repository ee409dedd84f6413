"""The database exporters (MySQL, PostgreSQL, Redis) on the Alibaba host: the user each logs in
as, its credential file and its command line.

Each exporter logs in as its own user, allowed what its metrics need and nothing else: MySQL
``PROCESS, REPLICATION CLIENT`` and ``SELECT`` on ``performance_schema``; PostgreSQL
``pg_monitor``; Redis an ACL user with ``INFO``, ``PING`` and the read-only diagnostics (not
``CONFIG GET``, which would hand it the admin password). Its password is derived from the
database's own (HMAC-SHA256), so it is a secret that rotates with it and never needs storing
anywhere but the host: the step (``db_exporter.sh``) makes the user and writes the file the
exporter's unit loads with ``LoadCredential=``.
"""

from __future__ import annotations

import hashlib
import hmac

import pulumi

from components.engines import POSTGRES_SUPERUSER, hook, secret_file
from components.provisioning import Step
from components.replication import LIB
from plan import Database, DatabaseKind, Layout, Paths

# One name for every engine: MySQL, PostgreSQL and Redis ACL names all accept it.
EXPORTER_USER = "platform_exporter"
# Chosen here: an exporter opens one connection per scrape; three leaves room for a slow one.
EXPORTER_CONNECTIONS = 3
# What the Redis exporter runs for its metrics (redis_exporter 1.45: INFO ALL, the slow log,
# latency, client list and key-space size), and nothing that reads or writes data.
REDIS_EXPORTER_COMMANDS = (
    "+ping",
    "+info",
    "+select",
    "+dbsize",
    "+client|list",
    "+slowlog|get",
    "+slowlog|len",
    "+latency|latest",
)
# What each exporter's credential file is called (under paths.secrets/monitoring, and in its
# unit's credentials directory).
CREDENTIAL = {
    "mysqld-exporter": "mysqld-exporter.cnf",
    "postgres-exporter": "postgres-exporter.password",
    "redis-exporter": "redis-exporter.json",
}


def exporter_password(database_password: str, db: Database) -> str:
    """The exporter's password: 64 hex characters, derived from the database's (a secret as it is)."""
    message = f"platform/exporter/{db.name}".encode()
    return hmac.new(database_password.encode(), message, hashlib.sha256).hexdigest()


def redis_acl_line(password: str) -> str:
    """The exporter's user in a Redis auth file, by its password's SHA-256."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return f"user {EXPORTER_USER} reset on #{digest} -@all {' '.join(REDIS_EXPORTER_COMMANDS)}\n"


def unit_name(program: str) -> str:
    """A monitoring program's unit (components/monitoring.py installs it)."""
    return f"platform-mon-{program}.service"


def credential_file(paths: Paths, exporter: str) -> str:
    return f"{paths.secrets}/monitoring/{CREDENTIAL[exporter]}"


def redis_url(db: Database, tls_only: bool) -> str:
    """A replication source's Redis speaks TLS only on its port (components/engines/redis)."""
    scheme = "rediss" if tls_only else "redis"
    return f"{scheme}://127.0.0.1:{db.ports[0].port}"


def arguments(exporter: str, db: Database, tls_only: bool) -> tuple[list[str], list[str]]:
    """The arguments of ``db``'s exporter and its unit's Environment= words, reading its credential
    from the unit's credentials directory (``%d``); the engine is reached on its published port on
    loopback. ``tls_only``: the engine's port speaks TLS only (a Redis replication source)."""
    credential = f"%d/{CREDENTIAL[exporter]}"
    port = db.ports[0].port
    match exporter:
        case "mysqld-exporter":
            return [f"--config.my-cnf={credential}"], []
        case "postgres-exporter":
            # The hop is host to container on loopback; the replication role alone needs TLS.
            environment = [
                f"DATA_SOURCE_URI=127.0.0.1:{port}/postgres?sslmode=disable",
                f"DATA_SOURCE_USER={EXPORTER_USER}",
                f"DATA_SOURCE_PASS_FILE={credential}",
            ]
            return [], environment
        case "redis-exporter":
            tls = ["-skip-tls-verification"] if tls_only else []
            # The certificate names the host's public address, not loopback: the hop stays on the host.
            return [
                f"-redis.addr={redis_url(db, tls_only)}",
                f"-redis.user={EXPORTER_USER}",
                f"-redis.password-file={credential}",
                "-config-command=-",
                *tls,
            ], []
        case _:
            raise ValueError(f"{exporter} is not a database exporter")


def exporter_step(
    component: str, layout: Layout, exporter: str, db: Database, tls_only: bool, stdin: pulumi.Input[str]
) -> Step:
    """The user of ``exporter`` in ``db``, the database it watches, and its credential file (stdin:
    ``exporter_password``); after the database's container."""
    paths = layout.paths
    params: dict[str, str | int] = {
        "NAME": db.name,
        "KIND": db.kind.value,
        "EXPORTER_USER": EXPORTER_USER,
        "CONNECTIONS": EXPORTER_CONNECTIONS,
        "SECRET_FILE": secret_file(db.name, paths),
        "PG_SUPERUSER": POSTGRES_SUPERUSER,
        "STATE_DIR": paths.state,
        "PORT": db.ports[0].port,
        "REDIS_URL": redis_url(db, tls_only) if db.kind == DatabaseKind.REDIS else "",
        "REDIS_COMMANDS": " ".join(REDIS_EXPORTER_COMMANDS),
        "CREDENTIAL_FILE": credential_file(paths, exporter),
        "UNIT": unit_name(exporter),
    }
    return Step(
        f"{component}-exporter-{db.name}",
        files=(LIB, hook(db.kind, "exporter"), "db_exporter.sh"),
        params=params,
        label=f"platform-exporter-{db.name}",
        stdin=stdin,
        handles_secrets=True,
        sudo=layout.sudo,
    )
