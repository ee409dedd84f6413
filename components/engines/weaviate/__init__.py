"""Weaviate: its Go memory limit from the plan, API-key authentication, its backup module in the data volume."""

from __future__ import annotations

from components.engines.base import Engine
from plan import Database

BACKUP_USER = "admin"  # the API key's user (AUTHENTICATION_APIKEY_USERS)
DATA_PATH = "/var/lib/weaviate"


def settings(db: Database) -> Engine:
    return Engine(
        data_path=DATA_PATH,
        health="wget -q -O /dev/null http://127.0.0.1:8080/v1/.well-known/ready",
        credential_env="AUTHENTICATION_APIKEY_ALLOWED_KEYS",
        environment={
            "LIMIT_RESOURCES": "true",
            "GOMEMLIMIT": f"{db.memory_mib * 8 // 10}MiB",
            "PERSISTENCE_DATA_PATH": DATA_PATH,
            "DEFAULT_VECTORIZER_MODULE": "none",
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
            "AUTHENTICATION_APIKEY_ENABLED": "true",
            "AUTHENTICATION_APIKEY_USERS": "admin",
            "QUERY_DEFAULTS_LIMIT": "25",
            # The backup module the backup uses, writing inside the data volume (the host
            # archives each backup; components/backups.py reads this value).
            "ENABLE_MODULES": "backup-filesystem",
            "BACKUP_FILESYSTEM_PATH": f"{DATA_PATH}/platform-backups",
        },
    )
