"""Certificate expiry on a host: a timer reads the certificates the platform uses there and writes
when each stops being valid as textfile metrics (``cert_check.sh``); the alert rules warn 30 and 7
days ahead (``components/monitoring.py``: CertificateExpiring, CertificateExpiringSoon).

The files: on the Alibaba host each replication source's CA and server certificate; on the Tencent
host each replica's copy of the CA and the proxy's certificate (certbot's, say). pulumi-tls renews a
server certificate 30 days before it ends (``components/pki.py``), so one that gets closer did not
reach the host.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.engines import TLS_CA
from components.engines.base import TLS_CERT
from components.formats import unit_value
from components.provisioning import Step, render
from components.replication import replica_ca_file, tls_dir
from plan import Layout, Paths
from policies.facts import metrics_dir

CHECK_SERVICE = "platform-certificate-check"
CHECK_INTERVAL = "1h"  # chosen here: expiry moves in days; an hour is soon enough and costs nothing


def certificate_files(paths: Paths, sources: Sequence[str], replicas: Sequence[str], proxy: str | None) -> list[str]:
    """The certificate files of this host, from its plan's replication sources and replicas and proxy."""
    files = [f"{tls_dir(name, paths)}/{leaf}" for name in sources for leaf in (TLS_CA, TLS_CERT)]
    files += [replica_ca_file(name, paths) for name in replicas]
    if proxy is not None:
        files.append(proxy)
    return files


def metrics_file(paths: Paths) -> str:
    return f"{metrics_dir(paths.state)}/certificates.prom"


def check_program(paths: Paths) -> str:
    return f"{paths.root}/bin/{CHECK_SERVICE}"


def check_units(paths: Paths) -> tuple[str, str]:
    """The oneshot service and its timer."""
    service = "\n".join(
        [
            "# Managed by Pulumi (platform plan); edits are overwritten.",
            "[Unit]",
            f"Description={unit_value('Expiry of the platform certificates (metrics for the textfile collector)')}",
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart={check_program(paths)}",
            "TimeoutStartSec=60",
            "MemoryMax=32M",
            "Nice=10",
            "",
        ]
    )
    timer = "\n".join(
        [
            "# Managed by Pulumi (platform plan); edits are overwritten.",
            "[Unit]",
            f"Description={unit_value('Read the certificates every hour')}",
            "",
            "[Timer]",
            "OnBootSec=5min",
            f"OnUnitActiveSec={CHECK_INTERVAL}",
            "Persistent=true",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    return service, timer


def certificate_check_step(component: str, layout: Layout, files: Sequence[str], warn_days: int) -> Step:
    """Installs the check and its timer; runs it once (a certificate close to its end is reported)."""
    paths = layout.paths
    service, timer = check_units(paths)
    script = render(
        ["cert_check.sh"], {"CERT_FILES": " ".join(files), "METRICS_FILE": metrics_file(paths), "WARN_DAYS": warn_days}
    )
    return Step(
        f"{component}-certificate-check",
        files=("check_install.sh",),
        params={
            "WHAT": "certificates",
            "SCRIPT_FILE": check_program(paths),
            "SCRIPT_CONTENT": script,
            "UNIT_DIR": paths.units,
            "SERVICE": CHECK_SERVICE,
            "SERVICE_CONTENT": service,
            "TIMER_CONTENT": timer,
            "METRICS_FILE": metrics_file(paths),
        },
        label=CHECK_SERVICE,
        sudo=layout.sudo,
    )
