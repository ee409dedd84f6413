"""Monitoring rendered from the plan: Prometheus's scrape configuration, its alert rules and
Alertmanager's routing. Pure functions of the plan (and the targets the caller names), checked
with the real ``promtool`` and ``amtool`` in tests/test_monitoring.py.

The metrics the rules read: node exporter's (memory, disk, OOM kills, systemd unit restarts,
the textfile collector), blackbox exporter's ``probe_success`` for each service's health path,
and the platform's own textfile metrics (components/scripts/backup_run.sh,
repl_health.sh: ``platform_backup_last_success_timestamp_seconds``,
``platform_replication_healthy``, ``platform_replication_lag_seconds``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from plan import MONITORING_PROGRAMS, Plan

SCRAPE_INTERVAL_S = 30  # chosen here: two samples a minute keeps Prometheus small on a 4 GiB host
# Chosen here: what the disk of the Tencent host can hold beside the services (about 1 GB at this
# scrape rate and target count); the retention is what bounds Prometheus's disk, not its memory.
RETENTION = "15d"
BLACKBOX = "127.0.0.1:9115"
ALERTMANAGER = "127.0.0.1:9093"
# The webhook URL is a secret: Alertmanager reads it from this file (0600, its own user's).
WEBHOOK_URL_FILE = "/etc/platform/secrets/alertmanager/webhook-url"


def platform_units(plan: Plan) -> str:
    """The units whose restarts count, as a regex of node exporter's ``name`` label: the services'
    (``platform-<name>.service``) and the databases' Quadlet units (``<name>.service``). Names are
    lower-case letters, digits and '-' (plan.py), nothing a regex would read as syntax."""
    names = [f"platform-{s.name}" for s in plan.services] + [db.name for db in plan.databases]
    # Backslashes doubled: the regex sits in a PromQL string, whose own escapes come first.
    return "|".join(f"{name}\\\\.service" for name in names) or "platform-.*\\\\.service"


def scrape_targets(plan: Plan) -> dict[str, list[str]]:
    """Job -> targets, from the plan: this host's exporters on loopback and the peer's through its
    /32 (the ports the firewall opens to this host, plan.peer_monitoring_ports)."""
    if not plan.runs_prometheus:
        return {}
    ports = {port: name for name, (port, _) in MONITORING_PROGRAMS.items()}
    jobs: dict[str, list[str]] = {}
    for workload in plan.monitoring_workloads:
        if workload.name.endswith("exporter") and workload.name != "blackbox-exporter":
            jobs.setdefault(workload.name, []).append(f"127.0.0.1:{workload.ports[0].port}")
    for port in plan.peer_monitoring_ports:
        jobs.setdefault(ports[port], []).append(f"{plan.firewall.peer_address}:{port}")
    return jobs


def alert_rules(plan: Plan) -> dict[str, Any]:
    """The rule groups, thresholds from ``platform:monitoring.alerting``."""
    alerting = plan.monitoring.alerting
    window = f"{alerting.restart_window_minutes}m"
    rules = [
        _alert(
            "HostMemoryLow",
            f"100 * node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < {alerting.memory_available_percent}",
            "10m",
            "warning",
            f"{{{{ $labels.instance }}}} has less than {alerting.memory_available_percent}% of its memory available",
        ),
        _alert(
            "OomKill",
            "increase(node_vmstat_oom_kill[10m]) > 0",
            "0m",
            "critical",
            "the kernel OOM-killed a process on {{ $labels.instance }}",
        ),
        _alert(
            "UnitRestarting",
            f'increase(node_systemd_service_restart_total{{name=~"{platform_units(plan)}"}}[{window}])'
            f" >= {alerting.restarts}",
            "0m",
            "critical",
            f"{{{{ $labels.name }}}} on {{{{ $labels.instance }}}} restarted at least {alerting.restarts} times"
            f" in {window}",
        ),
        _alert(
            "DiskFull",
            '100 * (1 - node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"}'
            ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"})'
            f" > {alerting.disk_used_percent}",
            "10m",
            "warning",
            f"{{{{ $labels.mountpoint }}}} on {{{{ $labels.instance }}}} is over {alerting.disk_used_percent}% full",
        ),
        _alert(
            "ServiceHealthFailing",
            'probe_success{job="service-health"} == 0',
            f"{alerting.health_failing_minutes}m",
            "critical",
            "{{ $labels.service }} does not answer its health check",
        ),
        _alert(
            "ReplicationLagging",
            f"platform_replication_lag_seconds > {alerting.replication_lag_s}",
            "5m",
            "warning",
            f"{{{{ $labels.replica }}}} is more than {alerting.replication_lag_s}s behind its source",
        ),
        _alert(
            "ReplicaStopped",
            "platform_replication_healthy == 0",
            "5m",
            "critical",
            "{{ $labels.replica }} does not replicate",
        ),
        _alert(
            "BackupTooOld",
            f"time() - platform_backup_last_success_timestamp_seconds > {alerting.backup_max_age_hours * 3600}",
            "0m",
            "critical",
            f"the last good backup of {{{{ $labels.database }}}} is older than {alerting.backup_max_age_hours}h",
        ),
    ]
    return {"groups": [{"name": "platform", "rules": rules}]}


def _alert(name: str, expr: str, for_: str, severity: str, summary: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_ != "0m":
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary}
    return rule


def alert_names(plan: Plan) -> list[str]:
    return [rule["alert"] for group in alert_rules(plan)["groups"] for rule in group["rules"]]


def probed_services(plan: Plan) -> list[Any]:
    wanted = plan.monitoring.probes
    return [s for s in plan.services if wanted is None or s.name in wanted]


def prometheus_config(plan: Plan, targets: Mapping[str, Sequence[str]], rule_file: str) -> dict[str, Any]:
    """Scrape jobs: each of ``targets`` (job -> host:port, from the plan), and one blackbox probe
    per service health path."""
    jobs: list[dict[str, Any]] = [
        {"job_name": job, "static_configs": [{"targets": list(addresses)}]} for job, addresses in targets.items()
    ]
    probes = probed_services(plan)
    if probes:
        jobs.append(
            {
                "job_name": "service-health",
                "metrics_path": "/probe",
                "params": {"module": ["http_2xx"]},
                "static_configs": [
                    {
                        "targets": [f"http://127.0.0.1:{s.port}{s.health_path}"],
                        "labels": {"service": s.name},
                    }
                    for s in probes
                ],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": BLACKBOX},
                ],
            }
        )
    return {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
        "rule_files": [rule_file],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER]}]}]},
        "scrape_configs": jobs,
    }


def alertmanager_config(plan: Plan, url_file: str = WEBHOOK_URL_FILE) -> dict[str, Any]:
    """One receiver: Slack's incoming webhook (Alertmanager's own format for it) with the URL read
    from a file, so the secret is never in the configuration."""
    return {
        "route": {
            "receiver": "platform",
            "group_by": ["alertname", "instance"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "platform",
                "slack_configs": [
                    {
                        "api_url_file": url_file,
                        "send_resolved": True,
                        "title": "{{ .Status | toUpper }}: {{ .CommonLabels.alertname }}",
                        "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
                    }
                ],
            }
        ],
    }


def as_yaml(document: Mapping[str, Any]) -> str:
    return "# Managed by Pulumi (platform plan); edits are overwritten.\n" + yaml.safe_dump(
        dict(document), sort_keys=False, allow_unicode=True, width=1000
    )
