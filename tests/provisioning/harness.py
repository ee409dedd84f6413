"""A test host reached over real SSH on 127.0.0.1, the way ``pulumi-command`` reaches a server.

``SshHost`` starts Debian's ``sshd`` on a free port with a throwaway host key and client key.
Its sessions get the host's own environment from ``SetEnv`` (a PATH that puts the stand-ins
for ``systemctl``, ``podman`` and ``sysctl`` first, and where those keep their state), never
from the client: the default ``AcceptEnv`` accepts nothing. Every install location of the
plan points under ``<tmp>/host``, so nothing outside the test's directory and its own
processes is touched.

When ``strace`` is present, ``sshd`` runs under it and every ``execve`` of every session
(argv and environment) is written to a trace that the secret scan reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.provisioning import Step, as_command
from plan import Plan, load_plan
from tests.stacks import exactly

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
SAMPLE_APP = HERE / "sample_app.py"
SSHD = "/usr/sbin/sshd"
# Debian's sshd refuses to start without its privilege-separation directory. It is shared system
# state (every sshd on the machine uses it), so no test creates or removes it: its systemd unit
# makes it on a host, `.ci/run` on a CI machine.
PRIVSEP_DIR = Path("/run/sshd")
# Where each test host's filesystem lives: a plan keeps the platform's directories below a persistent
# root such as /var/lib, in a directory of the platform's own (plan/schema.py: Paths). Shared by every
# worker, so no test creates or removes it: `bash .ci/run` makes it; each host makes and removes its own.
HOSTS_DIR = Path("/var/lib/platform-tests")

# Placeholder database passwords: random per session, all carrying MARKER, so one scan finds
# any of them wherever it leaked.
MARKER = f"placeholder-pw-{secrets.token_hex(6)}"
# What preflight.stackfile stands in for a secret when the real program is evaluated.
ENGINE_PLACEHOLDER = "PLACEHOLDER-SECRET-platform-dbPasswords"


def password_for(database: str) -> str:
    return f"{MARKER}-{database}"


# Each pytest-xdist worker hands out ports from a band of its own, below the kernel's ephemeral
# range (32768 and up): two workers never pick the same port between the probe and the engine's own
# bind, and no outgoing connection holds one. Within a band, ports go round from a random start, so a
# port an engine just left is not handed out again soon.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
PORT_BAND = 1500
_FIRST_PORT = 20000 + (_WORKER % 8) * PORT_BAND
_next_port = secrets.randbelow(PORT_BAND)


def free_port() -> int:
    """A TCP port nothing listens on now (127.0.0.1), from this worker's band."""
    global _next_port
    for _ in range(PORT_BAND):
        port, _next_port = _FIRST_PORT + _next_port, (_next_port + 1) % PORT_BAND
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # in use, or lingering after its last user
                continue
            return port
    raise RuntimeError(f"no free TCP port in {_FIRST_PORT}-{_FIRST_PORT + PORT_BAND - 1}")


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@dataclass(frozen=True, repr=False)
class Run:
    """One script run over SSH: what was sent and what came back."""

    label: str
    command: str
    code: int
    stdout: str
    stderr: str
    seconds: float

    def __repr__(self) -> str:
        return f"{self.label}: exit {self.code}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


@dataclass
class Stats:
    """Every script run over SSH in this session (the figures the bench prints)."""

    runs: list[Run] = field(default_factory=list)
    tests: int = 0
    scenarios: list[tuple[str, int, float]] = field(default_factory=list)
    """Upgrade-drill scenarios: name, script runs, seconds."""
    started: float = field(default_factory=time.monotonic)


STATS = Stats()


class SshHost:
    def __init__(self, base: Path, netns: str | None = None) -> None:
        self.base = base
        # A network namespace of the rehearsal's that plays the host: its sshd and every session run
        # there, so the scripts see that host's network (its loopback, its address, its group).
        self.via = ("ip", "netns", "exec", netns) if netns else ()
        # The host's filesystem, as far as the plan is concerned: below HOSTS_DIR when it is there.
        self.root = Path(tempfile.mkdtemp(prefix="host-", dir=HOSTS_DIR)) if HOSTS_DIR.is_dir() else base / "host"
        self.standin_state = base / "standin-state"
        self.artifacts = base / "artifacts"
        self.ssh_dir = base / "ssh"
        self.trace = base / "exec-trace.log"
        self.sshd_log = base / "sshd.log"
        self.units = self.root / "etc/systemd/system"
        self.quadlet = self.root / "etc/containers/systemd"
        self.secrets = self.root / "etc/platform/secrets"
        self.port = 0
        self.host_key = ""
        self._process: subprocess.Popen[bytes] | None = None
        self.traced = False
        self._releases: dict[tuple[str, str], dict[str, str]] = {}

    # --- the SSH server ---------------------------------------------------------------

    def start(self) -> None:
        for directory in (self.ssh_dir, self.artifacts, self.root, self.standin_state):
            directory.mkdir(parents=True, exist_ok=True)
        self.ssh_dir.chmod(0o700)
        host_key, client_key = self.ssh_dir / "host_ed25519", self.ssh_dir / "client_ed25519"
        for key in (host_key, client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)], check=True)
        self.host_key = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
        (self.ssh_dir / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
        self.port = free_port()
        # The pinned host key, as the plan's host.hostKey pins it for remote.Command.
        (self.ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {self.host_key}\n")
        # root's home on this host: a fresh one, as on a server (the suite's machine may have a
        # ~/.bashrc of its own, which bash reads for an SSH session before the command).
        home, tmp = self.base / "root-home", self.base / "tmp"
        home.mkdir(mode=0o700, exist_ok=True)
        tmp.mkdir(mode=0o1777, exist_ok=True)
        environment = {
            "HOME": str(home),
            "TMPDIR": str(tmp),  # the host's temporary files stay in the test's directory
            "PATH": f"{STANDINS}:/usr/local/bin:/usr/bin:/bin",
            "STANDIN_STATE": str(self.standin_state),
            # Where this host's systemd and Quadlet read units (their own variables).
            "SYSTEMD_UNIT_PATH": str(self.units),
            "QUADLET_UNIT_DIRS": str(self.quadlet),
        }
        config = self.ssh_dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {self.ssh_dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.ssh_dir / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    # pulumi-command's CopyToRemote speaks SFTP (the upload of a local release).
                    "Subsystem sftp internal-sftp",
                    # No AcceptEnv: the client's environment never reaches the session.
                    "SetEnv " + " ".join(f"{k}={v}" for k, v in environment.items()),
                    "",
                ]
            )
        )
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True, capture_output=True, timeout=10)
        command = [SSHD, "-D", "-f", str(config), "-E", str(self.sshd_log)]
        tracer = _tracer()
        self.traced = bool(tracer)
        if tracer:
            command = [*tracer, "-v", "-s", "1000000", "-o", str(self.trace), *command]
        command = [*self.via, *command]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        if not wait_until(self._accepts, timeout=15, interval=0.1):
            self.stop()
            raise RuntimeError(f"sshd did not accept connections on 127.0.0.1:{self.port}: {self._log_tail()}")

    def _accepts(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"sshd exited with {self._process.returncode}: {self._log_tail()}")
        try:
            return self.run("true", label="probe", record=False, timeout=10).code == 0
        except subprocess.TimeoutExpired:
            return False

    def _log_tail(self) -> str:
        return self.sshd_log.read_text()[-2000:] if self.sshd_log.exists() else "(no log)"

    def stop(self) -> None:
        self.stop_services()
        if self.root.is_relative_to(HOSTS_DIR):
            shutil.rmtree(self.root, ignore_errors=True)
        pid_file = self.ssh_dir / "sshd.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)

    def ssh_argv(self, command: str) -> list[str]:
        """The client side of pulumi-command's session: no PTY, no login shell, no prompts."""
        return [
            *self.via,
            *("ssh", "-F", "/dev/null", "-T", "-p", str(self.port), "-i", str(self.ssh_dir / "client_ed25519")),
            *("-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={self.ssh_dir / 'known_hosts'}"),
            *("-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"),
            *("-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "root@127.0.0.1", command),
        ]

    def run(self, command: str, stdin: str = "", *, label: str, record: bool = True, timeout: float = 120) -> Run:
        """Run ``command`` as remote.Command does: the command line as is, ``stdin`` piped."""
        assert not contains_secret(command), f"{label}: a secret is in the command line"
        started = time.monotonic()
        done = subprocess.run(self.ssh_argv(command), input=stdin, capture_output=True, text=True, timeout=timeout)
        result = Run(label, command, done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        if record:
            STATS.runs.append(result)
        return result

    def upload(self, local: Path, remote_path: str, *, timeout: float = 120) -> Run:
        """Copy ``local`` to ``remote_path`` over SFTP as CopyToRemote does: a file is written at the
        path, a directory is copied into it under its own name (the path made when missing)."""
        commands = [f'put "{local}" "{remote_path}"']
        if local.is_dir():
            commands = [f'-mkdir "{remote_path}"', f'put -r "{local}" "{remote_path}/"']
        argv = [
            *self.via,
            *("sftp", "-F", "/dev/null", "-P", str(self.port), "-i", str(self.ssh_dir / "client_ed25519")),
            *("-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={self.ssh_dir / 'known_hosts'}"),
            *("-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"),
            *("-b", "-", "root@127.0.0.1"),
        ]
        started = time.monotonic()
        done = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=timeout)
        result = Run(
            f"upload {local.name}",
            " ".join(commands),
            done.returncode,
            done.stdout,
            done.stderr,
            time.monotonic() - started,
        )
        STATS.runs.append(result)
        return result

    def step(self, step: Step, stdin: str = "", *, timeout: float = 120) -> Run:
        """Run a component's step as its remote.Command would on create or update (the same script)."""
        return self.run(as_command(step.script, step.label, step.sudo), stdin, label=step.name, timeout=timeout)

    # --- between tests ----------------------------------------------------------------

    def reset(self) -> None:
        """A clean host: no services, no containers, only what any systemd host has."""
        self.stop_services()
        for directory in (self.root, self.standin_state):
            shutil.rmtree(directory, ignore_errors=True)
        for directory in (self.units, self.root / "etc/sysctl.d", self.standin_state / "sysctl"):
            directory.mkdir(parents=True)
        # The stock kernel default, so the bootstrap has something to raise.
        (self.standin_state / "sysctl/vm.max_map_count").write_text("65530\n")

    def service_pids(self) -> dict[str, int]:
        """Unit -> pid of each native service the systemctl stand-in started that still runs."""
        pids: dict[str, int] = {}
        for pid_file in (self.standin_state / "systemd/run").glob("*.pid"):
            pid, start = pid_file.read_text().split()
            if _alive(int(pid), start):
                pids[pid_file.name.removesuffix(".pid")] = int(pid)
        return pids

    def service_started_at(self, unit: str) -> int:
        """When the systemctl stand-in last started ``unit`` (the process's start time, in ticks)."""
        return int((self.standin_state / "systemd/run" / f"{unit}.pid").read_text().split()[1])

    @staticmethod
    def process_runs(pid: int) -> bool:
        """Whether ``pid`` exists and has not exited (a zombie has exited)."""
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def stop_services(self) -> None:
        for pid in self.service_pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: not self.service_pids(), timeout=10)

    # --- what the host looks like -----------------------------------------------------

    def paths(self, keep_releases: int = 3) -> dict[str, Any]:
        root = self.root
        return {
            "root": f"{root}/opt/platform",
            "data": f"{root}/var/lib/platform",
            "units": str(self.units),
            "quadlet": str(self.quadlet),
            "secrets": str(self.secrets),
            "state": f"{root}/var/lib/platform-state",
            "backups": f"{root}/var/lib/platform-backups",
            "sysctl": f"{root}/etc/sysctl.d",
            "uploads": f"{root}/var/lib/platform-uploads",
            "nginx": f"{root}/etc/nginx/conf.d",
            # Where the systemctl stand-in hands units their credentials (systemd: /run/credentials).
            "credentials": f"{self.standin_state}/systemd/credentials",
            "monitoring": f"{root}/etc/platform-monitoring",
            "keepReleases": keep_releases,
        }

    def plan(
        self,
        cloud: str,
        *,
        services: Sequence[dict[str, Any]] = (),
        batches: Sequence[Sequence[str]] | None = None,
        databases: Sequence[dict[str, Any]] = (),
        existing: Sequence[dict[str, Any]] = (),
        host: dict[str, Any] | None = None,
        keep_releases: int = 3,
        extra: Mapping[str, Any] | None = None,
    ) -> Plan:
        """A plan for this host, built from raw stack config as the program builds it (``extra``:
        more ``platform:`` keys, such as ``proxy``)."""
        config = {
            "platform:cloud": cloud,
            "platform:host": json.dumps(
                {
                    "mode": "adopt",
                    "instanceId": "i-loopback" if cloud == "alibaba" else "ins-loopback",  # each cloud's id format
                    "publicIp": "203.0.113.10",
                    "hostKey": self.host_key,
                    "memoryMib": 2048,
                    "cpus": 2,
                    "diskGb": 40,
                    **(host or {}),
                }
            ),
            "platform:firewall": json.dumps(
                {"adminCidrs": ["198.51.100.0/24"], "peerAddress": "203.0.113.20", "securityGroupId": "sg-loopback"}
            ),
            "platform:paths": json.dumps(self.paths(keep_releases)),
        }
        # Monitoring only where a test asks for it (``extra``): its programs hold ports on this machine.
        config["platform:monitoring"] = json.dumps({"enabled": False})
        config.update({f"platform:{key}": json.dumps(value) for key, value in (extra or {}).items()})
        lists: dict[str, Any] = {"existing": list(existing)}
        if cloud == "tencent":
            lists["services"] = list(services)
            names = [s["name"] for s in services]
            config["platform:batches"] = json.dumps(batches if batches is not None else [[n] for n in names])
        else:
            lists["databases"] = list(databases)
        # Each list is this host's whole list: the cloud's defaults it leaves out are omitted.
        config.update({f"platform:{key}": json.dumps(value) for key, value in exactly(cloud, lists).items()})
        return load_plan(config)

    def snapshot(self) -> dict[str, tuple[object, ...]]:
        """Every path under the host root with its type, mode, inode, mtime, size and link target."""
        entries: dict[str, tuple[object, ...]] = {}
        for directory, dirnames, filenames in os.walk(self.root):
            for name in [".", *dirnames, *filenames]:
                path = Path(directory, name)
                info = path.lstat()
                target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
                entries[str(path.relative_to(self.root))] = (
                    stat.S_IFMT(info.st_mode),
                    stat.S_IMODE(info.st_mode),
                    info.st_ino,
                    info.st_mtime_ns,
                    info.st_size,
                    target,
                )
        return entries

    def podman_calls(self) -> list[list[str]]:
        """Every podman argv recorded so far, in order."""
        log = self.standin_state / "podman/calls.log"
        if not log.exists():
            return []
        fields = log.read_bytes().split(b"\0")
        calls: list[list[str]] = []
        index = 0
        while index < len(fields) - 1:
            count = int(fields[index])
            calls.append([f.decode() for f in fields[index + 1 : index + 1 + count]])
            index += 1 + count
        return calls

    def systemctl_calls(self) -> list[str]:
        log = self.standin_state / "systemd/calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def container(self, name: str) -> dict[str, str] | None:
        """The podman stand-in's record of a container (id, image, status), or None."""
        directory = self.standin_state / "podman/containers" / name
        if not directory.is_dir():
            return None
        return {f.name: f.read_text().strip() for f in directory.iterdir()}

    def podman_secret(self, name: str) -> str | None:
        """The sha256 of the value the podman stand-in's secret ``name`` holds, or None."""
        record = self.standin_state / "podman/secrets" / name
        return record.read_text().strip() if record.exists() else None

    def inject(self, tool: str, pattern: str, *, times: int = 1, action: str = "fail") -> None:
        """The next ``times`` calls of the stand-in ``tool`` matching ``pattern`` fail or kill their
        caller (``action``, see standins/faults.sh); ``reset`` clears every fault."""
        faults = self.standin_state / "faults"
        faults.mkdir(parents=True, exist_ok=True)
        with (faults / tool).open("a") as file:
            file.write(f"{action} {times} {pattern}\n")

    def set_health(self, container: str, policy: str | int) -> None:
        """How the engine in ``container`` answers: "unhealthy", or a count of failing checks."""
        health = self.standin_state / "podman/health"
        health.mkdir(parents=True, exist_ok=True)
        (health / container).write_text(f"{policy}\n")

    def set_podman_version(self, version: str) -> None:
        (self.standin_state / "podman").mkdir(parents=True, exist_ok=True)
        (self.standin_state / "podman/version").write_text(f"{version}\n")

    def journal(self, unit: str) -> str:
        log = self.standin_state / "systemd/journal" / f"{unit}.log"
        return log.read_text() if log.exists() else ""

    # --- the sample service's releases ------------------------------------------------

    def release(self, version: str, behaviour: str = "healthy") -> dict[str, str]:
        """A release tarball of the sample service on the host (an absolute ARTIFACT path)."""
        key = (version, behaviour)
        if key not in self._releases:
            files = {
                "start": ("#!/bin/sh\nexec python3 app.py\n", 0o755),
                "app.py": (SAMPLE_APP.read_text(), 0o644),
                "VERSION": (f"{version}\n", 0o644),
                "behaviour": (f"{behaviour}\n", 0o644),
            }
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
                for name, (text, mode) in files.items():
                    data = text.encode()
                    member = tarfile.TarInfo(f"./{name}")
                    member.size, member.mode, member.mtime = len(data), mode, 1_700_000_000
                    archive.addfile(member, io.BytesIO(data))
            label = hashlib.sha256(behaviour.encode()).hexdigest()[:12]
            path = self.artifacts / f"sample-{version}-{label}.tar.gz"
            path.write_bytes(buffer.getvalue())
            self._releases[key] = {
                "version": version,
                "artifact": str(path),
                "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
            }
        return dict(self._releases[key])

    # --- secrets ----------------------------------------------------------------------

    def trace_size(self) -> int:
        return self.trace.stat().st_size if self.trace.exists() else 0

    def find_leaks(self, runs: Iterable[Run], trace_from: int = 0) -> list[str]:
        """Where a placeholder secret shows up outside its 0600 secret file."""
        leaks: list[str] = []
        for run in runs:
            for stream, text in (("command", run.command), ("stdout", run.stdout), ("stderr", run.stderr)):
                if contains_secret(text):
                    leaks.append(f"{stream} of {run.label}")
        for directory in (self.root, self.standin_state):
            for path in _files(directory):
                if not contains_secret(path.read_bytes()):
                    continue
                mode = stat.S_IMODE(path.lstat().st_mode)
                # A secret file (0600 under the secrets tree), or a unit's credential as systemd
                # hands it over (0400 under the stand-in's credentials directory, systemd's ramfs).
                kept = path.is_relative_to(self.secrets) and mode == 0o600
                handed = path.is_relative_to(self.standin_state / "systemd/credentials") and mode == 0o400
                if not (kept or handed):
                    leaks.append(f"file {path} (mode {mode:o})")
        for unit, pid in self.service_pids().items():
            for part in ("environ", "cmdline"):
                with contextlib.suppress(OSError):
                    if contains_secret(Path(f"/proc/{pid}/{part}").read_bytes()):
                        leaks.append(f"/proc/{pid}/{part} of {unit}")
        if self.sshd_log.exists() and contains_secret(self.sshd_log.read_bytes()):
            leaks.append(f"sshd log {self.sshd_log}")
        if self.trace.exists():
            with self.trace.open("rb") as trace:
                trace.seek(trace_from)
                for line in trace:
                    if contains_secret(line):
                        leaks.append(f"exec trace: {line[:200]!r}")
        return leaks


def contains_secret(data: str | bytes) -> bool:
    if isinstance(data, bytes):
        return MARKER.encode() in data or ENGINE_PLACEHOLDER.encode() in data
    return MARKER in data or ENGINE_PLACEHOLDER in data


def _tracer() -> list[str]:
    """strace following every process for its execve calls, when it is installed and allowed."""
    strace = shutil.which("strace")
    if strace is None:
        return []
    command = [strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=execve"]
    probe = subprocess.run([*command, "-o", "/dev/null", "true"], capture_output=True, timeout=10, check=False)
    return command if probe.returncode == 0 else []


def _files(directory: Path) -> Iterable[Path]:
    for parent, _, filenames in os.walk(directory):
        for name in filenames:
            path = Path(parent, name)
            if path.is_file() and not path.is_symlink():
                yield path


def _alive(pid: int, start: str) -> bool:
    """Whether ``pid`` is still the process started at ``start`` (clock ticks) and not a zombie."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat_line.rsplit(")", 1)[1].split()
    return fields[0] != "Z" and fields[19] == start
