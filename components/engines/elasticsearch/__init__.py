"""Elasticsearch: single node, its heap from the plan's ``jvm``, its snapshot repository in the data volume."""

from __future__ import annotations

from components.engines.base import Engine
from plan import Database

BACKUP_USER = "elastic"  # who the backup runner connects as: the engine's administrator
DATA_PATH = "/usr/share/elasticsearch/data"


def settings(db: Database) -> Engine:
    assert db.jvm is not None
    return Engine(
        data_path=DATA_PATH,
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
            "path.repo": f"{DATA_PATH}/platform-snapshots",
        },
    )
