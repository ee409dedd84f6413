"""Neo4j: its JVM settings from the plan's ``jvm`` and its ``neo4j/<password>`` secret."""

from __future__ import annotations

from components.engines.base import Engine
from plan import Database

BACKUP_USER = "neo4j"  # who the backup runner connects as: the engine's administrator
# Neo4j Community dumps only a stopped database, in a sibling container that needs the engine's
# memory limit and heap (components/backups.py renders them for this engine alone).
DUMPS_OFFLINE = True


def settings(db: Database) -> Engine:
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


def secret_content(password: str, *_others: object) -> str:
    """NEO4J_AUTH's ``user/password`` (Neo4j defines no other users here)."""
    return f"neo4j/{password}"
