"""PostgreSQL: its settings, its superuser (the client user) and its replication settings."""

from __future__ import annotations

from components.engines.base import EXPORTER_USER, Engine, tls_files
from plan import Database

# The superuser (and its database) the postgres image creates from POSTGRES_USER.
SUPERUSER = "future_user"
BACKUP_USER = SUPERUSER  # who the backup runner connects as: the engine's administrator
# Chosen here: the least scratch memory the restore drill restores PostgreSQL in (a small
# dataset, 8 MB of shared_buffers); below it the drill verifies the archive only (see mysql.py).
DRILL_SCRATCH_MIN_MIB = 48


def settings(db: Database) -> Engine:
    return Engine(
        data_path="/var/lib/postgresql/data",
        health=f"pg_isready -h 127.0.0.1 -U {SUPERUSER}",
        credential_env="POSTGRES_PASSWORD",
        environment={"POSTGRES_USER": SUPERUSER},
        exec_args=(
            "postgres",
            "-c",
            f"shared_buffers={max(db.memory_mib // 4, 16)}MB",
            "-c",
            "max_connections=40",
            "-c",
            "work_mem=2MB",
        ),
    )


def replication_args(db: Database, tls_path: str) -> tuple[str, ...]:
    _, cert, key = tls_files(tls_path)
    values = {"wal_level": "logical", "ssl": "on", "ssl_cert_file": cert, "ssl_key_file": key}
    return tuple(word for name, value in values.items() for word in ("-c", f"{name}={value}"))


# Its exporter (postgres-exporter) reads the password from a file.
EXPORTER_CREDENTIAL = "postgres-exporter.password"


def exporter_arguments(db: Database, credential: str, tls_only: bool) -> tuple[list[str], list[str]]:
    """The exporter's arguments and Environment= words; ``credential``: its file in the unit."""
    del tls_only  # the hop is host to container on loopback; the replication role alone needs TLS
    environment = [
        f"DATA_SOURCE_URI=127.0.0.1:{db.ports[0].port}/postgres?sslmode=disable",
        f"DATA_SOURCE_USER={EXPORTER_USER}",
        f"DATA_SOURCE_PASS_FILE={credential}",
    ]
    return [], environment
