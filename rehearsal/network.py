"""Network namespaces on one bridge: the two hosts and the Internet, with documentation addresses only.

Each host is a namespace with one veth interface (``eth0``); the other ends hang on a bridge inside a
namespace of its own, so nothing is added to the machine's own network. Every address is from the
documentation ranges, and each namespace routes only those ranges, on the link: there is no default
route, so nothing can leave the rehearsal. Names carry the process id, so runs side by side do not
meet, and everything is removed on exit, processes first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

DOCUMENTATION_RANGES = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
AGENT = Path(__file__).with_name("agent.py")
COMMAND_TIMEOUT_S = 30
SSHD = "/usr/sbin/sshd"
SSH_LOGIN_TIMEOUT_S = 3  # ConnectTimeout: a dropped SYN is never answered
TUNNEL_AUTHORIZED = "tunnel_authorized"  # a second authorized_keys file: the metrics tunnel's line


@dataclass(frozen=True)
class Host:
    role: str  # "alibaba", "tencent", "internet"
    addresses: tuple[str, ...]  # the first is the host's own; the others are sources it can speak from


def cannot_run() -> str | None:
    """Why the rehearsal cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and nftables)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("ssh", "openssh-client")):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (Debian's {package})"
    if not Path(SSHD).is_file():
        return f"needs {SSHD} (Debian's openssh-server)"
    if not Path("/run/sshd").is_dir():
        return "needs /run/sshd, sshd's privilege-separation directory (`bash .ci/run` makes it)"
    probe = f"rh-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip() or made.returncode}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


class Network:
    """The namespaces, made on enter and removed on exit."""

    def __init__(self, hosts: Sequence[Host], prefix: str | None = None) -> None:
        self.hosts = {host.role: host for host in hosts}
        self.prefix = prefix or f"rh{os.getpid()}"
        self.wire = f"{self.prefix}-wire"
        self.made: list[str] = []
        self.processes: list[subprocess.Popen[str]] = []
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))

    def namespace(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def __enter__(self) -> Network:
        try:
            for key in ("host", "client", "tunnel"):
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.workdir / key)],
                    check=True,
                    timeout=COMMAND_TIMEOUT_S,
                )
            self._make(self.wire)
            ip("-n", self.wire, "link", "add", "br0", "type", "bridge")
            ip("-n", self.wire, "link", "set", "br0", "up")
            for index, host in enumerate(self.hosts.values()):
                name = self._make(self.namespace(host.role))
                port = f"port{index}"
                ip("link", "add", "eth0", "netns", name, "type", "veth", "peer", "name", port, "netns", self.wire)
                ip("-n", self.wire, "link", "set", port, "master", "br0", "up")
                for address in host.addresses:
                    ip("-n", name, "addr", "add", f"{address}/32", "dev", "eth0")
                ip("-n", name, "link", "set", "eth0", "up")
                for network in DOCUMENTATION_RANGES:
                    ip("-n", name, "route", "add", network, "dev", "eth0")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=COMMAND_TIMEOUT_S)
        self.processes.clear()
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self.made.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _make(self, name: str) -> str:
        ip("netns", "add", name)
        self.made.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def run(self, role: str, argv: Sequence[str], stdin: str = "") -> str:
        """A command inside a host's namespace; its stdout. Fails with its stderr."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.namespace(role), *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{role}: {' '.join(argv[:3])} failed: {result.stderr.strip()}")
        return result.stdout

    def enforce(self, role: str, nft_script: str) -> None:
        self.run(role, ["nft", "-f", "-"], nft_script)

    def listen(self, role: str, endpoints: Sequence[tuple[int, str]]) -> None:
        """Listeners on each (port, protocol) on the host's every address, until the rehearsal ends."""
        words = [f"{protocol}:{port}" for port, protocol in endpoints]
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace(role), sys.executable, str(AGENT), "listen", *words],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            process.kill()
            _, error = process.communicate(timeout=COMMAND_TIMEOUT_S)
            raise RuntimeError(f"{role}: the listeners did not start: {error.strip()}")

    def sshd(self, role: str, port: int) -> None:
        """Debian's OpenSSH server on the host's own address, admitting the rehearsal's key for root
        (its files in the rehearsal's own directory; nothing of the machine's sshd is read)."""
        address = self.hosts[role].addresses[0]
        config = self.workdir / f"sshd-{role}.conf"
        config.write_text(
            "\n".join(
                (
                    f"Port {port}",
                    f"ListenAddress {address}",
                    f"HostKey {self.workdir / 'host'}",
                    f"AuthorizedKeysFile {self.workdir / 'client.pub'} {self.workdir / TUNNEL_AUTHORIZED}",
                    "PidFile none",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "LogLevel ERROR",
                )
            )
            + "\n"
        )
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace(role), SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while self.probe(role, [(address, address, port, "tcp")]) != [True]:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, error = process.communicate(timeout=COMMAND_TIMEOUT_S)
                raise RuntimeError(f"{role}: sshd did not start: {error.strip()}")
            time.sleep(0.1)

    def ssh_logins(self, role: str, attempts: Sequence[tuple[str, str, int]]) -> list[bool]:
        """Whether each (source address, destination address, port) SSH login from this host, with the
        rehearsal's key and the host key pinned, runs a command there."""
        known = self.workdir / "known_hosts"
        known.write_text(f"* {(self.workdir / 'host.pub').read_text()}")
        logins = [
            subprocess.Popen(
                [
                    *("ip", "netns", "exec", self.namespace(role)),
                    *("ssh", "-F", "/dev/null", "-i", str(self.workdir / "client"), "-b", source, "-p", str(port)),
                    *("-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_LOGIN_TIMEOUT_S}"),
                    *("-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}", "-o", "LogLevel=ERROR"),
                    f"root@{destination}",
                    "true",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for source, destination, port in attempts
        ]
        return [login.wait(timeout=COMMAND_TIMEOUT_S) == 0 for login in logins]

    def authorize(self, line: str) -> None:
        """Adds an authorized_keys line (with its options) for root on every host's sshd."""
        with (self.workdir / TUNNEL_AUTHORIZED).open("a") as keys:
            keys.write(line)

    def start(self, role: str, argv: Sequence[str]) -> subprocess.Popen[str]:
        """A long-running command in a host's namespace (stopped with the network)."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace(role), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        return process

    def fetch(self, role: str, endpoints: Sequence[tuple[str, int]]) -> list[str | None]:
        """What a TCP connection to each (address, port) from this host reads (None: nothing)."""
        return json.loads(self.run(role, [sys.executable, str(AGENT), "fetch"], json.dumps(list(endpoints))))

    def probe(self, role: str, attempts: Sequence[tuple[str, str, int, str]]) -> list[bool]:
        """Whether each (source address, destination address, port, protocol) from this host gets through."""
        out = self.run(role, [sys.executable, str(AGENT), "probe"], json.dumps(list(attempts)))
        return [bool(seen) for seen in json.loads(out)]


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
