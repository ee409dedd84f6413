"""A check that a timer runs on the host, writing textfile metrics for node exporter: its oneshot
service and timer, and the step that installs them (``check_install.sh``). The replication health
check and the certificate check are two of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.formats import unit_value
from components.provisioning import Step
from plan import Layout


@dataclass(frozen=True)
class TimerCheck:
    what: str
    """What it checks, in the installer's summary ("replication healthy")."""
    service: str
    program: str
    """Where the check is installed (the service's ExecStart)."""
    metrics_file: str
    description: str
    timer_description: str
    timeout_s: int
    memory_max: str
    timer: tuple[str, ...]
    """The [Timer] section's lines."""

    def units(self) -> tuple[str, str]:
        """The oneshot service and its timer."""
        service = "\n".join(
            [
                "# Managed by Pulumi (platform plan); edits are overwritten.",
                "[Unit]",
                f"Description={unit_value(self.description)}",
                "",
                "[Service]",
                "Type=oneshot",
                f"ExecStart={self.program}",
                f"TimeoutStartSec={self.timeout_s}",
                f"MemoryMax={self.memory_max}",
                "Nice=10",
                "",
            ]
        )
        timer = "\n".join(
            [
                "# Managed by Pulumi (platform plan); edits are overwritten.",
                "[Unit]",
                f"Description={unit_value(self.timer_description)}",
                "",
                "[Timer]",
                *self.timer,
                "",
                "[Install]",
                "WantedBy=timers.target",
                "",
            ]
        )
        return service, timer

    def step(self, name: str, layout: Layout, script: str, secret: tuple[str, Any] | None = None) -> Step:
        """Installs the check (``script``) and its timer; runs it once and reports what it found.
        ``secret``: a file the check reads and the line the step writes there from its stdin (a
        secret Output; nothing on stdin removes the file)."""
        service, timer = self.units()
        return Step(
            name,
            files=("check_install.sh",),
            params={
                "WHAT": self.what,
                "SCRIPT_FILE": self.program,
                "SCRIPT_CONTENT": script,
                "UNIT_DIR": layout.paths.units,
                "SERVICE": self.service,
                "SERVICE_CONTENT": service,
                "TIMER_CONTENT": timer,
                "METRICS_FILE": self.metrics_file,
                "SECRET_FILE": secret[0] if secret else "",
            },
            label=self.service,
            sudo=layout.sudo,
            stdin=secret[1] if secret else None,
            handles_secrets=secret is not None,
        )
