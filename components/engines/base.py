"""What every engine module shares: the settings an engine runs with, and the TLS layout of a
replication source's container."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field


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
# The exporters' user: one name for every engine (MySQL, PostgreSQL and Redis ACL names all accept it).
EXPORTER_USER = "platform_exporter"


def tls_files(tls_path: str) -> tuple[str, str, str]:
    """The CA, certificate and key a replication source reads from ``tls_path``."""
    ca, cert, key = (f"{tls_path}/{file}" for file in (TLS_CA, TLS_CERT, TLS_KEY))
    return ca, cert, key


def server_id(name: str) -> int:
    """A replication source's MySQL server id: stable per database name, never 1 (every fresh MySQL's
    default, so a replica that kept it still differs) nor 0 (replication off)."""
    return 2 + zlib.crc32(f"platform/{name}".encode()) % (2**32 - 3)
