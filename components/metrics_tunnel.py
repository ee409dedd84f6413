"""The metrics tunnel: how the Tencent Prometheus reads the Alibaba host's exporters without a port
of the security group for them.

The exporters listen on loopback only. The Alibaba stack makes an ED25519 key (pulumi-tls, state
only) and authorizes it for ``platform-metrics``, a system user whose key may open TCP forwards to
those loopback ports and nothing else: ``restrict`` takes away the shell, the pty, agent and X11
forwarding; ``permitopen`` names each exporter; ``permitlisten`` names a port the user cannot bind,
so no remote forward listens on the database host. The stack exports the key (a secret output),
the host key it pins and the exporters' ports; the Tencent stack reads them through its
StackReference and runs ``ssh -N -L`` under a unit of its own, and Prometheus scrapes the forwards
on its loopback.

Why a forward from the Tencent side rather than the other ways (README: "Metrics from the
database host"): the Alibaba stack deploys first and the key flows with it, so nothing of the
Tencent host is needed there; the session costs the database host 1.9 MiB beside a running sshd,
bounded by the user's slice; and a broken tunnel shows as the peer's targets down, which the
alerts already cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.provisioning import Step
from plan import METRICS_LOGIN_MIB, METRICS_USER, Layout, MetricsTunnel, tunnel_port

KEY_ALGORITHM = "ED25519"
# A port below 1024, which the user cannot bind: with it as the only permitted listen, every
# remote forward is refused (OpenSSH has no "none" for permitlisten in authorized_keys).
NO_LISTEN = "127.0.0.1:1"
KEY_CREDENTIAL = "metrics-tunnel-key"
KNOWN_HOSTS = "metrics-tunnel.known_hosts"


def authorized_line(public_key: str, exporter_ports: Sequence[int]) -> str:
    """The tunnel key's line in ``platform-metrics``'s authorized_keys: forwards to the exporters only."""
    opens = ",".join(f'permitopen="127.0.0.1:{port}"' for port in sorted(exporter_ports))
    options = f'restrict,port-forwarding,{opens},permitlisten="{NO_LISTEN}",command="/usr/sbin/nologin"'
    return f"{options} {public_key.strip()} platform-metrics-tunnel\n"


def home(layout: Layout) -> str:
    """The user's home: root's, so it cannot change its own keys."""
    return f"{layout.paths.state}/metrics-login"


# Where the host's sshd reads its configuration (Debian, Ubuntu, Alibaba Cloud Linux).
SSHD_CONFIG = "/etc/ssh/sshd_config"


def login_step(
    component: str, layout: Layout, authorized: str, peer_address: str, sshd_config: str = SSHD_CONFIG
) -> Step:
    """The tunnel's login on the scraped host: ``platform-metrics`` with ``authorized`` as its only
    key, its sessions under a slice limited to METRICS_LOGIN_MIB, once the host's sshd is seen to let
    it forward from ``peer_address``. ``authorized`` empty: the key is removed and its sessions end
    (monitoring off, or Prometheus moved to this host)."""
    return Step(
        f"{component}-metrics-login",
        files=("metrics_login.sh",),
        params={
            "LOGIN_USER": METRICS_USER,
            "HOME_DIR": home(layout),
            "AUTHORIZED": authorized,
            "UNIT_DIR": layout.paths.units,
            "MEMORY_MAX": f"{METRICS_LOGIN_MIB}M",
            "PEER_ADDRESS": peer_address,
            "SSHD_CONFIG": sshd_config,
        },
        label="platform-metrics-login",
        sudo=layout.sudo,
    )


def known_hosts(tunnel: MetricsTunnel, address: str) -> str:
    """The one host key the tunnel accepts: the scraped host's own, as its stack pins it."""
    name = address if tunnel.ssh_port == 22 else f"[{address}]:{tunnel.ssh_port}"
    return f"{name} {tunnel.host_key.strip()}\n"


def ssh_arguments(tunnel: MetricsTunnel, address: str, known_hosts_file: str, key_file: str) -> list[str]:
    """``ssh``'s arguments: no configuration file, the pinned key only, each exporter forwarded to
    its port on this host's loopback (``forwards``), and an exit when a forward cannot be set up or
    the peer stops answering (its unit restarts it)."""
    return [
        "-N",
        "-F",
        "none",
        "-o",
        "BatchMode=yes",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=2",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts_file}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"IdentityFile={key_file}",
        "-p",
        str(tunnel.ssh_port),
        *(word for _, local, remote in forwards(tunnel) for word in ("-L", f"127.0.0.1:{local}:127.0.0.1:{remote}")),
        f"{tunnel.user}@{address}",
    ]


def forwards(tunnel: MetricsTunnel) -> list[tuple[str, int, int]]:
    """(exporter, local port, its port on the peer) for each of the peer's exporters."""
    return [(name, tunnel_port(name), port) for name, port in tunnel.exporters]


def exported(ssh_port: int, host_key: str, exporters: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """The ``metricsTunnel`` output of the scraped host's stack (``MetricsTunnel.output``)."""
    return MetricsTunnel(METRICS_USER, ssh_port, host_key, tuple(exporters)).output()
