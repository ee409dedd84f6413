"""The other host's services as users of the Alibaba databases (``plan.Database.clients``).

Each client gets a user of its own, a generated password (components/pki.py), rights on what it
owns only (its database on MySQL and PostgreSQL, its key prefix on Redis) and a way in from the
peer only, over TLS that it verifies against the program's CA. MySQL's and PostgreSQL's users are
made by ``clients_step`` (``db_clients.sh``) after the container; Redis's are lines of the
engine's auth file, which the container's own step installs (components/engines/redis).

The Alibaba stack exports each client's user and database (``databases``) and password
(``databaseClientPasswords``, secret); the Tencent services read them through the StackReference
(components/services.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from components.provisioning import Step
from components.replication import in_container_step
from plan import Database, DatabaseKind, Layout

# The kinds whose clients a step makes (Redis's are in its auth file).
STEP_KINDS = (DatabaseKind.MYSQL, DatabaseKind.POSTGRES)
# Chosen here: what a service that owns its schema needs on its own database (its migrations
# create, alter and drop tables and views), and nothing on any other: no GRANT OPTION, no
# FILE, PROCESS or SUPER, no EVENT or TRIGGER.
MYSQL_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES, "
    "CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW, EXECUTE"
)


def clients_stdin(passwords: Mapping[str, str]) -> str:
    """``CLIENT PASSWORD`` per line (the passwords are letters and digits: components/pki.py; a
    space or a line break would split the line)."""
    for client, password in passwords.items():
        if not password or any(character.isspace() for character in password):
            raise ValueError(f"the password of client {client} is empty or holds white space")
    return "".join(f"{client} {password}\n" for client, password in sorted(passwords.items()))


def clients_step(component: str, layout: Layout, peer_address: str, db: Database, stdin: pulumi.Input[str]) -> Step:
    """The users of ``db``'s clients, and the former clients' logins taken away (stdin:
    ``clients_stdin``); after its container, and after its replication user's step (both edit a
    PostgreSQL's pg_hba.conf)."""
    if db.kind not in STEP_KINDS:
        raise ValueError(f"{db.name}: {db.kind}'s clients are not made by a step")
    params = {"PEER": peer_address, "CLIENTS": " ".join(db.clients), "PRIVILEGES": MYSQL_PRIVILEGES}
    return in_container_step(component, layout, db, ("clients", "clients", "db_clients.sh"), params, stdin)
