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
from components.provisioning import Step, render
from components.replication import replica_ca_file, tls_dir
from components.timer_checks import TimerCheck
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


def certificate_check(paths: Paths) -> TimerCheck:
    """The check as the timer runs it: every hour, and at boot a run missed while the host was off."""
    return TimerCheck(
        what="certificates",
        service=CHECK_SERVICE,
        program=check_program(paths),
        metrics_file=metrics_file(paths),
        description="Expiry of the platform certificates (metrics for the textfile collector)",
        timer_description="Read the certificates every hour",
        timeout_s=60,
        memory_max="32M",
        timer=("OnBootSec=5min", f"OnUnitActiveSec={CHECK_INTERVAL}", "Persistent=true"),
    )


def certificate_check_step(component: str, layout: Layout, files: Sequence[str], warn_days: int) -> Step:
    """Installs the check and its timer; runs it once (a certificate close to its end is reported)."""
    paths = layout.paths
    script = render(
        ["cert_check.sh"], {"CERT_FILES": " ".join(files), "METRICS_FILE": metrics_file(paths), "WARN_DAYS": warn_days}
    )
    return certificate_check(paths).step(f"{component}-certificate-check", layout, script)
