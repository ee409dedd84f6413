"""MySQL (or MariaDB, by the image's name): its settings, its client user and its replication flags."""

from __future__ import annotations

from typing import Literal

from components.engines.base import Engine, server_id, tls_files
from plan import Database

BACKUP_USER = "root"  # who the backup runner connects as: the engine's administrator
# Chosen here: the least scratch memory the restore drill restores MySQL in (a small dataset):
# MySQL 8 with a tiny buffer pool and no performance_schema. Below it the drill verifies the
# archive and says why it did not restore it, rather than failing every week on an OOM kill.
DRILL_SCRATCH_MIN_MIB = 256


def flavour(db: Database) -> Literal["mariadb", "mysql"]:
    """MariaDB or Oracle MySQL, from the image's repository name (their flags differ)."""
    repository = db.image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return "mariadb" if "mariadb" in repository else "mysql"


def settings(db: Database) -> Engine:
    return Engine(
        data_path="/var/lib/mysql",
        health="mysqladmin ping -h 127.0.0.1 --silent",
        credential_env="MYSQL_ROOT_PASSWORD",
        exec_args=(
            f"--innodb-buffer-pool-size={max(db.memory_mib // 4, 8)}M",
            "--performance-schema=OFF",
            "--max-connections=60",
            "--innodb-log-buffer-size=8M",
        ),
    )


def replication_args(db: Database, tls_path: str) -> tuple[str, ...]:
    ca, cert, key = tls_files(tls_path)
    # MariaDB always has GTIDs; Oracle MySQL turns them on with two flags.
    gtids = ("--gtid-mode=ON", "--enforce-gtid-consistency=ON") if flavour(db) == "mysql" else ()
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


# Its exporter (mysqld-exporter) reads a client option file as its credential.
EXPORTER_CREDENTIAL = "mysqld-exporter.cnf"


def exporter_arguments(db: Database, credential: str, tls_only: bool) -> tuple[list[str], list[str]]:
    """The exporter's arguments and Environment= words; ``credential``: its file in the unit."""
    del db, tls_only  # the option file names the port; MySQL's port speaks TLS and plain text alike
    return [f"--config.my-cnf={credential}"], []
