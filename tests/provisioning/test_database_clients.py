"""The other host's services as users of the Alibaba databases, with real engines on loopback.

Per engine (MariaDB 10.11, PostgreSQL 15, Redis 7 from Debian), started with the TLS settings its
unit renders (``engines.replication_args``) and the TLS files the real ``repl_tls.sh`` wrote; for
MySQL and PostgreSQL the real ``db_clients.sh`` run over SSH as its command runs it (the passwords
on stdin), for Redis the auth file its container step writes (``secret_content``). Then, as a
service on the peer connects (the peer is 127.0.0.1 here, as in test_replication.py):

- its own user, verifying the certificate against the program's CA, gets in and works in what
  it owns;
- the same login in plain text is refused, and so is a client that verifies against another CA;
- it cannot read another client's database (or keys);
- a client that leaves the plan loses its login and keeps its data; a second run changes nothing.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.clients import clients_stdin, clients_step
from components.engines import replication_args, secret_content, secret_file
from plan import Database, Plan, client_database
from tests.provisioning import real_engines, test_replication
from tests.provisioning.harness import SshHost, password_for
from tests.provisioning.real_engines import Tls, start_redis_source
from tests.provisioning.test_replication import (
    PEER,
    Pki,
    alibaba_plan,
    expect,
    ok,
    prepare_source,
    psql_in,
    repl_password,
    run_client,
    skip_unless,
    source_database,
    start_postgres_source,
)

CLIENTS = ("looma-crm", "zervigo")
CONNECT_TIMEOUT_S = 5  # a dropped SYN is never answered
# The replication tests' fixtures: a CA and another one, and what each test started.
pki = test_replication.pki
cleanup = test_replication.cleanup


def client_password(db: str, client: str) -> str:
    return password_for(f"client-{db}-{client}")


def serving(database: dict[str, Any], *clients: str) -> dict[str, Any]:
    return {**database, "clients": list(clients)}


def served(host: SshHost, plan: Plan, db: Database) -> Any:
    """Run the clients' step for ``db`` as its command runs (the passwords of its clients on stdin)."""
    step = clients_step("alibaba-db", plan.layout, plan.firewall.peer_address, db, "")
    stdin = clients_stdin({client: client_password(db.name, client) for client in db.clients})
    return host.step(step, stdin)


def only_client(host: SshHost, database: dict[str, Any], client: str) -> tuple[Plan, Database]:
    """The plan again with one client left (the next `up` after a stack file drops the other)."""
    return alibaba_plan(host, serving(database, client))


# --- MySQL -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    """Where and as whom a service connects (what its unit gives it: DB_<NAME>_HOST, _PORT, _USER,
    _NAME), and ``via``: the command that enters the namespace it runs in (none on loopback)."""

    host: str
    port: int
    user: str
    database: str  # its own database, or on Redis its key prefix
    password: str
    via: tuple[str, ...] = ()

    def run(
        self, argv: list[str], stdin: str = "", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_client([*self.via, *argv], env=env, stdin=stdin)


def loopback(db: str, client: str, port: int) -> Login:
    """A client's login from the peer, which is 127.0.0.1 on loopback."""
    return Login(PEER, port, client, client_database(client), client_password(db, client))


def mysql_as(login: Login, *tls: str, sql: str = "SELECT CURRENT_USER()") -> subprocess.CompletedProcess[str]:
    """A service's login (the password on stdin, an option file as a client keeps it)."""
    options = f"[client]\nuser={login.user}\npassword={login.password}\n"
    return login.run(
        ["/usr/bin/mariadb", "--defaults-file=/dev/stdin", "--protocol=TCP", "-h", login.host, "-P", str(login.port),
         f"--connect-timeout={CONNECT_TIMEOUT_S}", *tls, "-N", "-B", "-e", sql],
        stdin=options,
    )  # fmt: skip


def test_mysql_clients_have_their_own_database_over_verified_tls_only(
    host: SshHost, pki: Pki, tmp_path: Path, cleanup: list[Any]
) -> None:
    skip_unless("mysql")
    database = source_database("mysql", "production-mysql", "docker.io/library/mariadb:10.11", 3306)
    alibaba, db = alibaba_plan(host, serving(database, *CLIENTS))
    tls = prepare_source(host, alibaba, db, pki)
    primary = real_engines.start_mysql(tmp_path / "primary", extra_args=replication_args(db, str(tls)))
    cleanup.append(primary)
    real_engines.attach(primary, db.name, host.standin_state)
    as_looma, as_zervigo = (loopback(db.name, client, primary.port) for client in CLIENTS)

    first = ok(served(host, alibaba, db))
    for client in CLIENTS:
        assert f"user {client}@{PEER}: " in first.stdout, first
        grants = primary.query(f"SHOW GRANTS FOR '{client}'@'{PEER}'")
        assert grants.count("GRANT ") == 2, grants  # USAGE, and its own database's
        assert f"ON `{client.replace('-', '_')}`.* TO" in grants, grants
        assert "GRANT OPTION" not in grants, grants
        assert "ALL PRIVILEGES" not in grants, grants
    again = ok(served(host, alibaba, db))
    assert "production-mysql: unchanged (clients: looma-crm zervigo)" in again.stdout, again

    verify = ("--ssl", f"--ssl-ca={pki.good.ca}", "--ssl-verify-server-cert")
    secret_table = "CREATE TABLE zervigo.secrets (v TEXT); INSERT INTO zervigo.secrets VALUES ('z')"
    zervigo = mysql_as(as_zervigo, *verify, sql=secret_table)
    assert zervigo.returncode == 0, zervigo
    # Its own user, over TLS verified against the program's CA: it works in its own database.
    looma = mysql_as(as_looma, *verify,
                     sql="CREATE TABLE looma_crm.items (id INT PRIMARY KEY); INSERT INTO looma_crm.items VALUES (1);"
                     " SELECT CURRENT_USER(), count(*) FROM looma_crm.items")  # fmt: skip
    assert looma.stdout.split() == [f"looma-crm@{PEER}", "1"], looma
    # Plain text: refused (REQUIRE SSL). Another CA: the client refuses the server.
    plain = mysql_as(as_looma, "--skip-ssl")
    assert plain.returncode != 0, plain
    assert "Access denied" in plain.stderr, plain
    wrong = mysql_as(as_looma, "--ssl", f"--ssl-ca={pki.wrong.ca}", "--ssl-verify-server-cert")
    assert wrong.returncode != 0, wrong
    assert "certificate" in wrong.stderr.lower(), wrong
    # Another service's database: denied.
    other = mysql_as(as_looma, *verify, sql="SELECT * FROM zervigo.secrets")
    assert other.returncode != 0, other
    assert "denied" in other.stderr, other

    # zervigo leaves the plan: its user goes, its data stays.
    remaining, db = only_client(host, database, "looma-crm")
    dropped = ok(served(host, remaining, db))
    assert f"user zervigo@{PEER} dropped (no longer a client); its database kept as it is" in dropped.stdout, dropped
    gone = mysql_as(as_zervigo, *verify)
    assert gone.returncode != 0, gone
    assert "Access denied" in gone.stderr, gone
    assert primary.query("SELECT v FROM zervigo.secrets") == "z"
    assert mysql_as(as_looma, *verify).returncode == 0
    expect(served(host, remaining, db), 0, "production-mysql: unchanged (clients: looma-crm)")


# --- PostgreSQL ------------------------------------------------------------------------------------


def psql_as(
    login: Login, options: str, sql: str = "SELECT current_user", database: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"PGPASSWORD": login.password, "PATH": "/usr/bin:/bin"}
    where = f"host={login.host} port={login.port} user={login.user} dbname={database or login.database}"
    return login.run(["psql", "-XAtc", sql, f"{where} connect_timeout={CONNECT_TIMEOUT_S} {options}"], env=env)


def test_postgres_clients_have_their_own_database_over_verified_tls_only(
    host: SshHost, pki: Pki, tmp_path: Path, cleanup: list[Any]
) -> None:
    skip_unless("postgres")
    database = source_database("postgres", "production-postgres", "docker.io/library/postgres:16", 5432)
    alibaba, db = alibaba_plan(host, serving(database, *CLIENTS))
    tls = prepare_source(host, alibaba, db, pki, owner=real_engines.PG_USER)
    primary = start_postgres_source(host, db, tls, tmp_path / "primary", cleanup)
    as_looma, as_zervigo = (loopback(db.name, client, primary.port) for client in CLIENTS)

    first = ok(served(host, alibaba, db))
    for client in CLIENTS:
        assert f"role {client}: LOGIN only, owner of {client.replace('-', '_')}" in first.stdout, first
    again = ok(served(host, alibaba, db))
    assert "production-postgres: unchanged (clients: looma-crm zervigo)" in again.stdout, again

    verify = f"sslmode=verify-full sslrootcert={pki.good.ca}"
    made = psql_as(as_zervigo, verify, "CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('z')")
    assert made.returncode == 0, made
    ssl = "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    looma = psql_as(as_looma, verify, ssl)
    assert looma.stdout.strip() == "looma-crm|t", looma
    plain = psql_as(as_looma, "sslmode=disable")
    assert "pg_hba.conf rejects" in plain.stderr, plain
    wrong = psql_as(as_looma, f"sslmode=verify-full sslrootcert={pki.wrong.ca}")
    assert "certificate verify failed" in wrong.stderr, wrong
    # Another service's database: no way in (pg_hba), and PUBLIC may not connect to it.
    other = psql_as(as_looma, verify, "SELECT * FROM secrets", database="zervigo")
    assert other.returncode != 0, other
    assert "pg_hba.conf rejects" in other.stderr, other
    assert psql_in(primary, "postgres", "SELECT has_database_privilege('looma-crm', 'zervigo', 'CONNECT')") == "f"

    remaining, db = only_client(host, database, "looma-crm")
    dropped = ok(served(host, remaining, db))
    assert "role zervigo: NOLOGIN (no longer a client); its database kept as it is" in dropped.stdout, dropped
    gone = psql_as(as_zervigo, verify)
    assert gone.returncode != 0, gone
    assert psql_in(primary, "zervigo", "SELECT v FROM secrets") == "z"
    assert psql_as(as_looma, verify).returncode == 0
    expect(served(host, remaining, db), 0, "production-postgres: unchanged (clients: looma-crm)")


# --- Redis -----------------------------------------------------------------------------------------


def redis_as(login: Login, *tls: str, command: str) -> subprocess.CompletedProcess[str]:
    """A service's commands after AUTH as its own user (the password on stdin, never argv); redis-cli
    has no connect timeout, so ``timeout`` bounds a connection that is never answered."""
    text = f"AUTH {login.user} {login.password}\n{command}\n"
    redis_cli = ["redis-cli", "-h", login.host, "-p", str(login.port), *tls]
    return login.run(["timeout", str(CONNECT_TIMEOUT_S), *redis_cli], stdin=text)


def test_redis_clients_have_their_own_keys_over_verified_tls_only(
    host: SshHost, pki: Pki, tmp_path: Path, cleanup: list[Any]
) -> None:
    skip_unless("redis")
    alibaba, db = alibaba_plan(
        host, serving(source_database("redis", "production-redis", "docker.io/library/redis:7", 6379), *CLIENTS)
    )
    tls = prepare_source(host, alibaba, db, pki)
    # The auth file as its container step writes it: the clients' users beside the replication user.
    auth = Path(secret_file(db.name, alibaba.paths))
    clients = {client: client_password(db.name, client) for client in CLIENTS}
    auth.write_text(secret_content(db, password_for(db.name), repl_password(db.name), None, clients))
    files = Tls(ca=tls / "ca.crt", cert=tls / "server.crt", key=tls / "server.key")
    primary = start_redis_source(tmp_path / "primary", auth, files, password_for(db.name))
    cleanup.append(primary)
    as_looma, as_zervigo = (loopback(db.name, client, primary.port) for client in CLIENTS)

    verify = ("--tls", "--cacert", str(pki.good.ca))
    written = redis_as(as_zervigo, *verify, command="SET zervigo:token z")
    assert written.stdout.split() == ["OK", "OK"], written
    looma = redis_as(as_looma, *verify, command="SET looma-crm:k 1")
    assert looma.stdout.split() == ["OK", "OK"], looma
    # Another service's keys, or a key outside its prefix: no permission.
    for command in ("GET zervigo:token", "SET shared 1", "KEYS *", "CONFIG GET requirepass"):
        refused = redis_as(as_looma, *verify, command=command)
        assert "NOPERM" in refused.stdout, (command, refused)
    # Plain text: the port speaks TLS only. Another CA: the client refuses the server.
    plain = redis_as(as_looma, command="PING")
    assert "PONG" not in plain.stdout, plain
    wrong = redis_as(as_looma, "--tls", "--cacert", str(pki.wrong.ca), command="PING")
    assert "PONG" not in wrong.stdout, wrong
    assert "certificate verify failed" in wrong.stderr, wrong
