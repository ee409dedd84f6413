"""The metrics tunnel's login over SSH (metrics_login.sh): the user made and unlocked once, its one
key written root-owned, its sessions' slice limited; a new key ends the old key's sessions, and an
empty key takes the login away. The account tools are the stand-ins' (the machine keeps its own
users); what sshd does with the line is the rehearsal's to prove (tests/rehearsal).
"""

from __future__ import annotations

import stat
from pathlib import Path

from components.metrics_tunnel import authorized_line, home, login_step
from plan import METRICS_USER
from tests.provisioning.harness import SshHost
from tests.stacks import plan_of

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
    first = host.step(login_step("alibaba-db", layout, line))
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

    again = host.step(login_step("alibaba-db", layout, line))
    assert again.stdout.strip().splitlines()[-1] == "metrics login: unchanged", again
    assert len([c for c in calls(host) if c.startswith("useradd")]) == 1


def test_a_new_key_replaces_the_old_and_ends_its_sessions_and_no_key_takes_the_login_away(host: SshHost):
    plan = plan_of("alibaba", paths=host.paths())
    layout = plan.layout
    assert host.step(login_step("alibaba-db", layout, authorized_line(FIRST_KEY, [9100]))).code == 0
    rotated = host.step(login_step("alibaba-db", layout, authorized_line(SECOND_KEY, [9100])))
    assert rotated.code == 0, rotated
    keys = Path(home(layout)) / ".ssh" / "authorized_keys"
    assert SECOND_KEY in keys.read_text()
    assert FIRST_KEY not in keys.read_text()
    assert f"pkill -u {METRICS_USER}" in calls(host)
    assert len([c for c in calls(host) if c.startswith("useradd")]) == 1

    removed = host.step(login_step("alibaba-db", layout, ""))
    assert removed.code == 0, removed
    assert f"metrics login: {METRICS_USER}'s key removed" in removed.stdout, removed
    assert not keys.exists()
    quiet = host.step(login_step("alibaba-db", layout, ""))
    assert "metrics login: unchanged (no login)" in quiet.stdout, quiet
