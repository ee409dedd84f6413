"""The metrics tunnel over SSH. Its login (metrics_login.sh): the user made and unlocked once, its one
key written root-owned, its sessions' slice limited; a new key ends the old key's sessions, and an
empty key takes the login away (the account tools are the stand-ins': the machine keeps its own
users). Its client (mon_install.sh on the Prometheus host): the key from stdin, the unit, the
health check through a real restricted sshd on loopback. Between two hosts' firewalls, the
rehearsal runs it too (tests/rehearsal).
"""

from __future__ import annotations

import stat
import subprocess
from dataclasses import replace
from pathlib import Path

from components.metrics_tunnel import KEY_CREDENTIAL, authorized_line, home, login_step
from components.monitoring import monitoring_step, webhook_stdin
from plan import METRICS_USER, MetricsTunnel
from tests.provisioning.harness import SshHost
from tests.provisioning.workloads import free_ports
from tests.stacks import plan_of

WEBHOOK = "https://hooks.slack.com/services/T000/B000/loopback"  # read from a file, never posted here
PEER = "198.51.100.20"  # the Tencent host, as the login's sshd check names it
FIRST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirstKeyFirstKeyFirstKeyFirstKeyFirstKey0000"
SECOND_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISecondKeySecondKeySecondKeySecondKeySecond00"


def accounts(host: SshHost, database: str) -> list[str]:
    return (host.standin_state / "accounts" / database).read_text().splitlines()


def calls(host: SshHost) -> list[str]:
    return (host.standin_state / "accounts" / "calls.log").read_text().splitlines()


def test_the_login_is_made_once_with_one_root_owned_key_and_a_limited_slice(host: SshHost):
    plan = plan_of("alibaba", paths=host.paths())
    layout = plan.layout
    line = authorized_line(FIRST_KEY, [9100, 9104])
    first = host.step(login_step("alibaba-db", layout, line, PEER))
    assert first.code == 0, first
    assert f"metrics login: user {METRICS_USER} created" in first.stdout, first

    (passwd,) = accounts(host, "passwd")
    name, _, uid, _, _, home_dir, shell = passwd.split(":")
    assert (name, home_dir, shell) == (METRICS_USER, home(layout), "/usr/sbin/nologin")
    (shadow,) = accounts(host, "shadow")
    assert shadow.split(":")[1] == "*"  # unlocked, and no password matches it
    keys = Path(home(layout)) / ".ssh" / "authorized_keys"
    assert keys.read_text() == line
    for path, mode in ((keys, 0o644), (keys.parent, 0o755), (keys.parent.parent, 0o755)):
        info = path.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, mode), path
    dropin = Path(layout.paths.units) / f"user-{uid}.slice.d" / "platform-metrics.conf"
    assert dropin.read_text() == "[Slice]\nMemoryMax=8M\nMemorySwapMax=0\nTasksMax=16\n"
    assert "daemon-reload" in host.systemctl_calls()

    again = host.step(login_step("alibaba-db", layout, line, PEER))
    assert again.stdout.strip().splitlines()[-1] == "metrics login: unchanged", again
    assert len([c for c in calls(host) if c.startswith("useradd")]) == 1


def test_a_server_that_forbids_forwarding_is_one_line_before_anything_changes(host: SshHost, tmp_path: Path):
    """A host whose sshd does not let the user forward TCP from the peer: the step says so and makes
    no user; a tunnel would never come up on the other host."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(tmp_path / "host")], check=True)
    config = tmp_path / "sshd_config"
    config.write_text(
        f"HostKey {tmp_path / 'host'}\nAllowTcpForwarding yes\nMatch Address {PEER}\n  AllowTcpForwarding no\n"
    )
    plan = plan_of("alibaba", paths=host.paths())
    refused = host.step(login_step("alibaba-db", plan.layout, authorized_line(FIRST_KEY, [9100]), PEER, str(config)))
    assert refused.code == 4, refused
    assert f"does not let {METRICS_USER} forward TCP from {PEER} (AllowTcpForwarding no" in refused.stderr, refused
    assert not (host.standin_state / "accounts" / "calls.log").exists()  # no account tool ran
    assert not (Path(home(plan.layout)) / ".ssh").exists()
    # The same server with forwarding allowed: the login is made.
    config.write_text(f"HostKey {tmp_path / 'host'}\nAllowTcpForwarding local\n")
    allowed = host.step(login_step("alibaba-db", plan.layout, authorized_line(FIRST_KEY, [9100]), PEER, str(config)))
    assert allowed.code == 0, allowed


def test_a_new_key_replaces_the_old_and_ends_its_sessions_and_no_key_takes_the_login_away(host: SshHost):
    plan = plan_of("alibaba", paths=host.paths())
    layout = plan.layout
    assert host.step(login_step("alibaba-db", layout, authorized_line(FIRST_KEY, [9100]), PEER)).code == 0
    rotated = host.step(login_step("alibaba-db", layout, authorized_line(SECOND_KEY, [9100]), PEER))
    assert rotated.code == 0, rotated
    keys = Path(home(layout)) / ".ssh" / "authorized_keys"
    assert SECOND_KEY in keys.read_text()
    assert FIRST_KEY not in keys.read_text()
    assert f"pkill -u {METRICS_USER}" in calls(host)
    assert len([c for c in calls(host) if c.startswith("useradd")]) == 1

    removed = host.step(login_step("alibaba-db", layout, "", PEER))
    assert removed.code == 0, removed
    assert f"metrics login: {METRICS_USER}'s key removed" in removed.stdout, removed
    assert not keys.exists()
    quiet = host.step(login_step("alibaba-db", layout, "", PEER))
    assert "metrics login: unchanged (no login)" in quiet.stdout, quiet


# --- The client's side: the monitoring step installs the tunnel and its key -------------------


class PeerSshd:
    """The scraped host's sshd, on loopback: Debian's, with the tunnel's authorized_keys line for root
    (the harness's own sshd forwards nothing)."""

    def __init__(self, directory: Path, exporter_port: int) -> None:
        directory.mkdir(mode=0o700)
        self.directory = directory
        self.key = directory / "tunnel"
        for key in (directory / "host", self.key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)], check=True)
        self.host_key = " ".join((directory / "host.pub").read_text().split()[:2])
        public = self.key.with_suffix(".pub").read_text()
        (directory / "authorized_keys").write_text(authorized_line(public, [exporter_port]))
        (self.port,) = free_ports(1)
        config = directory / "sshd_config"
        config.write_text(
            "\n".join(
                (
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {directory / 'host'}",
                    f"AuthorizedKeysFile {directory / 'authorized_keys'}",
                    f"PidFile {directory / 'sshd.pid'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "",
                )
            )
        )
        self.process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)

    def new_key(self, path: Path) -> str:
        """A second key, authorized beside the first (as the login step writes a new key); its private half."""
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
        line = (self.directory / "authorized_keys").read_text()
        options = line.split(" ")[0]
        (self.directory / "authorized_keys").write_text(line + f"{options} {path.with_suffix('.pub').read_text()}")
        return path.read_text()

    def tunnel(self, exporter_port: int) -> MetricsTunnel:
        return MetricsTunnel("root", self.port, self.host_key, (("node-exporter", exporter_port),))

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def test_the_monitoring_step_runs_the_tunnel_with_its_key_and_takes_both_away(host: SshHost, tmp_path: Path):
    """The Tencent side on loopback: the key arrives on stdin and lands 0600, the tunnel's unit runs
    the stack's ssh command line through a real sshd that holds the login's restrictions, and the
    step's health check reads this host's node exporter through it; a new key restarts the tunnel;
    a plan without a tunnel stops it and removes the key."""
    names = ["node-exporter", "prometheus", "alertmanager", "blackbox-exporter"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    plan = host.plan(
        "tencent",
        extra={"databaseStack": "organization/platform/alibaba", "monitoring": {"enabled": True, "ports": ports}},
    )
    peer = PeerSshd(tmp_path / "peer", ports["node-exporter"])
    view = replace(plan.monitoring_plan, peer_address="127.0.0.1", tunnel=peer.tunnel(ports["node-exporter"]))
    key_file = Path(plan.paths.secrets) / "monitoring" / KEY_CREDENTIAL
    try:
        first = host.step(monitoring_step("app", view), webhook_stdin(WEBHOOK, None, peer.key.read_text()), timeout=180)
        assert first.code == 0, first
        assert "monitoring: the metrics tunnel's key written" in first.stdout, first
        assert "monitoring: metrics-tunnel (re)started" in first.stdout, first
        assert key_file.read_text() == peer.key.read_text()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        unit = (Path(plan.paths.units) / "platform-mon-metrics-tunnel.service").read_text()
        assert f"-L 127.0.0.1:19100:127.0.0.1:{ports['node-exporter']}" in unit
        assert f"LoadCredential={KEY_CREDENTIAL}:{key_file}" in unit

        again = host.step(monitoring_step("app", view), webhook_stdin(WEBHOOK, None, peer.key.read_text()), timeout=180)
        assert again.stdout.strip() == "monitoring: unchanged", again

        # A new key (the Alibaba stack replaced it, and its login authorized it): the tunnel restarts with it.
        new = peer.new_key(tmp_path / "new")
        rotated = host.step(monitoring_step("app", view), webhook_stdin(WEBHOOK, None, new), timeout=180)
        assert rotated.code == 0, rotated
        assert "monitoring: the metrics tunnel's key written" in rotated.stdout, rotated
        assert "monitoring: metrics-tunnel (re)started" in rotated.stdout, rotated
        assert key_file.read_text() == new

        gone = host.step(monitoring_step("app", replace(view, tunnel=None)), webhook_stdin(WEBHOOK), timeout=180)
        assert gone.code == 0, gone
        assert "monitoring: platform-mon-metrics-tunnel.service stopped and removed" in gone.stdout, gone
        assert "monitoring: the metrics tunnel's key removed" in gone.stdout, gone
        assert not key_file.exists()
    finally:
        peer.close()
