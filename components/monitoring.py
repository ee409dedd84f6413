"""Monitoring rendered from the plan: Prometheus's scrape configuration, its alert rules and
Alertmanager's routing. Pure functions of the plan (and the targets the caller names), checked
with the real ``promtool`` and ``amtool`` in tests/components/test_monitoring.py.

The metrics the rules read: node exporter's (memory, disk, OOM kills, systemd unit restarts,
the textfile collector), blackbox exporter's ``probe_success`` for each service's health path,
and the platform's own textfile metrics (components/scripts/backup_run.sh,
repl_health.sh: ``platform_backup_last_success_timestamp_seconds``,
``platform_replication_healthy``, ``platform_replication_lag_seconds``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from components import exporters, grafana, metrics_tunnel, replication
from components.exporters import unit_name
from components.provisioning import Step
from plan import METRICS_TUNNEL, MONITORING_PROGRAMS, MonitoringPlan, Paths, Receiver, tunnel_port
from policies.facts import SCRAPED_EXPORTERS, metrics_dir

# Chosen here: what the disk of the Tencent host can hold beside the services (about 1 GB at this
# scrape rate and target count); the retention is what bounds Prometheus's disk, not its memory.
RETENTION = "15d"
# Each program's Debian and Ubuntu package: its binary is /usr/bin/<package> and its own unit
# <package>.service, which the platform stops (it runs the program under its own unit, with its
# limit and address).
PROGRAMS: dict[str, str] = {
    "node-exporter": "prometheus-node-exporter",
    "mysqld-exporter": "prometheus-mysqld-exporter",
    "postgres-exporter": "prometheus-postgres-exporter",
    "redis-exporter": "prometheus-redis-exporter",
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "blackbox-exporter": "prometheus-blackbox-exporter",
    # The DingTalk relay is a script of this repository run by the host's Python (python3.service
    # does not exist: nothing to stop).
    "alert-relay": "python3",
    # The metrics tunnel's client (components/metrics_tunnel.py): OpenSSH's, which has no unit of its own.
    METRICS_TUNNEL: "openssh-client",
    # Grafana's own APT repository (apt.grafana.com), which the host must have: no Debian archive
    # carries it. Its binary and unit are named after its server, not its package.
    "grafana": "grafana",
}
OTHER_BINARIES = {"grafana": "/usr/sbin/grafana-server", METRICS_TUNNEL: "/usr/bin/ssh"}
OTHER_PACKAGED_UNITS = {"grafana": "grafana-server.service"}
GRAFANA_PASSWORD_CREDENTIAL = "grafana-admin-password"  # noqa: S105 - a file name
RELAY_SCRIPT = Path(__file__).parent / "scripts" / "alert_relay.py"
# systemd's StateDirectory=platform/grafana (DynamicUser= keeps it under /var/lib/private, linked here).
GRAFANA_DATA = "/var/lib/platform/grafana"


def binary_of(program: str) -> str:
    return OTHER_BINARIES.get(program, f"/usr/bin/{PROGRAMS[program]}")


def packaged_unit(program: str) -> str:
    return OTHER_PACKAGED_UNITS.get(program, f"{PROGRAMS[program]}.service")


WEBHOOK_CREDENTIAL = "webhook-url"
SIGNING_CREDENTIAL = "signing-secret"


def platform_units(monitoring: MonitoringPlan) -> str:
    """The units whose restarts count, as a regex of node exporter's ``name`` label: the services'
    (``platform-<name>.service``) and the databases' Quadlet units (``<name>.service``). Names are
    lower-case letters, digits and '-' (the plan), nothing a regex would read as syntax."""
    names = [f"platform-{s.name}" for s in monitoring.services] + [db.name for db in monitoring.databases]
    # Backslashes doubled: the regex sits in a PromQL string, whose own escapes come first.
    return "|".join(f"{name}\\\\.service" for name in names) or "platform-.*\\\\.service"


def scrape_targets(monitoring: MonitoringPlan) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Job -> (address, labels), from the plan: this host's exporters on loopback, and the peer's
    through the metrics tunnel's forwards on loopback, labelled with the peer's address as their
    ``instance``. Every target carries its ``host`` (the alerts name it, and a host's HostDown
    holds back its other alerts by it)."""
    if not monitoring.runs_prometheus:
        return {}
    jobs: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for workload in monitoring.workloads:
        if workload.name in SCRAPED_EXPORTERS:
            jobs.setdefault(workload.name, []).append(
                (f"127.0.0.1:{workload.ports[0].port}", {"host": monitoring.host})
            )
    if monitoring.tunnel is not None:
        for name, local, port in metrics_tunnel.forwards(monitoring.tunnel):
            labels = {"host": monitoring.peer_host, "instance": f"{monitoring.peer_address}:{port}"}
            jobs.setdefault(name, []).append((f"127.0.0.1:{local}", labels))
    return jobs


def alert_rules(monitoring: MonitoringPlan) -> dict[str, Any]:
    """The rule groups, thresholds from ``platform:monitoring.alerting``."""
    alerting = monitoring.settings.alerting
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
            f'increase(node_systemd_service_restart_total{{name=~"{platform_units(monitoring)}"}}[{window}])'
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
        *_consistency_alerts(alerting.replication_lag_s),
        _alert(
            "HostDown",
            'up{job="node-exporter"} == 0',
            f"{alerting.target_down_minutes}m",
            "critical",
            "{{ $labels.host }} does not answer ({{ $labels.instance }}): the host, its network or its node exporter "
            "is down; its other alerts are held back while this one fires",
        ),
        _alert(
            "TargetDown",
            'up{job!="node-exporter"} == 0',
            f"{alerting.target_down_minutes}m",
            "critical",
            "{{ $labels.job }} on {{ $labels.host }} does not answer its scrape ({{ $labels.instance }})",
        ),
        _alert(
            "DatabaseDown",
            "mysql_up == 0 or pg_up == 0 or redis_up == 0",
            f"{alerting.target_down_minutes}m",
            "critical",
            "the database {{ $labels.job }} watches on {{ $labels.host }} does not answer it",
        ),
        _alert(
            "DatabaseUnreachable",
            'probe_success{job="database-port"} == 0',
            f"{alerting.target_down_minutes}m",
            "critical",
            "{{ $labels.workload }} on {{ $labels.host }} does not accept connections ({{ $labels.instance }})",
        ),
        _alert(
            "DatabaseUnhealthy",
            # Not while a port of the same database refuses connections: DatabaseUnreachable says it.
            'probe_success{job="database-health"} == 0'
            ' unless on(workload, host) (probe_success{job="database-port"} == 0)',
            f"{alerting.target_down_minutes}m",
            "critical",
            "{{ $labels.workload }} on {{ $labels.host }} accepts connections but does not answer its health "
            "request ({{ $labels.instance }})",
        ),
        *(
            _alert(
                "TargetMissing",
                f'absent(up{{job="{job}"}})',
                "10m",
                "warning",
                "Prometheus scrapes no {{ $labels.job }} target at all: its job is missing from the configuration",
            )
            for job in expected_jobs(monitoring)
        ),
        _alert(
            "CpuBusy",
            f'100 * (1 - avg by (host, instance) (rate(node_cpu_seconds_total{{mode="idle"}}[5m])))'
            f" > {alerting.cpu_busy_percent}",
            f"{alerting.cpu_busy_minutes}m",
            "warning",
            f"{{{{ $labels.host }}}} has been more than {alerting.cpu_busy_percent}% busy on all its CPUs"
            f" for {alerting.cpu_busy_minutes} minutes",
        ),
        _alert(
            "ProbeSlow",
            f'probe_duration_seconds{{job="service-health"}} > {alerting.probe_slow_ms / 1000:g}',
            "5m",
            "warning",
            f"{{{{ $labels.service }}}} takes more than {alerting.probe_slow_ms} ms to answer its health check",
        ),
        _alert(
            "CertificateExpiring",
            f"platform_certificate_expiry_timestamp_seconds - time() < {alerting.certificate_warning_days} * 86400",
            "0m",
            "warning",
            f"{{{{ $labels.file }}}} on {{{{ $labels.host }}}} stops being valid in less than"
            f" {alerting.certificate_warning_days} days: it was not renewed",
        ),
        _alert(
            "CertificateExpiringSoon",
            f"platform_certificate_expiry_timestamp_seconds - time() < {alerting.certificate_critical_days} * 86400",
            "0m",
            "critical",
            f"{{{{ $labels.file }}}} on {{{{ $labels.host }}}} stops being valid in less than"
            f" {alerting.certificate_critical_days} days",
        ),
        _alert(
            "CertificateUnreadable",
            "platform_certificate_readable == 0",
            "2h",  # two runs of the hourly check: a file written after the first one is no alert
            "warning",
            "{{ $labels.file }} on {{ $labels.host }} is missing or not a certificate",
        ),
        # The dead man's switch (components/heartbeat.py): always firing, routed to nobody; the
        # heartbeat timer pings out while Alertmanager holds it.
        _alert(
            WATCHDOG,
            "vector(1)",
            "0m",
            "none",
            "always firing while Prometheus evaluates its rules and reaches Alertmanager: the heartbeat's signal",
        ),
        _alert(
            "HeartbeatNotSent",
            f"time() - platform_heartbeat_last_sent_timestamp_seconds > {HEARTBEAT_MISSED_S}",
            "0m",
            "warning",
            "the heartbeat service has taken no ping from {{ $labels.host }} for 10 minutes, so it pages as if"
            " this host were dead: check platform:heartbeatUrl and the host's way out to it",
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


def _consistency_alerts(lag_s: int) -> list[dict[str, Any]]:
    """The replicas' row counts against their sources' (repl_counts.sh on both hosts, every
    COUNTS_INTERVAL_S). A replica's count taken up to an interval ago is its source's of up to the
    lag before that, so it must lie within what the source counted in the last two intervals and
    the lag; a table the source has with rows must be there, in each database the replica has."""
    window = f"{-(-(2 * replication.COUNTS_INTERVAL_S + lag_s) // 60)}m"  # minutes, rounded up
    replica, source = 'platform_replication_rows{side="replica"}', 'platform_replication_rows{side="source"}'
    differ = (
        f"({replica} < on(source, table) group_left() min_over_time({source}[{window}]))"
        f" or ({replica} > on(source, table) group_left() max_over_time({source}[{window}]))"
        f" or ({source} > 0 unless on(source, table) {replica}"
        f" and on(source, database) count({replica}) by (source, database))"
    )
    # Chosen here: two counting runs, so one count caught between a burst's writes is no page.
    held = f"{2 * replication.COUNTS_INTERVAL_S // 60}m"
    return [
        _alert(
            "ReplicaRowsDiffer",
            differ,
            held,
            "critical",
            f"{{{{ $labels.table }}}} of {{{{ $labels.source }}}}: the replica's count is none the source had in the "
            f"last {window}, or the replica lacks the table (the replica lost or gained rows)",
        ),
        _alert(
            "ReplicationCountFailing",
            "platform_replication_counted == 0",
            held,
            "warning",
            "the row counts of {{ $labels.source }} on the {{ $labels.side }} side cannot be taken "
            f"(journalctl -u {replication.COUNTS_SERVICE}): its consistency is not watched",
        ),
    ]


def expected_jobs(monitoring: MonitoringPlan) -> list[str]:
    """The scrape jobs this Prometheus must have (each an absent-series alert when it has none)."""
    jobs = list(scrape_targets(monitoring))
    if probed_services(monitoring):
        jobs.append("service-health")
    if monitoring.peer_databases:
        jobs.append("database-port")
    if monitoring.peer_health:
        jobs.append("database-health")
    return jobs


def _alert(name: str, expr: str, for_: str, severity: str, summary: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_ != "0m":
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary}
    return rule


def alert_names(monitoring: MonitoringPlan) -> list[str]:
    return [rule["alert"] for group in alert_rules(monitoring)["groups"] for rule in group["rules"]]


def probed_services(monitoring: MonitoringPlan) -> list[Any]:
    wanted = monitoring.settings.probes
    return [s for s in monitoring.services if wanted is None or s.name in wanted]


def port_of(monitoring: MonitoringPlan, name: str) -> int:
    return monitoring.settings.ports.get(name, MONITORING_PROGRAMS[name][0])


def prometheus_config(
    monitoring: MonitoringPlan, targets: Mapping[str, Sequence[tuple[str, Mapping[str, str]]]], rule_file: str
) -> dict[str, Any]:
    """Scrape jobs: each of ``targets`` (job -> (host:port, labels), from the plan), and one blackbox
    probe per service health path."""
    jobs: list[dict[str, Any]] = [
        {
            "job_name": job,
            "static_configs": [{"targets": [address], "labels": dict(labels)} for address, labels in found],
        }
        for job, found in targets.items()
    ]
    probes = probed_services(monitoring)
    blackbox = port_of(monitoring, "blackbox-exporter")
    if probes:
        health = [
            (f"http://127.0.0.1:{s.port}{s.health_path}", {"service": s.name, "host": monitoring.host}) for s in probes
        ]
        jobs.append(_probe_job("service-health", "http_2xx", health, blackbox))
    if monitoring.peer_databases:
        ports = [
            (f"{monitoring.peer_address}:{port}", {"workload": name, "host": monitoring.peer_host})
            for name, port in monitoring.peer_databases
        ]
        jobs.append(_probe_job("database-port", "tcp_connect", ports, blackbox))
    if monitoring.peer_health:
        asked = [
            (f"http://{monitoring.peer_address}:{port}{path}", {"workload": name, "host": monitoring.peer_host})
            for name, port, path in monitoring.peer_health
        ]
        jobs.append(_probe_job("database-health", "http_answers", asked, blackbox))
    interval = f"{monitoring.settings.scrape_interval_s}s"
    alertmanager = f"127.0.0.1:{port_of(monitoring, 'alertmanager')}"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [rule_file],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": jobs,
    }


def _probe_job(name: str, module: str, targets: Sequence[tuple[str, dict[str, str]]], blackbox: int) -> dict[str, Any]:
    """A job the blackbox exporter on this host runs: each (target, labels) probed with ``module``,
    the target as the ``instance``."""
    return {
        "job_name": name,
        "metrics_path": "/probe",
        "params": {"module": [module]},
        "static_configs": [{"targets": [target], "labels": labels} for target, labels in targets],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": f"127.0.0.1:{blackbox}"},
        ],
    }


def alertmanager_config(monitoring: MonitoringPlan, url_file: str) -> dict[str, Any]:
    """One receiver: Slack's incoming webhook (Alertmanager's own format for it) with the URL read
    from a file, so the secret is never in the configuration; or the DingTalk relay on loopback,
    which holds the robot's URL itself."""
    if monitoring.settings.receiver == Receiver.DINGTALK:
        relay = f"http://127.0.0.1:{port_of(monitoring, 'alert-relay')}/alert"
        # The relay lists 20 alerts a message (DingTalk caps a message's size).
        receiver: dict[str, Any] = {"webhook_configs": [{"url": relay, "send_resolved": True, "max_alerts": 20}]}
    else:
        receiver = {
            "slack_configs": [
                {
                    "api_url_file": url_file,
                    "send_resolved": True,
                    "title": "{{ .Status | toUpper }}: {{ .CommonLabels.alertname }}",
                    "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
                }
            ]
        }
    return {
        "route": {
            "receiver": "platform",
            "group_by": ["alertname", "instance"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            # The Watchdog is the heartbeat's signal, never a message (components/heartbeat.py).
            "routes": [{"receiver": WATCHDOG_RECEIVER, "matchers": [f'alertname="{WATCHDOG}"']}],
        },
        "receivers": [{"name": "platform", **receiver}, {"name": WATCHDOG_RECEIVER}],
        # A host that is down pages once: its other alerts (its exporters, its databases) are held
        # back while its HostDown fires.
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="HostDown"'],
                "target_matchers": ['alertname!="HostDown"'],
                "equal": ["host"],
            }
        ],
    }


def as_yaml(document: Mapping[str, Any]) -> str:
    return "# Managed by Pulumi (platform plan); edits are overwritten.\n" + yaml.safe_dump(
        dict(document), sort_keys=False, allow_unicode=True, width=1000
    )


BLACKBOX_CONFIG = {
    "modules": {
        "http_2xx": {"prober": "http", "timeout": "5s", "http": {"method": "GET"}},
        # A database port that accepts a connection (Neo4j, Elasticsearch and Weaviate have no
        # exporter; for the others it also shows the path across the clouds is open).
        "tcp_connect": {"prober": "tcp", "timeout": "5s"},
        # An engine's HTTP health answer (HTTP_HEALTH_PATHS): 200, or 401 from an engine that asks
        # for credentials (Elasticsearch): either way the engine answers, not only its port.
        "http_answers": {
            "prober": "http",
            "timeout": "5s",
            "http": {"method": "GET", "valid_status_codes": [200, 401]},
        },
    }
}


WATCHDOG = "Watchdog"
WATCHDOG_RECEIVER = "heartbeat-only"  # no notifier: the heartbeat timer reads the alert from Alertmanager
# Ten minutes without a ping the service took (chosen here: ten runs of the one-minute timer).
HEARTBEAT_MISSED_S = 600


def webhook_path(paths: Paths) -> str:
    """Where systemd hands Alertmanager the webhook URL (LoadCredential=), as its config reads it."""
    return f"{paths.credentials}/{unit_name('alertmanager')}/{WEBHOOK_CREDENTIAL}"


def webhook_reader(monitoring: MonitoringPlan) -> str:
    """The program that holds the webhook URL: Alertmanager (Slack) or the relay (DingTalk)."""
    return "alert-relay" if monitoring.settings.receiver == Receiver.DINGTALK else "alertmanager"


def secret_file(paths: Paths, credential: str) -> str:
    return f"{paths.secrets}/monitoring/{credential}"


def installed_programs(monitoring: MonitoringPlan) -> list[str]:
    """The monitoring programs this step installs: every monitoring workload of the plan, the
    metrics tunnel when the peer's stack exports one (the tunnel's login on the scraped host is a
    step of its own)."""
    return [
        w.name for w in monitoring.workloads if w.name in PROGRAMS and (w.name != METRICS_TUNNEL or monitoring.tunnel)
    ]


def _workload(monitoring: MonitoringPlan, program: str) -> Any:
    return next(w for w in monitoring.workloads if w.name == program)


def program_unit(monitoring: MonitoringPlan, program: str) -> str:
    """The program's unit: its limit (MemoryMax, GOMEMLIMIT at 80 % of it), its address (loopback:
    the peer's Prometheus comes through the metrics tunnel), hardened, its data in StateDirectory=."""
    workload = _workload(monitoring, program)
    if program == METRICS_TUNNEL:
        return tunnel_unit(monitoring, workload.memory_mib)
    listen = f"127.0.0.1:{workload.ports[0].port}"
    paths = monitoring.layout.paths
    environment: list[str] = []
    if program in exporters.CREDENTIAL:
        db = monitoring.exported[program]
        arguments, environment = exporters.arguments(program, db, db.name in monitoring.tls_only)
        # The Go exporters of this generation differ in dashes; each takes its listen address.
        dash = "-" if program == "redis-exporter" else "--"
        arguments = [*arguments, f"{dash}web.listen-address={listen}"]
    else:
        arguments = _program_arguments(monitoring, program, listen)
    # GOMEMLIMIT: the Go programs' heap target, under the cgroup's limit (the relay is Python).
    if program != "alert-relay":
        environment = [f"GOMEMLIMIT={workload.memory_mib * 8 // 10}MiB", *environment]
    credentials: list[str] = []
    if program == webhook_reader(monitoring):
        credentials.append(f"LoadCredential={WEBHOOK_CREDENTIAL}:{secret_file(paths, WEBHOOK_CREDENTIAL)}")
    if program == "alert-relay":
        credentials.append(f"LoadCredential={SIGNING_CREDENTIAL}:{secret_file(paths, SIGNING_CREDENTIAL)}")
    if program == "grafana":
        # Read when Grafana creates its database: the admin's first password, generated on the host.
        credentials.append(f"Environment=GF_SECURITY_ADMIN_PASSWORD__FILE=%d/{GRAFANA_PASSWORD_CREDENTIAL}")
        credentials.append(
            f"LoadCredential={GRAFANA_PASSWORD_CREDENTIAL}:{secret_file(paths, GRAFANA_PASSWORD_CREDENTIAL)}"
        )
    if program in exporters.CREDENTIAL:
        credentials.append(
            f"LoadCredential={exporters.CREDENTIAL[program]}:{exporters.credential_file(paths, program)}"
        )
    return _unit(
        program,
        f"{binary_of(program)} {' '.join(arguments)}",
        environment,
        workload.memory_mib,
        restart=("on-failure", 5),
        state_directory=f"platform/{program}",
        credentials=credentials,
    )


def tunnel_unit(monitoring: MonitoringPlan, memory_mib: int) -> str:
    """The metrics tunnel's unit: ``ssh -N`` with the forwards, its key a credential, restarted when
    the peer goes away (ssh exits when the link or a forward fails)."""
    assert monitoring.tunnel is not None
    known_hosts = f"{monitoring.layout.paths.monitoring}/{metrics_tunnel.KNOWN_HOSTS}"
    arguments = metrics_tunnel.ssh_arguments(
        monitoring.tunnel, monitoring.peer_address, known_hosts, f"%d/{metrics_tunnel.KEY_CREDENTIAL}"
    )
    key_file = secret_file(monitoring.layout.paths, metrics_tunnel.KEY_CREDENTIAL)
    return _unit(
        f"{METRICS_TUNNEL} to {monitoring.peer_host}'s exporters",
        f"{binary_of(METRICS_TUNNEL)} {' '.join(arguments)}",
        [],
        memory_mib,
        restart=("always", 10),
        state_directory=None,
        credentials=[f"LoadCredential={metrics_tunnel.KEY_CREDENTIAL}:{key_file}"],
    )


def _unit(
    what: str,
    exec_start: str,
    environment: Sequence[str],
    memory_mib: int,
    *,
    restart: tuple[str, int],
    state_directory: str | None,
    credentials: Sequence[str],
) -> str:
    """A monitoring program's unit: its limit, no swap, restarted (``restart``: when, after how many
    seconds), a dynamic user, the system read-only but for its StateDirectory=, and its credentials."""
    lines = [
        "# Managed by Pulumi (platform plan); edits are overwritten.",
        "[Unit]",
        f"Description=platform monitoring: {what}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={exec_start}",
        *(f"Environment={word}" for word in environment),
        f"MemoryMax={memory_mib}M",
        "MemorySwapMax=0",
        f"Restart={restart[0]}",
        f"RestartSec={restart[1]}",
        "DynamicUser=yes",
        *([f"StateDirectory={state_directory}"] if state_directory else []),
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        *credentials,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def _program_arguments(monitoring: MonitoringPlan, program: str, listen: str) -> list[str]:
    config = monitoring.layout.paths.monitoring
    return {
        "node-exporter": [
            f"--web.listen-address={listen}",
            "--collector.systemd",
            f"--collector.textfile.directory={metrics_dir(monitoring.layout.paths.state)}",
        ],
        "prometheus": [
            f"--config.file={config}/prometheus.yml",
            f"--storage.tsdb.path=%S/platform/{program}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address={listen}",
            # Firing alerts re-sent at every evaluation (default: a minute apart). Alertmanager holds an
            # alert for 4 x max(interval, this delay) past its last sending, so a stopped Prometheus's
            # Watchdog leaves it, and the heartbeat stops, 4 intervals later (2 minutes at 30 s).
            f"--rules.alert.resend-delay={monitoring.settings.scrape_interval_s}s",
        ],
        "alertmanager": [
            f"--config.file={config}/alertmanager.yml",
            f"--storage.path=%S/platform/{program}",
            f"--web.listen-address={listen}",
            "--cluster.listen-address=",  # one instance: no gossip port on 0.0.0.0:9094
        ],
        "blackbox-exporter": [f"--config.file={config}/blackbox.yml", f"--web.listen-address={listen}"],
        # -I: nothing from the environment or the working directory; -S: no site-packages (the
        # relay needs the standard library only, and starts smaller without them).
        "grafana": ["--homepath=/usr/share/grafana", f"--config={config}/grafana/grafana.ini"],
        "alert-relay": [
            "-I",
            "-S",
            f"{config}/{RELAY_SCRIPT.name}",
            f"--listen={listen}",
            f"--url-file=%d/{WEBHOOK_CREDENTIAL}",
            f"--secret-file=%d/{SIGNING_CREDENTIAL}",
        ],
    }[program]


def monitoring_files(monitoring: MonitoringPlan) -> dict[str, str]:
    """The configuration files under paths.monitoring, by name (empty on a host without Prometheus)."""
    if not monitoring.runs_prometheus:
        return {}
    config = monitoring.layout.paths.monitoring
    return {
        "prometheus.yml": as_yaml(prometheus_config(monitoring, scrape_targets(monitoring), f"{config}/rules.yml")),
        "rules.yml": as_yaml(alert_rules(monitoring)),
        "alertmanager.yml": as_yaml(alertmanager_config(monitoring, webhook_path(monitoring.layout.paths))),
        "blackbox.yml": as_yaml(BLACKBOX_CONFIG),
        **({RELAY_SCRIPT.name: RELAY_SCRIPT.read_text()} if "alert-relay" in installed_programs(monitoring) else {}),
        **(
            {metrics_tunnel.KNOWN_HOSTS: metrics_tunnel.known_hosts(monitoring.tunnel, monitoring.peer_address)}
            if monitoring.tunnel is not None and METRICS_TUNNEL in installed_programs(monitoring)
            else {}
        ),
        **(grafana_files(monitoring) if "grafana" in installed_programs(monitoring) else {}),
    }


def grafana_files(monitoring: MonitoringPlan) -> dict[str, str]:
    """Grafana's configuration, its provisioned datasource (this host's Prometheus) and the
    dashboards of monitoring/grafana/dashboards, under paths.monitoring/grafana."""
    root = f"{monitoring.layout.paths.monitoring}/grafana"
    prometheus = f"http://127.0.0.1:{port_of(monitoring, 'prometheus')}"
    ini = grafana.grafana_ini("127.0.0.1", port_of(monitoring, "grafana"), GRAFANA_DATA, f"{root}/provisioning")
    return {
        "grafana/grafana.ini": ini,
        "grafana/provisioning/datasources/platform.yml": as_yaml(
            grafana.datasource(prometheus, monitoring.settings.scrape_interval_s)
        ),
        "grafana/provisioning/dashboards/platform.yml": as_yaml(grafana.dashboard_provider(f"{root}/dashboards")),
        **{f"grafana/dashboards/{name}": text for name, text in grafana.dashboards().items()},
    }


def health_url(monitoring: MonitoringPlan, program: str) -> str:
    ready = {
        "prometheus": "/-/ready",
        "alertmanager": "/-/ready",
        "alert-relay": "/-/healthy",
        "grafana": "/api/health",
    }
    path = ready.get(program, "/metrics")
    if program == METRICS_TUNNEL:  # the peer's node exporter, through the tunnel
        return f"http://127.0.0.1:{tunnel_port('node-exporter')}{path}"
    return f"http://127.0.0.1:{port_of(monitoring, program)}{path}"


def _key(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "_").replace("/", "_")


# The configuration files each program reads: a change to one restarts it.
_READS: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus.yml", "rules.yml"),
    "alertmanager": ("alertmanager.yml", "webhook"),
    "alert-relay": (RELAY_SCRIPT.name, "webhook"),  # LoadCredential= copies the files at start
    # Grafana reads its ini at start and its provisioning at start (dashboards also every 10 s).
    "grafana": ("grafana/grafana.ini", "grafana/provisioning/datasources/platform.yml"),
    "blackbox-exporter": ("blackbox.yml",),
    "node-exporter": (),
    # A database exporter's credential file is written, and the exporter restarted, by its user's
    # step (components/exporters.py).
    "mysqld-exporter": (),
    "postgres-exporter": (),
    "redis-exporter": (),
    METRICS_TUNNEL: (metrics_tunnel.KNOWN_HOSTS, "tunnel-key"),
}
HEALTH_TIMEOUT_S = 60  # chosen here: Prometheus replays its write-ahead log before it is ready


def webhook_stdin(url: str, signing_secret: str | None = None, tunnel_key: str | None = None) -> str:
    """What the monitoring step reads on the Prometheus host: the webhook URL on the first line,
    then the DingTalk robot's signing secret (empty: the robot does not sign), then the metrics
    tunnel's private key as one line of base64 (empty: no tunnel)."""
    if "\n" in url.strip() or "\n" in (signing_secret or "").strip():
        raise ValueError("platform:alertWebhook and platform:alertSigningSecret are one line each")
    key = base64.b64encode(tunnel_key.encode()).decode() if tunnel_key else ""
    return f"{url.strip()}\n{(signing_secret or '').strip()}\n{key}"


def monitoring_step(name: str, monitoring: MonitoringPlan, stdin: Any = None) -> Step:
    """Install (from the host's packages when missing), configure and start the monitoring
    programs. ``stdin``: ``webhook_stdin`` (a secret), on the Prometheus host."""
    programs = installed_programs(monitoring)
    files = monitoring_files(monitoring)
    paths = monitoring.layout.paths
    params: dict[str, str | int] = {
        "PROGRAMS": " ".join(programs),
        "FILES": " ".join(files),
        "CONFIG_DIR": paths.monitoring,
        "UNIT_DIR": paths.units,
        "METRICS_DIR": metrics_dir(paths.state),
        "STATE_DIR": paths.state,
        "WEBHOOK_FILE": secret_file(paths, WEBHOOK_CREDENTIAL),
        "SIGNING_FILE": secret_file(paths, SIGNING_CREDENTIAL),
        "GENERATED": secret_file(paths, GRAFANA_PASSWORD_CREDENTIAL) if "grafana" in programs else "",
        "TUNNEL_KEY_FILE": secret_file(paths, metrics_tunnel.KEY_CREDENTIAL),
        "WANTS_TUNNEL": int(METRICS_TUNNEL in programs),
        "WANTS_WEBHOOK": int(monitoring.runs_prometheus),
        "HEALTH_TIMEOUT": HEALTH_TIMEOUT_S,
    }
    for program in programs:
        package = PROGRAMS[program]
        key = _key(program)
        params |= {
            f"BINARY_{key}": binary_of(program),
            f"PACKAGE_{key}": package,
            f"PACKAGED_UNIT_{key}": packaged_unit(program),
            f"UNIT_NAME_{key}": unit_name(program),
            f"UNIT_{key}": program_unit(monitoring, program),
            f"HEALTH_{key}": health_url(monitoring, program),
            f"FILES_{key}": " ".join(_READS[program]),
            f"PORT_{key}": " ".join(str(spec.port) for spec in _workload(monitoring, program).ports),
        }
    for file, content in files.items():
        params[f"FILE_{_key(file)}"] = content
    return Step(
        f"{name}-monitoring",
        files=("mon_install.sh",),
        params=params,
        label="platform-monitoring",
        sudo=monitoring.layout.sudo,
        stdin=stdin,
        handles_secrets=monitoring.runs_prometheus,
    )
