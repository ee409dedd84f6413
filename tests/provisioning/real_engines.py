"""Real database engines for the data-plane tests: Debian's MariaDB, PostgreSQL and Redis.

Each instance listens on 127.0.0.1 on a free high port with a throwaway data directory (or, placed in
a network namespace of the rehearsal's, on every address of that namespace on the plan's port), starts
within a bounded wait and is stopped (or killed, to test recovery) by the test. ``attach`` tells
the ``podman`` stand-in that ``podman exec <container> ...`` runs against an instance, so the
scripts reach the real engine through the same command line they use on a host.

Nothing here runs through SSH: these are the engines behind the stand-ins, started by the test
itself, so their own processes are not in the exec trace the leak scan reads.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.provisioning.harness import free_port, wait_until


def newest_postgres(root: Path = Path("/usr/lib/postgresql")) -> Path:
    """The bin directory of the newest PostgreSQL installed (Debian 12 ships 15, Ubuntu 24.04 16):
    found by version, so the tests run on either."""
    found = [d for d in root.glob("*/bin") if d.parent.name.isdigit() and (d / "postgres").exists()]
    if not found:
        return root / "VERSION" / "bin"  # names what is missing in the skip reason
    return max(found, key=lambda d: int(d.parent.name))


PG_BIN = newest_postgres()
BINARIES = {
    "mysql": ("/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb"),
    "postgres": (str(PG_BIN / "postgres"), str(PG_BIN / "initdb"), "/usr/bin/psql"),
    "redis": ("/usr/bin/redis-server", "/usr/bin/redis-cli"),
}
PACKAGES = {"mysql": "mariadb-server", "postgres": "postgresql", "redis": "redis-server"}
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# PostgreSQL refuses to run as root; Debian's package creates this user.
PG_USER = "postgres"


def unavailable(kind: str) -> str | None:
    """Why ``kind`` cannot run here (for a visible skip), or None when it can."""
    missing = [path for path in BINARIES[kind] if not Path(path).exists()]
    if missing:
        return f"needs {', '.join(missing)} (Debian's {PACKAGES[kind]}; .ci/run installs it)"
    if os.geteuid() != 0:
        return "the engines are started as root (PostgreSQL then drops to its own user)"
    if kind == "postgres":
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"needs the {PG_USER} user (Debian's postgresql package creates it)"
    return None


@dataclass(frozen=True)
class Tls:
    """A throwaway CA and a server certificate it signed, for one IP address."""

    ca: Path
    cert: Path
    key: Path


def make_tls(base: Path, ip: str = "127.0.0.1", name: str = "server") -> Tls:
    """A test CA (its key stays in ``base``) and a server key and certificate for ``ip``."""
    base.mkdir(parents=True, exist_ok=True)
    ca_key, ca = base / "ca.key", base / "ca.pem"
    key, csr, cert = base / f"{name}.key", base / f"{name}.csr", base / f"{name}.pem"
    openssl = ["openssl"]
    if not ca.exists():
        _run([*openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(ca_key)])
        _run([*openssl, "req", "-x509", "-new", "-key", str(ca_key), "-days", "2", "-subj", "/CN=platform test CA",
              "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
              "-out", str(ca)])  # fmt: skip
    _run([*openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)])
    _run([*openssl, "req", "-new", "-key", str(key), "-subj", f"/CN={ip}", "-out", str(csr)])
    extensions = base / f"{name}.ext"
    extensions.write_text(f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth,clientAuth\n")
    _run([*openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
          "-days", "2", "-extfile", str(extensions), "-out", str(cert)])  # fmt: skip
    for path in (ca, cert, key):
        path.chmod(0o644)  # read by the engines' own users in the tests; the hosts use stricter modes
    return Tls(ca=ca, cert=cert, key=key)


@dataclass(frozen=True)
class Placement:
    """An engine inside a network namespace that plays a host (``rehearsal.network``): it listens on
    the plan's own port, on the namespace's every address (or its loopback only, as a replica that
    nobody reaches may); its socket stays reachable from here."""

    netns: str
    port: int
    bind: str = "0.0.0.0"  # noqa: S104 (the namespace's own addresses, documentation ones)


def _listening(placed: Placement | None) -> tuple[int, str]:
    """The port and the bind address: a free loopback port, or the placement's."""
    return (placed.port, placed.bind) if placed else (free_port(), "127.0.0.1")


@dataclass
class Instance:
    """One running engine. ``stop``/``start`` restart it with the same arguments and data."""

    kind: str
    port: int
    datadir: Path
    socket: Path | None
    log: Path
    argv: list[str]
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    scratch: Path | None = None
    """A directory outside the test's tree that this instance owns (PostgreSQL's), removed at ``close``."""
    netns: str | None = None
    """The network namespace it runs in (``Placement``), or None: this machine's own network."""

    def start(self) -> Instance:
        assert self.process is None or self.process.poll() is not None, "already running"
        # The engine itself is the child (no runuser wrapper), so stop() signals the postmaster.
        account = pwd.getpwnam(self.user) if self.user else None
        argv, switch = self.argv, account
        if self.netns is not None:
            # `ip netns exec` needs root, and both it and setpriv exec in place: the engine stays the child.
            drop = _drop_to(account) if account else []
            argv, switch = [*_in_netns(self.netns), *drop, *self.argv], None
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **_account_env(account), **self.env},
                user=switch.pw_uid if switch else None,
                group=switch.pw_gid if switch else None,
                extra_groups=[] if switch else None,
            )
        if not wait_until(self.ready, START_TIMEOUT_S, interval=0.2):
            self.stop(kill=True)
            raise RuntimeError(
                f"{self.kind} on port {self.port} did not start in {START_TIMEOUT_S:.0f} s:\n{self.tail()}"
            )
        return self

    def ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.kind} on port {self.port} exited:\n{self.tail()}")
        try:
            self.query(_PING[self.kind])
        except subprocess.CalledProcessError:
            return False
        return True

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown) or SIGKILL (a crash), then wait, bounded."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)

    def close(self) -> None:
        self.stop()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def query(self, statement: str | Sequence[str], password: str | None = None) -> str:
        """Run SQL (mysql, postgres) or a redis-cli command (a list of words) as the admin.

        The statement goes on stdin, never argv; a Redis password travels in the AUTH command.
        """
        match self.kind:
            case "mysql":
                command = ["/usr/bin/mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B"]
                text = statement if isinstance(statement, str) else " ".join(statement)
            case "postgres":
                command = ["runuser", "-u", PG_USER, "--", "/usr/bin/psql", "-X", "-q", "-t", "-A",
                           "-h", str(self.socket), "-p", str(self.port), "-U", PG_USER, "-d", "postgres",
                           "-v", "ON_ERROR_STOP=1"]  # fmt: skip
                text = statement if isinstance(statement, str) else " ".join(statement)
            case _:
                command = ["/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *self.redis_tls_args()]
                words = shlex.split(statement) if isinstance(statement, str) else list(statement)
                lines = ([f"AUTH {_redis_quote(password)}"] if password else []) + [" ".join(map(_redis_quote, words))]
                text = "\n".join(lines)
        if self.netns is not None:  # Redis is reached over TCP, on the namespace's loopback
            command = [*_in_netns(self.netns), *command]
        result = subprocess.run(command, input=text.encode() + b"\n", capture_output=True, timeout=30, check=True)
        output = result.stdout.decode().strip()
        if self.kind == "redis":
            output = output.removeprefix("OK\n") if password else output
            if output.startswith(("ERR", "NOAUTH", "WRONGPASS")):
                raise subprocess.CalledProcessError(1, command, output=result.stdout)
        return output

    def redis_tls_args(self) -> list[str]:
        tls = self.env.get("TEST_REDIS_TLS_CA")
        return ["--tls", "--cacert", tls] if tls else []

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


_PING = {"mysql": "SELECT 1", "postgres": "SELECT 1", "redis": ["PING"]}


def _in_netns(netns: str) -> list[str]:
    return ["ip", "netns", "exec", netns]


def _drop_to(account: pwd.struct_passwd) -> list[str]:
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups", "--"]


def _account_env(account: pwd.struct_passwd | None) -> dict[str, str]:
    """The login variables of the user an engine drops to, as runuser sets them (libpq reads
    ``~/.postgresql`` for client certificates: root's is not the postgres user's to open)."""
    if account is None:
        return {}
    return {"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name}


def _redis_quote(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run(argv: Sequence[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def start_mysql(
    base: Path, *, server_id: int = 1, extra_args: Sequence[str] = (), placed: Placement | None = None
) -> Instance:
    """MariaDB as root, binary log and GTIDs on (what replication needs), socket and loopback TCP."""
    base.mkdir(parents=True, exist_ok=True)
    (port, bind), datadir, socket = _listening(placed), base / "data", base / "mysqld.sock"
    if not (datadir / "mysql").exists():
        _run(["/usr/bin/mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={datadir}",
              "--skip-test-db", "--auth-root-authentication-method=socket"])  # fmt: skip
    argv = ["/usr/sbin/mariadbd", "--no-defaults", "--user=root", f"--datadir={datadir}", f"--socket={socket}",
            f"--port={port}", f"--bind-address={bind}", "--skip-name-resolve", f"--server-id={server_id}",
            "--log-bin=mysql-bin", "--binlog-format=ROW", "--log-slave-updates", f"--pid-file={base / 'mysqld.pid'}",
            "--innodb-buffer-pool-size=16M", "--performance-schema=OFF", *extra_args]  # fmt: skip
    return Instance("mysql", port, datadir, socket, base / "mysqld.log", argv, netns=_netns(placed)).start()


def start_postgres(
    base: Path, *, settings: Mapping[str, str] | None = None, hba: Sequence[str] = (), placed: Placement | None = None
) -> Instance:
    """PostgreSQL as the postgres user, in a directory of its own under /tmp (the test's own tree
    is root's, 0700), trusting local connections and password (scram) over loopback TCP."""
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="platform-pg-", dir="/tmp"))
    account = pwd.getpwnam(PG_USER)
    os.chown(scratch, account.pw_uid, account.pw_gid)
    (port, bind), datadir = _listening(placed), scratch / "data"
    subprocess.run(
        ["runuser", "-u", PG_USER, "--", str(PG_BIN / "initdb"), "-D", str(datadir), "-U", PG_USER, "-A", "trust",
         "--no-instructions", "-E", "UTF8", "--locale=C.UTF-8"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    rules = ["local all all trust", *hba, "host all all 127.0.0.1/32 scram-sha-256"]
    (datadir / "pg_hba.conf").write_text("\n".join(rules) + "\n")
    conf = {
        "listen_addresses": f"'{bind}'",
        "port": str(port),
        "unix_socket_directories": f"'{scratch}'",
        "shared_buffers": "16MB",
        "max_connections": "30",
        "fsync": "off",
        **(settings or {}),
    }
    with (datadir / "postgresql.conf").open("a") as out:
        out.writelines(f"{key} = {value}\n" for key, value in conf.items())
    argv = [str(PG_BIN / "postgres"), "-D", str(datadir)]
    log = base / "postgres.log"
    log.touch()
    instance = Instance(
        "postgres", port, datadir, scratch, log, argv, user=PG_USER, scratch=scratch, netns=_netns(placed)
    )
    return instance.start()


def start_redis(base: Path, *, args: Sequence[str] = (), tls: Tls | None = None) -> Instance:
    """Redis on loopback with its working directory (dump.rdb) in ``base/data``.

    With ``tls`` it serves TLS only on its port (``--port 0``), as a replication source does.
    """
    datadir, port = base / "data", free_port()
    datadir.mkdir(parents=True, exist_ok=True)
    listen = ["--port", str(port)]
    env: dict[str, str] = {}
    if tls is not None:
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert), "--tls-key-file",
                  str(tls.key), "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no"]  # fmt: skip
        env["TEST_REDIS_TLS_CA"] = str(tls.ca)
    argv = ["/usr/bin/redis-server", "--bind", "127.0.0.1", *listen, "--dir", str(datadir), "--save", "",
            "--appendonly", "no", "--daemonize", "no", *args]  # fmt: skip
    return Instance("redis", port, datadir, None, base / "redis.log", argv, env=env).start()


@dataclass
class PasswordRedis(Instance):
    """A Redis with requirepass: its readiness check authenticates."""

    password: str = ""

    def ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"redis on port {self.port} exited:\n{self.tail()}")
        try:
            return self.query(["PING"], password=self.password) == "PONG"
        except subprocess.CalledProcessError:
            return False


def start_redis_source(
    base: Path, auth_file: Path, tls: Tls, password: str, placed: Placement | None = None
) -> Instance:
    """The source as its unit runs it: the auth file (requirepass and the replication user) and TLS only."""
    (port, bind), data = _listening(placed), base / "data"
    data.mkdir(parents=True)
    argv = ["/usr/bin/redis-server", "--bind", bind, "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca),
            "--tls-auth-clients", "no", "--dir", str(data), "--save", "", "--appendonly", "no",
            "--include", str(auth_file)]  # fmt: skip
    tls_ca = {"TEST_REDIS_TLS_CA": str(tls.ca)}
    instance = PasswordRedis("redis", port, data, None, base / "redis.log", argv, env=tls_ca, netns=_netns(placed))
    instance.password = password
    return instance.start()


def _netns(placed: Placement | None) -> str | None:
    return placed.netns if placed else None


def attach(instance: Instance, container: str, standin_state: Path, env: Mapping[str, str] | None = None) -> Path:
    """Make ``podman exec <container> ...`` (the stand-in) run against ``instance``.

    Writes ``$STANDIN_STATE/podman/engines/<container>``: ``KEY=value`` lines (shell-quoted) that
    the stand-in reads: KIND, PORT, SOCKET, DATADIR, RUN_AS (PostgreSQL's user), TLS_CA (Redis
    over TLS), NETNS (a rehearsal's namespace it runs in), plus ``env``.
    """
    fields = {
        "KIND": instance.kind,
        "PORT": str(instance.port),
        "SOCKET": str(instance.socket or ""),
        "DATADIR": str(instance.datadir),
        "RUN_AS": instance.user or "",
        "TLS_CA": instance.env.get("TEST_REDIS_TLS_CA", ""),
        "NETNS": instance.netns or "",
        **(env or {}),
    }
    target = standin_state / "podman" / "engines" / container
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(f"{key}={shlex.quote(value)}\n" for key, value in fields.items()))
    return target
