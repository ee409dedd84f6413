"""The Tencent services reach the Alibaba databases across the rehearsal's network as the two stacks
make them: each as its own user, over TLS verified against the program's CA, and no other way.

The rehearsal's stack files, with looma-crm and zervigo made clients of MySQL, PostgreSQL and Redis
(the shipped plans list none), are evaluated as ``make rehearse`` evaluates them, and each stack's
registered security-group rules are enforced as nftables in the namespace that plays its host
(``rehearsal.network``, ``rehearsal.nftables``). In the Alibaba namespace, Debian's MariaDB 10.11,
PostgreSQL 15 and Redis 7 listen on the plan's ports with the TLS settings their units render. The
users are made by the real ``db_clients.sh`` over SSH, for the peer the Alibaba plan names (the
Tencent namespace's address); the SSH host is tests.provisioning's on loopback, whose scripts reach
the engines through their sockets, which a network namespace does not separate. From the Tencent
namespace each service connects with what the Tencent stack renders into its unit
(``DB_<NAME>_HOST``, ``_PORT``, ``_USER``, ``_NAME``, ``_KEY_PREFIX``, ``_TLS``).

Replication crosses the network too: each Tencent engine (MariaDB, PostgreSQL, Redis) runs in the
Tencent namespace, and the real ``repl_replica.sh`` runs over SSH on an sshd in that namespace
(``SshHost(netns=...)``), so its probe of the source and the engine's replication connection leave
from the Tencent address through both groups; a write on the Alibaba primary reaches the replica.

Standing in: openssl's CA and server certificate (naming the Alibaba address) for pulumi-tls's, and
the test's passwords for the generated ones, the same on both sides as the StackReference hands them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.engines import replication_args, secret_content, secret_file
from plan import Database, Plan
from policies._rules import Rule
from rehearsal import FOLDER, Stack, evaluate
from rehearsal.flows import ADDRESSES
from rehearsal.network import Host, Network, cannot_run
from rehearsal.nftables import ruleset
from tests.provisioning import real_engines, test_replication
from tests.provisioning.harness import STATS, SshHost, password_for
from tests.provisioning.real_engines import Instance, Placement, Tls, start_redis_source
from tests.provisioning.test_database_clients import (
    CLIENTS,
    Login,
    client_password,
    mysql_as,
    psql_as,
    redis_as,
    served,
    serving,
)
from tests.provisioning.test_replication import (
    Pki,
    expect,
    ok,
    prepare_source,
    psql_in,
    public_dir,
    repl_password,
    replica_workload,
    replicate,
    set_up_source,
    skip_unless,
    source_database,
    source_output,
    start_postgres_source,
    start_redis_replica,
    tencent_plan,
    timed,
)
from tests.stacks import with_clients

ENGINES = ("production-mysql", "production-postgres", "production-redis")
MARIADB = "docker.io/library/mariadb:10.11"
WHY_NOT = cannot_run()
# What each test started (engines, the TLS mount), stopped in reverse order.
cleanup = test_replication.cleanup


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stack]:
    """The rehearsal's stacks with the two services as clients of the three engines (both sides)."""
    folder = tmp_path_factory.mktemp("stacks")
    alibaba = yaml.safe_load((FOLDER / "Pulumi.alibaba.yaml").read_text())
    patched = with_clients(**{name.replace("-", "_"): [str(c) for c in CLIENTS] for name in ENGINES})
    alibaba["config"]["platform:databases"] = patched["databases"]
    tencent = yaml.safe_load((FOLDER / "Pulumi.tencent.yaml").read_text())
    for service in tencent["config"]["platform:services"]:
        if service["name"] in CLIENTS:
            service["databases"] = list(ENGINES)
    for name, document in (("alibaba", alibaba), ("tencent", tencent)):
        (folder / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return evaluate(folder)


@pytest.fixture(scope="module")
def network(stacks: dict[str, Stack]) -> Iterator[Network]:
    """The two hosts and the Internet, each host's security group enforced as its stack registers it."""
    if WHY_NOT is not None:
        pytest.skip(f"rehearsal: {WHY_NOT}")
    hosts = [Host(name, (ADDRESSES[name],)) for name in stacks]
    hosts.append(Host("internet", (ADDRESSES["internet"],)))
    with Network(hosts) as made:
        for name, stack in stacks.items():
            made.enforce(name, ruleset(stack.rules(), stack.cloud))
        yield made


@pytest.fixture(scope="module")
def tencent_host(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHost]:
    """An SSH host whose sshd and sessions run in the Tencent namespace: a script run there sees the
    Tencent host's network, its security group included (the ``host`` fixture's needs hold here too)."""
    played = SshHost(tmp_path_factory.mktemp("tencent-host"), netns=network.namespace("tencent"))
    played.start()
    first_run = len(STATS.runs)
    try:
        yield played
    finally:
        played.stop()
    leaks = played.find_leaks(STATS.runs[first_run:])
    assert not leaks, "placeholder secrets leaked:\n" + "\n".join(leaks)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """The CA, and another one, each with a server certificate naming the Alibaba address."""
    alibaba = ADDRESSES["alibaba"]
    return Pki(
        good=real_engines.make_tls(tmp_path / "pki", ip=alibaba),
        wrong=real_engines.make_tls(tmp_path / "other-pki", ip=alibaba),
    )


def unit_login(stacks: dict[str, Stack], network: Network, service: str, db: str, role: str = "tencent") -> Login:
    """How ``service`` connects to ``db``: its unit's DB_<NAME>_* lines (as the Tencent stack renders
    them from the Alibaba stack's outputs), from the namespace of ``role``."""
    unit = stacks["tencent"].parameters(f"svc-{service}")["UNIT_CONTENT"]
    prefix = f"DB_{db.upper().replace('-', '_')}_"
    env = dict(
        line.removeprefix(f"Environment={prefix}").split("=", 1)
        for line in unit.splitlines()
        if line.startswith(f"Environment={prefix}")
    )
    assert env["TLS"] == "true", env
    database = env["NAME"] or env["KEY_PREFIX"]
    via = ("ip", "netns", "exec", network.namespace(role))
    return Login(env["HOST"], int(env["PORT"]), env["USER"], database, client_password(db, service), via)


def alibaba_engine(
    stacks: dict[str, Stack], network: Network, host: SshHost, pki: Pki, base: Path, cleanup: list[Any], name: str
) -> tuple[Plan, Database, Instance]:
    """The Alibaba database ``name`` as its unit runs it, in the Alibaba namespace on the plan's port:
    its plan on the loopback SSH host (for the peer the rehearsal's Alibaba plan names), its secret
    file and TLS files written by the real step, and ``podman exec <name>`` reaching it."""
    rehearsed = next(db for db in stacks["alibaba"].plan.databases if db.name == name)
    port = rehearsed.ports[0].port
    # MySQL is Debian's MariaDB here, so its plan says so (its unit's settings are MariaDB's then).
    image = MARIADB if rehearsed.kind.value == "mysql" else rehearsed.image
    database = serving(source_database(rehearsed.kind.value, name, image, port), *CLIENTS)
    plan = host.plan("alibaba", databases=[database])
    peer = stacks["alibaba"].plan.firewall.peer_address
    plan = plan.model_copy(update={"firewall": plan.firewall.model_copy(update={"peer_address": peer})})
    db, where = plan.databases[0], Placement(network.namespace("alibaba"), port)
    match db.kind.value:
        case "mysql":
            tls = prepare_source(host, plan, db, pki)
            engine = real_engines.start_mysql(base, extra_args=replication_args(db, str(tls)), placed=where)
            cleanup.append(engine)
        case "postgres":
            tls = prepare_source(host, plan, db, pki, owner=real_engines.PG_USER)
            return plan, db, start_postgres_source(host, db, tls, base, cleanup, placed=where)
        case _:
            tls = prepare_source(host, plan, db, pki)
            # The auth file as its container step writes it: the clients' users beside the replication user.
            auth = Path(secret_file(db.name, plan.paths))
            clients = {client: client_password(db.name, client) for client in CLIENTS}
            auth.write_text(secret_content(db, password_for(db.name), repl_password(db.name), None, clients))
            files = Tls(ca=tls / "ca.crt", cert=tls / "server.crt", key=tls / "server.key")
            engine = start_redis_source(base, auth, files, password_for(db.name), where)
            cleanup.append(engine)
    real_engines.attach(engine, db.name, host.standin_state, env={})
    return plan, db, engine


def tencent_replica(
    stacks: dict[str, Stack], network: Network, tencent_host: SshHost, base: Path, cleanup: list[Any], source: Database
) -> tuple[Instance, Plan, dict[str, Any]]:
    """The Tencent engine the shipped plan makes the replica of ``source``, native on the Tencent
    namespace's loopback at its plan's port; its plan on the SSH host in that namespace (the peer the
    Alibaba address), and the source as the Alibaba stack exports it."""
    existing = next(w for w in stacks["tencent"].plan.replicas if w.replica_of and w.replica_of.source == source.name)
    kind, port = source.kind.value, existing.ports[0].port
    at = Placement(network.namespace("tencent"), port, bind="127.0.0.1")
    match kind:
        case "mysql":
            replica = real_engines.start_mysql(base, server_id=2, placed=at)
        case "postgres":
            replica = real_engines.start_postgres(base, placed=at)
        case _:
            replica = start_redis_replica(base, at)
    cleanup.append(replica)
    workload = replica_workload(existing.name, kind, port, source.name)
    plan = tencent_plan(tencent_host, public_dir(cleanup, "platform-repl-"), workload)
    alibaba = ADDRESSES["alibaba"]
    plan = plan.model_copy(update={"firewall": plan.firewall.model_copy(update={"peer_address": alibaba})})
    return replica, plan, {**source_output(kind, source.ports[0].port), "sourceAddress": alibaba}


def logins(stacks: dict[str, Stack], network: Network, db: str) -> tuple[Login, Login, Login]:
    """looma-crm's and zervigo's logins from the Tencent host, and looma-crm's from the Internet host."""
    looma, zervigo = (unit_login(stacks, network, service, db) for service in CLIENTS)
    return looma, zervigo, unit_login(stacks, network, "looma-crm", db, role="internet")


def test_mysql_over_the_network_as_each_service_and_over_verified_tls_only(
    stacks: dict[str, Stack], network: Network, host: SshHost, pki: Pki, tmp_path: Path, cleanup: list[Any]
) -> None:
    skip_unless("mysql")
    plan, db, _ = alibaba_engine(stacks, network, host, pki, tmp_path / "engine", cleanup, "production-mysql")
    ok(served(host, plan, db))
    looma, zervigo, from_internet = logins(stacks, network, db.name)
    verify = ("--ssl", f"--ssl-ca={pki.good.ca}", "--ssl-verify-server-cert")

    assert mysql_as(zervigo, *verify, sql="CREATE TABLE zervigo.secrets (v TEXT)").returncode == 0
    own = mysql_as(looma, *verify, sql=f"CREATE TABLE {looma.database}.items (id INT); SELECT CURRENT_USER()")
    assert own.stdout.split() == [f"looma-crm@{ADDRESSES['tencent']}"], own
    plain = mysql_as(looma, "--skip-ssl")
    assert "Access denied" in plain.stderr, plain
    wrong = mysql_as(looma, "--ssl", f"--ssl-ca={pki.wrong.ca}", "--ssl-verify-server-cert")
    assert "certificate" in wrong.stderr.lower(), wrong
    other = mysql_as(looma, *verify, sql="SELECT * FROM zervigo.secrets")
    assert "denied" in other.stderr, other
    # The Alibaba group admits the peer only: the same login from the Internet host is never answered.
    outside = mysql_as(from_internet, *verify)
    assert "Can't connect" in outside.stderr, outside


def test_postgres_over_the_network_as_each_service_and_over_verified_tls_only(
    stacks: dict[str, Stack], network: Network, host: SshHost, pki: Pki, tmp_path: Path, cleanup: list[Any]
) -> None:
    skip_unless("postgres")
    plan, db, _ = alibaba_engine(stacks, network, host, pki, tmp_path / "engine", cleanup, "production-postgres")
    ok(served(host, plan, db))
    looma, zervigo, from_internet = logins(stacks, network, db.name)
    verify = f"sslmode=verify-full sslrootcert={pki.good.ca}"

    assert psql_as(zervigo, verify, "CREATE TABLE secrets (v text)").returncode == 0
    ssl = "SELECT current_user, ssl, inet_client_addr() FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    own = psql_as(looma, verify, ssl)
    assert own.stdout.strip() == f"looma-crm|t|{ADDRESSES['tencent']}", own
    plain = psql_as(looma, "sslmode=disable")
    assert "pg_hba.conf rejects" in plain.stderr, plain
    wrong = psql_as(looma, f"sslmode=verify-full sslrootcert={pki.wrong.ca}")
    assert "certificate verify failed" in wrong.stderr, wrong
    other = psql_as(looma, verify, "SELECT * FROM secrets", database=zervigo.database)
    assert "pg_hba.conf rejects" in other.stderr, other
    outside = psql_as(from_internet, verify)
    assert "timeout expired" in outside.stderr, outside


def test_redis_over_the_network_as_each_service_and_over_verified_tls_only(
    stacks: dict[str, Stack], network: Network, host: SshHost, pki: Pki, tmp_path: Path, cleanup: list[Any]
) -> None:
    skip_unless("redis")
    _, db, _ = alibaba_engine(stacks, network, host, pki, tmp_path / "engine", cleanup, "production-redis")
    looma, zervigo, from_internet = logins(stacks, network, db.name)
    verify = ("--tls", "--cacert", str(pki.good.ca))

    written = redis_as(zervigo, *verify, command=f"SET {zervigo.database}token z")
    assert written.stdout.split() == ["OK", "OK"], written
    own = redis_as(looma, *verify, command=f"SET {looma.database}k 1")
    assert own.stdout.split() == ["OK", "OK"], own
    for command in (f"GET {zervigo.database}token", "SET shared 1", "KEYS *"):
        refused = redis_as(looma, *verify, command=command)
        assert "NOPERM" in refused.stdout, (command, refused)
    plain = redis_as(looma, command="PING")
    assert "PONG" not in plain.stdout, plain
    wrong = redis_as(looma, "--tls", "--cacert", str(pki.wrong.ca), command="PING")
    assert "certificate verify failed" in wrong.stderr, wrong
    outside = redis_as(from_internet, *verify, command="PING")
    assert "PONG" not in outside.stdout, outside
    assert outside.returncode == 124, outside  # timeout: the SYN is dropped, never answered


def test_mysql_replication_carries_writes_across_the_network(
    stacks: dict[str, Stack],
    network: Network,
    host: SshHost,
    tencent_host: SshHost,
    pki: Pki,
    tmp_path: Path,
    cleanup: list[Any],
) -> None:
    """The Tencent MySQL follows the Alibaba one through both groups: the replica step runs over SSH
    on the Tencent namespace, and its engine's replication connection leaves from there."""
    skip_unless("mysql")
    plan, db, primary = alibaba_engine(stacks, network, host, pki, tmp_path / "primary", cleanup, "production-mysql")
    primary.query("CREATE DATABASE app; CREATE TABLE app.items (id INT PRIMARY KEY); INSERT INTO app.items VALUES (1)")
    set_up_source(host, plan, db)

    replica, tencent, source = tencent_replica(stacks, network, tencent_host, tmp_path / "replica", cleanup, db)
    run = replicate(tencent_host, tencent, source, pki.ca)
    expect(run, 0, f"replicates {db.name} from {ADDRESSES['alibaba']}:{source['port']}", "in sync")
    assert replica.query("SELECT id FROM app.items") == "1"
    primary.query("INSERT INTO app.items VALUES (2)")
    timed(lambda: replica.query("SELECT count(*) FROM app.items") == "2")
    # The connection the primary serves comes from the Tencent address, over TLS.
    (client,) = primary.query(
        "SELECT host FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'"
    ).split()
    assert client.startswith(f"{ADDRESSES['tencent']}:"), client


def without_egress_to(stack: Stack, port: int) -> list[Rule]:
    """The stack's rules but its outbound ones that open ``port``."""
    return [
        rule
        for rule in stack.rules()
        if not (rule.direction == "egress" and any(low <= port <= high for low, high in rule.ports or ()))
    ]


def test_postgres_replication_carries_writes_across_the_network(
    stacks: dict[str, Stack],
    network: Network,
    host: SshHost,
    tencent_host: SshHost,
    pki: Pki,
    tmp_path: Path,
    cleanup: list[Any],
) -> None:
    skip_unless("postgres")
    name = "production-postgres"
    plan, db, primary = alibaba_engine(stacks, network, host, pki, tmp_path / "primary", cleanup, name)
    primary.query("CREATE DATABASE future_user OWNER future_user;")
    psql_in(primary, "future_user", "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1);")
    set_up_source(host, plan, db)

    replica, tencent, source = tencent_replica(stacks, network, tencent_host, tmp_path / "replica", cleanup, db)
    # Without the Tencent group's way out to the source's port, the step says it cannot reach it.
    network.enforce("tencent", ruleset(without_egress_to(stacks["tencent"], source["port"]), "tencent"))
    try:
        unreached = replicate(tencent_host, tencent, source, pki.ca)
    finally:
        network.enforce("tencent", ruleset(stacks["tencent"].rules(), stacks["tencent"].cloud))
    expect(unreached, 6, f"{db.name} at {ADDRESSES['alibaba']}:{source['port']} cannot be reached from this host")
    run = replicate(tencent_host, tencent, source, pki.ca)
    expect(run, 0, "in sync")
    assert psql_in(replica, "future_user", "SELECT id FROM items") == "1"
    psql_in(primary, "future_user", "INSERT INTO items VALUES (2)")
    timed(lambda: psql_in(replica, "future_user", "SELECT count(*) FROM items") == "2")
    # The subscription's connection comes from the Tencent address, over TLS.
    sender = "SELECT client_addr, ssl FROM pg_stat_replication JOIN pg_stat_ssl USING (pid)"
    assert primary.query(sender) == f"{ADDRESSES['tencent']}|t"


def test_redis_replication_carries_writes_across_the_network(
    stacks: dict[str, Stack],
    network: Network,
    host: SshHost,
    tencent_host: SshHost,
    pki: Pki,
    tmp_path: Path,
    cleanup: list[Any],
) -> None:
    skip_unless("redis")
    plan, db, primary = alibaba_engine(stacks, network, host, pki, tmp_path / "primary", cleanup, "production-redis")
    root = password_for(db.name)
    primary.query(["SET", "before", "the replica"], password=root)
    set_up_source(host, plan, db)

    replica, tencent, source = tencent_replica(stacks, network, tencent_host, tmp_path / "replica", cleanup, db)
    run = replicate(tencent_host, tencent, source, pki.ca)
    expect(run, 0, "replica of production-redis", "in sync")
    assert replica.query(["GET", "before"]) == "the replica"
    primary.query(["SET", "carried", "across"], password=root)
    timed(lambda: replica.query(["GET", "carried"]) == "across")
    clients = primary.query(["CLIENT", "LIST", "TYPE", "replica"], password=root)
    assert f"addr={ADDRESSES['tencent']}:" in clients, clients
