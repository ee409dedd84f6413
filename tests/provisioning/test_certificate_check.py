"""The certificate check over SSH: installed with its timer, it reads the certificates where they
are and writes their expiry as textfile metrics; a certificate six days from its end fires the
critical alert (promtool over the metric it wrote), a missing one is reported.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from components.certificates import certificate_check_step, certificate_files, check_program, metrics_file
from tests.components.test_monitoring import PROMTOOL, promtool_test, series, summary
from tests.provisioning.harness import SshHost
from tests.stacks import plan_of


def certificate(path: Path, days: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(path.with_suffix(".key")), "-out", str(path), "-days", str(days), "-subj", "/CN=test"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def test_the_check_reads_each_certificate_and_a_short_lived_one_fires_its_alert(host: SshHost, tmp_path: Path):
    plan = plan_of("alibaba", paths=host.paths())
    paths = plan.layout.paths
    files = certificate_files(paths, ["production-redis"], ["mysql"], None)
    ca, server, replica_ca = files
    certificate(Path(ca), 3650)
    certificate(Path(server), 6)
    step = certificate_check_step("alibaba-db", plan.layout, files, 30)

    first = host.step(step)
    assert first.code == 0, first  # a finding is reported, not a failed deploy
    # Whole days left, rounded down: 5 once a second has passed since the certificate was made, else 6.
    assert re.search(rf"^{re.escape(server)}: expires in [56] days", first.stdout, re.M), first
    assert re.search(rf"^{re.escape(ca)}: valid for 36(49|50) more days$", first.stdout, re.M), first
    assert f"{replica_ca}: not readable as a certificate" in first.stdout, first
    assert "platform-certificate-check: installed, timer active (certificates NOT healthy" in first.stdout, first
    again = host.step(step)
    assert "platform-certificate-check: unchanged" in again.stdout, again
    assert Path(check_program(paths)).stat().st_mode & 0o777 == 0o755

    metrics = Path(metrics_file(paths)).read_text()
    assert f'platform_certificate_readable{{file="{replica_ca}"}} 0' in metrics
    expiry = {
        file: int(value)
        for file, value in re.findall(r'platform_certificate_expiry_timestamp_seconds\{file="([^"]+)"\} (\d+)', metrics)
    }
    assert set(expiry) == {ca, server}
    left = expiry[server] - int(time.time())
    assert 5 * 86400 < left <= 6 * 86400

    if not Path(PROMTOOL).exists():
        pytest.skip("needs promtool (Debian's prometheus package; .ci/run installs it)")
    # The metric as Prometheus would scrape it (time() is the evaluation time, from 0): the server
    # certificate fires both alerts, the CA neither.
    watcher = plan_of("tencent")
    labels = {"host": "alibaba", "instance": "192.0.2.10:9100", "job": "node-exporter"}
    now = int(time.time())
    inputs = [
        series("platform_certificate_expiry_timestamp_seconds", {"file": file, **labels}, f"{expiry[file] - now}x5")
        for file in (ca, server)
    ]

    def fired(alert: str, severity: str) -> dict[str, object]:
        text = summary(watcher, alert, {**labels, "file": server})
        return {"exp_labels": {**labels, "file": server, "severity": severity}, "exp_annotations": {"summary": text}}

    test = {
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": name, "exp_alerts": [fired(name, severity)]}
            for name, severity in (("CertificateExpiringSoon", "critical"), ("CertificateExpiring", "warning"))
        ],
    }
    tested = promtool_test(tmp_path, watcher, [test])
    assert tested.returncode == 0, tested.stdout + tested.stderr
