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

from components.engines import KINDS
from components.engines import redis as redis_engine
from components.engines.base import EXPORTER_USER
from components.provisioning import Step
from components.replication import in_container_step
from plan import EXPORTER_OF_KIND, Database, DatabaseKind, Layout, Paths

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
# unit's credentials directory): its engine module says.
CREDENTIAL = {
    EXPORTER_OF_KIND[kind.value]: module.EXPORTER_CREDENTIAL
    for kind, module in KINDS.items()
    if hasattr(module, "EXPORTER_CREDENTIAL")
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


def arguments(exporter: str, db: Database, tls_only: bool) -> tuple[list[str], list[str]]:
    """The arguments of ``db``'s exporter and its unit's Environment= words (its engine module's
    ``exporter_arguments``), reading its credential from the unit's credentials directory (``%d``);
    the engine is reached on its published port on loopback. ``tls_only``: the engine's port speaks
    TLS only (a Redis replication source)."""
    if CREDENTIAL.get(exporter) is None or EXPORTER_OF_KIND.get(db.kind.value) != exporter:
        raise ValueError(f"{exporter} is not the exporter of {db.name} ({db.kind.value})")
    return KINDS[db.kind].exporter_arguments(db, f"%d/{CREDENTIAL[exporter]}", tls_only)


def exporter_step(
    component: str, layout: Layout, exporter: str, db: Database, tls_only: bool, stdin: pulumi.Input[str]
) -> Step:
    """The user of ``exporter`` in ``db``, the database it watches, and its credential file (stdin:
    ``exporter_password``); after the database's container."""
    paths = layout.paths
    params: dict[str, str | int] = {
        "EXPORTER_USER": EXPORTER_USER,
        "CONNECTIONS": EXPORTER_CONNECTIONS,
        "PORT": db.ports[0].port,
        "REDIS_URL": redis_engine.url(db, tls_only) if db.kind == DatabaseKind.REDIS else "",
        "REDIS_COMMANDS": " ".join(REDIS_EXPORTER_COMMANDS),
        "CREDENTIAL_FILE": credential_file(paths, exporter),
        "UNIT": unit_name(exporter),
    }
    return in_container_step(component, layout, db, ("exporter", "exporter", "db_exporter.sh"), params, stdin)
