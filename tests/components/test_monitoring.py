"""The monitoring rendered from the plan, checked with the real Prometheus tools (Debian's
prometheus 2.42 and alertmanager 0.25): `promtool check config`, `promtool check rules`,
`amtool check-config`, and a `promtool test rules` case for every alert, firing and not firing,
with the thresholds of the plan.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.monitoring import (
    BLACKBOX_CONFIG,
    WATCHDOG,
    alert_names,
    alert_rules,
    alertmanager_config,
    as_yaml,
    expected_jobs,
    prometheus_config,
    scrape_targets,
)
from plan import MetricsTunnel, MonitoringPlan, Plan, PlanError, load_plan
from tests.stacks import config_for, plan_of

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="needs promtool (Debian's prometheus package; .ci/run installs it)"
)
needs_amtool = pytest.mark.skipif(
    not Path(AMTOOL).exists(), reason="needs amtool (Debian's prometheus-alertmanager; .ci/run installs it)"
)
STACKS = ("alibaba", "tencent")
INSTANCE = {"instance": "host:9100", "job": "node"}


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False)


def promtool_test(tmp_path: Path, plan: Plan, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """``promtool test rules``: ``tests`` (each a ``case``) against the plan's alert rules, both
    written into ``tmp_path``."""
    (tmp_path / "rules.yml").write_text(as_yaml(alert_rules(plan.monitoring_plan)))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "tests": tests}))
    return run(PROMTOOL, "test", "rules", tmp_path / "tests.yml")


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def summary(plan: Plan, alert: str, labels: dict[str, str]) -> str:
    """The alert's summary as Prometheus expands it for these labels."""
    rule = next(r for g in alert_rules(plan.monitoring_plan)["groups"] for r in g["rules"] if r["alert"] == alert)
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], rule["annotations"]["summary"])


def case(plan: Plan, alert: str, interval: str, inputs: list[dict[str, str]], at: str, labels: dict[str, str] | None):
    """One promtool test: ``labels`` of the alert firing at ``at``, or None: it must not fire."""
    expected = []
    if labels is not None:
        severity = next(
            r["labels"]["severity"]
            for g in alert_rules(plan.monitoring_plan)["groups"]
            for r in g["rules"]
            if r["alert"] == alert
        )
        expected = [
            {
                "exp_labels": {**labels, "severity": severity},
                "exp_annotations": {"summary": summary(plan, alert, labels)},
            }
        ]
    return {
        "interval": interval,
        "input_series": inputs,
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}],
    }


def rule_tests(plan: Plan) -> dict[str, list[dict[str, Any]]]:
    """Per alert, a firing and a quiet case built from the plan's thresholds."""
    a = plan.monitoring.alerting
    unit = f"platform-{plan.services[0].name}.service" if plan.services else f"{plan.databases[0].name}.service"
    disk = {**INSTANCE, "device": "/dev/vda1", "fstype": "ext4", "mountpoint": "/"}
    probe = {"instance": "http://127.0.0.1:8207/health", "job": "service-health", "service": "zervigo"}
    replica = {"instance": "host:9100", "job": "node", "kind": "mysql", "replica": "mysql"}
    backup = {"database": "production-mysql", "engine": "mysql", "instance": "host:9100", "job": "node"}
    memory = lambda percent: [  # noqa: E731 - two series of one host
        series("node_memory_MemAvailable_bytes", INSTANCE, f"{percent * 10}x20"),
        series("node_memory_MemTotal_bytes", INSTANCE, "1000x20"),
    ]
    disk_used = lambda percent: [  # noqa: E731
        series("node_filesystem_avail_bytes", disk, f"{(100 - percent) * 10}x20"),
        series("node_filesystem_size_bytes", disk, "1000x20"),
    ]
    health = a.health_failing_minutes
    max_age = a.backup_max_age_hours
    down = f"{a.target_down_minutes + 1}m"
    node = {"host": "alibaba", "instance": "192.0.2.10:9100", "job": "node-exporter"}
    exporter = {"host": "alibaba", "instance": "192.0.2.10:9104", "job": "mysqld-exporter"}
    cpu = {"cpu": "0", "mode": "idle", **node}
    idle_per_minute = lambda percent: f"0+{60 * percent / 100:g}x{a.cpu_busy_minutes + 10}"  # noqa: E731
    slow = {
        "host": "tencent",
        "instance": "http://127.0.0.1:8207/health",
        "job": "service-health",
        "service": "zervigo",
    }
    port = {"host": "alibaba", "instance": "192.0.2.10:7687", "job": "database-port", "workload": "production-neo4j"}
    asked = {**port, "instance": "http://192.0.2.10:7474/", "job": "database-health"}
    cert = {"file": "/etc/platform/secrets/tls/production-redis/server.crt", **node}
    expiry = "platform_certificate_expiry_timestamp_seconds"
    sent, heartbeat = "platform_heartbeat_last_sent_timestamp_seconds", {**node, "host": "tencent"}
    # Row counts of one table on each side (repl_counts.sh), and of tables only the source has.
    rows, counted = "platform_replication_rows", "platform_replication_counted"
    side = {
        "host": "alibaba",
        "instance": "192.0.2.10:9100",
        "job": "node-exporter",
        "kind": "mysql",
        "side": "source",
        "source": "production-mysql",
    }
    source = {**side, "database": "crm", "table": "crm.users"}
    copy = {**source, "host": "tencent", "instance": "127.0.0.1:9100", "side": "replica"}
    orders = {**source, "table": "crm.orders"}
    elsewhere = {**source, "database": "archive", "table": "archive.users"}
    warn, soon = a.certificate_warning_days, a.certificate_critical_days
    jobs = expected_jobs(plan.monitoring_plan)
    missing = (
        {
            "TargetMissing": [
                case(plan, "TargetMissing", "1m", [series("up", {"job": j}, "1x20") for j in jobs[1:]], "15m",
                     {"job": jobs[0]}),
                case(plan, "TargetMissing", "1m", [series("up", {"job": j}, "1x20") for j in jobs], "15m", None),
            ]
        }
        if jobs
        else {}
    )  # fmt: skip
    return {
        **missing,
        "HostDown": [
            case(plan, "HostDown", "1m", [series("up", node, "0x20")], down, node),
            case(plan, "HostDown", "1m", [series("up", node, "1x20")], down, None),
        ],
        "TargetDown": [
            case(plan, "TargetDown", "1m", [series("up", exporter, "0x20")], down, exporter),
            # A host that is down is HostDown's, not each of its exporters'.
            case(plan, "TargetDown", "1m", [series("up", node, "0x20")], down, None),
        ],
        "DatabaseDown": [
            case(plan, "DatabaseDown", "1m", [series("mysql_up", exporter, "0x20")], down, exporter),
            case(plan, "DatabaseDown", "1m", [series("mysql_up", exporter, "1x20")], down, None),
        ],
        "CertificateExpiring": [
            case(plan, "CertificateExpiring", "1m", [series(expiry, cert, f"{(warn - 1) * 86400}x5")], "1m", cert),
            case(plan, "CertificateExpiring", "1m", [series(expiry, cert, f"{(warn + 1) * 86400}x5")], "1m", None),
        ],
        "CertificateExpiringSoon": [
            case(plan, "CertificateExpiringSoon", "1m", [series(expiry, cert, f"{(soon - 1) * 86400}x5")], "1m", cert),
            case(plan, "CertificateExpiringSoon", "1m", [series(expiry, cert, f"{(soon + 1) * 86400}x5")], "1m", None),
        ],
        "CertificateUnreadable": [
            # Scraped every minute as node exporter reads the file the hourly check writes.
            case(
                plan,
                "CertificateUnreadable",
                "1m",
                [series("platform_certificate_readable", cert, "0x200")],
                "150m",
                cert,
            ),
            # Missing for the first hour only (written after the first run): the next run finds it.
            case(
                plan,
                "CertificateUnreadable",
                "1m",
                [series("platform_certificate_readable", cert, "0x60 1x140")],
                "150m",
                None,
            ),
        ],
        "DatabaseUnreachable": [
            case(plan, "DatabaseUnreachable", "1m", [series("probe_success", port, "0x20")], down, port),
            case(plan, "DatabaseUnreachable", "1m", [series("probe_success", port, "1x20")], down, None),
        ],
        "DatabaseUnhealthy": [
            # Its port accepts, its HTTP health request fails.
            case(
                plan,
                "DatabaseUnhealthy",
                "1m",
                [series("probe_success", asked, "0x20"), series("probe_success", port, "1x20")],
                down,
                asked,
            ),
            # Its port refuses too: DatabaseUnreachable alone says so.
            case(
                plan,
                "DatabaseUnhealthy",
                "1m",
                [series("probe_success", asked, "0x20"), series("probe_success", port, "0x20")],
                down,
                None,
            ),
            case(plan, "DatabaseUnhealthy", "1m", [series("probe_success", asked, "1x20")], down, None),
        ],
        "CpuBusy": [
            case(
                plan,
                "CpuBusy",
                "1m",
                [series("node_cpu_seconds_total", cpu, idle_per_minute(max(100 - a.cpu_busy_percent - 5, 0)))],
                f"{a.cpu_busy_minutes + 8}m",
                {"host": "alibaba", "instance": node["instance"]},
            ),
            case(
                plan,
                "CpuBusy",
                "1m",
                [series("node_cpu_seconds_total", cpu, idle_per_minute(min(100 - a.cpu_busy_percent + 5, 100)))],
                f"{a.cpu_busy_minutes + 8}m",
                None,
            ),
        ],
        "ProbeSlow": [
            case(
                plan,
                "ProbeSlow",
                "1m",
                [series("probe_duration_seconds", slow, f"{a.probe_slow_ms / 1000 + 1:g}x20")],
                "8m",
                slow,
            ),
            case(
                plan,
                "ProbeSlow",
                "1m",
                [series("probe_duration_seconds", slow, f"{a.probe_slow_ms / 2000:g}x20")],
                "8m",
                None,
            ),
        ],
        "HostMemoryLow": [
            case(plan, "HostMemoryLow", "1m", memory(max(a.memory_available_percent - 1, 0)), "15m", INSTANCE),
            case(plan, "HostMemoryLow", "1m", memory(min(a.memory_available_percent + 1, 100)), "15m", None),
        ],
        "OomKill": [
            case(plan, "OomKill", "1m", [series("node_vmstat_oom_kill", INSTANCE, "0 0 0 1 1 1")], "5m", INSTANCE),
            case(plan, "OomKill", "1m", [series("node_vmstat_oom_kill", INSTANCE, "7x10")], "5m", None),
        ],
        "UnitRestarting": [
            case(
                plan,
                "UnitRestarting",
                "1m",
                [series("node_systemd_service_restart_total", {**INSTANCE, "name": unit}, f"0+1x{a.restarts + 2}")],
                f"{a.restarts + 2}m",
                {**INSTANCE, "name": unit},
            ),
            # A unit the plan does not own restarting as often: not this platform's alert.
            case(
                plan,
                "UnitRestarting",
                "1m",
                [series("node_systemd_service_restart_total", {**INSTANCE, "name": "cron.service"}, "0+1x20")],
                "10m",
                None,
            ),
        ],
        "DiskFull": [
            case(plan, "DiskFull", "1m", disk_used(min(a.disk_used_percent + 1, 100)), "15m", disk),
            case(plan, "DiskFull", "1m", disk_used(a.disk_used_percent - 1), "15m", None),
        ],
        "ServiceHealthFailing": [
            case(plan, "ServiceHealthFailing", "1m", [series("probe_success", probe, "0x20")], f"{health + 1}m", probe),
            case(plan, "ServiceHealthFailing", "1m", [series("probe_success", probe, "1x20")], f"{health + 1}m", None),
        ],
        "ReplicationLagging": [
            case(
                plan,
                "ReplicationLagging",
                "1m",
                [series("platform_replication_lag_seconds", replica, f"{a.replication_lag_s + 1}x20")],
                "8m",
                replica,
            ),
            case(
                plan,
                "ReplicationLagging",
                "1m",
                [series("platform_replication_lag_seconds", replica, f"{a.replication_lag_s}x20")],
                "8m",
                None,
            ),
        ],
        "ReplicaStopped": [
            case(
                plan, "ReplicaStopped", "1m", [series("platform_replication_healthy", replica, "0x20")], "8m", replica
            ),
            case(plan, "ReplicaStopped", "1m", [series("platform_replication_healthy", replica, "1x20")], "8m", None),
        ],
        "ReplicaRowsDiffer": [
            # The replica lost a row: 9 against the source's steady 10.
            case(
                plan,
                "ReplicaRowsDiffer",
                "1m",
                [series(rows, source, "10x40"), series(rows, copy, "9x40")],
                "30m",
                copy,
            ),
            # A table the source has with rows, in a database the replica follows, is not on the replica.
            case(
                plan,
                "ReplicaRowsDiffer",
                "1m",
                [series(rows, source, "10x40"), series(rows, copy, "10x40"), series(rows, orders, "5x40")],
                "30m",
                orders,
            ),
            # A table growing by 10 rows a minute, the replica's count five minutes behind: no alert.
            case(
                plan,
                "ReplicaRowsDiffer",
                "1m",
                [series(rows, source, "0+10x40"), series(rows, copy, "0x5 0+10x35")],
                "30m",
                None,
            ),
            # A database the replica does not follow (PostgreSQL's publication is in every database).
            case(
                plan,
                "ReplicaRowsDiffer",
                "1m",
                [series(rows, copy, "10x40"), series(rows, source, "10x40"), series(rows, elsewhere, "7x40")],
                "30m",
                None,
            ),
        ],
        "ReplicationCountFailing": [
            case(plan, "ReplicationCountFailing", "1m", [series(counted, side, "0x20")], "15m", side),
            case(plan, "ReplicationCountFailing", "1m", [series(counted, side, "1x20")], "15m", None),
        ],
        # Always firing (the heartbeat's signal): no quiet case; its quiet side is the heartbeat
        # that sends nothing without it (tests/provisioning/test_monitoring_loopback.py).
        WATCHDOG: [case(plan, WATCHDOG, "1m", [], "5m", {})],
        "HeartbeatNotSent": [
            # The last ping at the epoch, evaluated a minute past the ten.
            case(plan, "HeartbeatNotSent", "1m", [series(sent, heartbeat, "0x20")], "11m", heartbeat),
            # A ping every minute.
            case(plan, "HeartbeatNotSent", "1m", [series(sent, heartbeat, "0+60x20")], "11m", None),
        ],
        "BackupTooOld": [
            # The last success at the epoch, evaluated an hour after the limit.
            case(
                plan,
                "BackupTooOld",
                "1h",
                [series("platform_backup_last_success_timestamp_seconds", backup, f"0x{max_age + 2}")],
                f"{max_age + 1}h",
                backup,
            ),
            # A success every hour.
            case(
                plan,
                "BackupTooOld",
                "1h",
                [series("platform_backup_last_success_timestamp_seconds", backup, f"0+3600x{max_age + 2}")],
                f"{max_age + 1}h",
                None,
            ),
        ],
    }


@needs_promtool
@pytest.mark.parametrize("stack", STACKS)
def test_every_alert_fires_past_its_threshold_and_not_before(stack: str, tmp_path: Path):
    plan = plan_of(stack)
    tests = rule_tests(plan)
    assert sorted(tests) == sorted(set(alert_names(plan.monitoring_plan)))  # every alert has its cases
    tested = promtool_test(tmp_path, plan, [c for cases in tests.values() for c in cases])
    checked = run(PROMTOOL, "check", "rules", tmp_path / "rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@needs_promtool
def test_a_changed_threshold_moves_where_the_alert_fires(tmp_path: Path):
    """The rules follow the plan: at 50 % the disk case of 86 % fires, and a 40 % disk does not."""
    plan = plan_of("tencent", monitoring={"alerting": {"diskUsedPercent": 50}})
    assert "> 50" in next(
        r["expr"] for r in alert_rules(plan.monitoring_plan)["groups"][0]["rules"] if r["alert"] == "DiskFull"
    )
    tested = promtool_test(tmp_path, plan, rule_tests(plan)["DiskFull"])
    assert tested.returncode == 0, tested.stdout + tested.stderr


@needs_promtool
def test_a_wrong_expectation_fails_promtool(tmp_path: Path):
    """The harness can fail: the quiet disk case expected to fire is reported."""
    plan = plan_of("tencent")
    quiet = rule_tests(plan)["DiskFull"][1]
    quiet["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "warning"}}]
    tested = promtool_test(tmp_path, plan, [quiet])
    assert tested.returncode != 0
    assert "FAILED" in tested.stdout + tested.stderr


@needs_promtool
@pytest.mark.parametrize("stack", STACKS)
def test_the_prometheus_configuration_passes_promtool(stack: str, tmp_path: Path):
    plan = plan_of(stack)
    (tmp_path / "rules.yml").write_text(as_yaml(alert_rules(plan.monitoring_plan)))
    targets = {"node": [("127.0.0.1:9100", {"host": stack})]}
    config = prometheus_config(plan.monitoring_plan, targets, str(tmp_path / "rules.yml"))
    (tmp_path / "prometheus.yml").write_text(as_yaml(config))
    checked = run(PROMTOOL, "check", "config", tmp_path / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    probed = next((job for job in config["scrape_configs"] if job["job_name"] == "service-health"), None)
    if stack == "tencent":
        assert probed is not None
        assert [t["labels"]["service"] for t in probed["static_configs"]] == [s.name for s in plan.services]
    else:
        assert probed is None  # no services on the database host


@needs_amtool
def test_the_alertmanager_configuration_passes_amtool_and_holds_no_url(tmp_path: Path):
    url_file = tmp_path / "webhook-url"
    url_file.write_text("https://hooks.slack.com/services/T000/B000/XXXX\n")
    (tmp_path / "alertmanager.yml").write_text(
        as_yaml(alertmanager_config(plan_of("tencent").monitoring_plan, str(url_file)))
    )
    checked = run(AMTOOL, "check-config", tmp_path / "alertmanager.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "hooks.slack.com" not in (tmp_path / "alertmanager.yml").read_text()


@needs_amtool
def test_a_dingtalk_receiver_posts_to_the_relay_on_loopback_which_alone_holds_the_url(tmp_path: Path):
    from components.monitoring import program_unit, webhook_stdin

    plan = plan_of("tencent", monitoring={"enabled": True, "receiver": "dingtalk", "ports": {"alert-relay": 9199}})
    config = alertmanager_config(plan.monitoring_plan, "/unused")
    (tmp_path / "alertmanager.yml").write_text(as_yaml(config))
    checked = run(AMTOOL, "check-config", tmp_path / "alertmanager.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    receiver, watchdog = config["receivers"]
    assert watchdog == {"name": "heartbeat-only"}  # the Watchdog's: no notifier
    assert receiver["webhook_configs"] == [
        {"url": "http://127.0.0.1:9199/alert", "send_resolved": True, "max_alerts": 20}
    ]
    relay = next(w for w in plan.monitoring_workloads if w.name == "alert-relay")
    assert (relay.memory_mib, relay.ports[0].port, relay.ports[0].expose.value) == (32, 9199, "none")
    unit = program_unit(plan.monitoring_plan, "alert-relay")
    assert "--listen=127.0.0.1:9199 --url-file=%d/webhook-url --secret-file=%d/signing-secret" in unit
    assert "LoadCredential=webhook-url:/etc/platform/secrets/monitoring/webhook-url" in unit
    assert "LoadCredential=webhook-url" not in program_unit(plan.monitoring_plan, "alertmanager")
    assert "GOMEMLIMIT" not in unit
    assert webhook_stdin("https://oapi.dingtalk.com/robot/send?access_token=t\n", None) == (
        "https://oapi.dingtalk.com/robot/send?access_token=t\n\n"  # no signing secret, no tunnel key
    )
    with pytest.raises(ValueError, match="one line each"):
        webhook_stdin("https://a\nhttps://b")


def test_probes_follow_the_plan():
    plan = plan_of("tencent", monitoring={"probes": ["zervigo"]})
    config = prometheus_config(plan.monitoring_plan, {}, "rules.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "service-health"]
    assert job["static_configs"] == [
        {"targets": ["http://127.0.0.1:8207/health"], "labels": {"service": "zervigo", "host": "tencent"}}
    ]


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"alerting": {"diskUsedPercent": 0}}, ("platform:monitoring.alerting.diskUsedPercent", "0")),
        ({"alerting": {"memoryAvailablePercent": 100}}, ("platform:monitoring.alerting.memoryAvailablePercent", "100")),
        ({"alerting": {"diskUsedPercent": 101}}, ("diskUsedPercent", "101")),
        ({"probes": ["grafana"]}, ("platform:monitoring.probes[0]", "'grafana' is not a service of this plan")),
    ],
    ids=["threshold-zero", "threshold-100", "threshold-over-100", "probe-not-in-plan"],
)
def test_bad_monitoring_settings_are_one_line(changes: dict[str, Any], fragments: tuple[str, ...]):
    with pytest.raises(PlanError) as raised:
        plan_of("tencent", monitoring=changes)
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_a_webhook_url_in_plain_text_is_refused():
    config = config_for("tencent")
    values = {**config.config, "platform:alertWebhook": "https://hooks.slack.com/services/T000/B000/XXXX"}
    with pytest.raises(PlanError) as raised:
        load_plan(values, config.secret_keys - {"platform:alertWebhook"})
    assert str(raised.value).startswith("platform:alertWebhook is stored in plain text")
    assert "hooks.slack.com" not in str(raised.value)


# --- the monitoring workloads in the plan and the budget ---------------------------------------------

# The limits the default plan had before the monitoring (chosen here). The 104 MiB of the Alibaba
# host's exporters came out of them, none below its engine's floor (README, "Monitoring"): MySQL
# 224 -> 192, Elasticsearch 352 -> 312, Weaviate 192 -> 160.
BEFORE_MONITORING = {"production-mysql": 224, "production-elasticsearch": 352, "production-weaviate": 192}


def _databases_before_monitoring() -> list[dict[str, Any]]:
    from plan import DEFAULT_DATABASES

    return [{**db, "memoryMib": BEFORE_MONITORING.get(db["name"], db["memoryMib"])} for db in DEFAULT_DATABASES]


def test_enabled_monitoring_puts_prometheus_on_the_tencent_host_and_exporters_on_both():
    tencent = plan_of("tencent", monitoring={"enabled": True})
    alibaba = plan_of("alibaba", monitoring={"enabled": True})
    assert [(w.name, [p.port for p in w.ports], w.memory_mib) for w in tencent.monitoring_workloads] == [
        ("node-exporter", [9100], 28),
        ("prometheus", [9090], 128),
        ("alertmanager", [9093], 48),
        ("blackbox-exporter", [9115], 24),
        ("metrics-tunnel", [19100, 19104, 19121, 19187], 12),
    ]
    assert [(w.name, [p.port for p in w.ports], w.memory_mib) for w in alibaba.monitoring_workloads] == [
        ("node-exporter", [9100], 28),
        ("mysqld-exporter", [9104], 24),
        ("postgres-exporter", [9187], 20),
        ("redis-exporter", [9121], 20),
        ("metrics-login", [], 8),
    ]
    # Every monitoring port stays on loopback: the peer's come through the metrics tunnel.
    exposures = {p.expose.value for plan in (tencent, alibaba) for w in plan.monitoring_workloads for p in w.ports}
    assert exposures == {"none"}
    # Prometheus scrapes its own host on loopback; the peer's exporters only once the peer stack's
    # metricsTunnel output is read (program.monitor), so the plan alone scrapes none of them.
    targets = scrape_targets(tencent.monitoring_plan)
    assert targets["node-exporter"] == [("127.0.0.1:9100", {"host": "tencent"})]
    assert scrape_targets(alibaba.monitoring_plan) == {}
    # On by default; off, the plan counts and opens nothing for it.
    assert plan_of("tencent").monitoring_workloads == tencent.monitoring_workloads
    assert plan_of("tencent", monitoring={"enabled": False}).monitoring_workloads == ()
    assert plan_of("alibaba", monitoring={"enabled": False}).metrics_login is False


def test_the_pack_passes_both_hosts_monitored_and_names_the_shortfall_the_old_database_limits_had():
    from tests.policies.shapes import run_program, violations

    tencent = run_program("tencent")
    assert violations(tencent, "memory-budget") == []
    assert tencent.outputs["memory"]["freeMib"] == 10  # 250 - 240 for the four programs and the tunnel
    assert violations(tencent, "egress-least-privilege") == []
    assert violations(tencent, "firewall-matches-plan") == []
    alibaba = run_program("alibaba")
    assert violations(alibaba, "memory-budget") == []
    assert violations(alibaba, "no-public-database") == []
    assert violations(alibaba, "firewall-matches-plan") == []
    assert alibaba.outputs["memory"]["freeMib"] == 7
    # The decision, from the capacity report: with the limits from before, the exporters do not fit.
    (short,) = violations(run_program("alibaba", databases=_databases_before_monitoring()), "memory-budget")
    assert "short by 97 MiB" in short.message  # 101 before the exporters gave 12 MiB to the tunnel's 8
    unmonitored = run_program("alibaba", monitoring={"enabled": False}, databases=_databases_before_monitoring())
    assert violations(unmonitored, "memory-budget") == []


def test_the_dingtalk_relay_counts_in_the_budget_and_the_pack_names_its_shortfall():
    from tests.policies.shapes import run_program, violations

    (short,) = violations(run_program("tencent", monitoring={"enabled": True, "receiver": "dingtalk"}), "memory-budget")
    assert "short by 22 MiB" in short.message  # 32 for the relay against the 10 left


def test_the_prometheus_configuration_from_the_plan_passes_promtool_with_its_targets(tmp_path: Path):
    if not Path(PROMTOOL).exists():
        pytest.skip("needs promtool (Debian's prometheus package; .ci/run installs it)")
    plan = plan_of("tencent", monitoring={"enabled": True})
    exporters = (
        ("node-exporter", 9100),
        ("mysqld-exporter", 9104),
        ("redis-exporter", 9121),
        ("postgres-exporter", 9187),
    )
    view = replace(plan.monitoring_plan, tunnel=MetricsTunnel("platform-metrics", 22, "ssh-ed25519 AAAA", exporters))
    (tmp_path / "rules.yml").write_text(as_yaml(alert_rules(view)))
    config = prometheus_config(view, scrape_targets(view), str(tmp_path / "rules.yml"))
    (tmp_path / "prometheus.yml").write_text(as_yaml(config))
    checked = run(PROMTOOL, "check", "config", tmp_path / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {
        *("node-exporter", "mysqld-exporter", "postgres-exporter", "redis-exporter"),
        *("service-health", "database-port", "database-health"),
    }


def test_enabled_monitoring_registers_its_step_with_the_webhook_on_stdin_only():
    from tests.stacks import evaluate, inputs, step_parameters

    run = evaluate("tencent", monitoring={"enabled": True})
    step = run.named("tencent-svc-monitoring")
    command = inputs(step)
    params = step_parameters(run, "tencent-svc-monitoring")
    assert params["PROGRAMS"] == "node-exporter prometheus alertmanager blackbox-exporter metrics-tunnel"
    assert "LoadCredential=webhook-url:/etc/platform/secrets/monitoring/webhook-url" in params["UNIT_ALERTMANAGER"]
    assert "MemoryMax=128M" in params["UNIT_PROMETHEUS"]
    assert "--web.listen-address=127.0.0.1:9090" in params["UNIT_PROMETHEUS"]
    assert command["logging"] == "none"
    assert step.inputs["stdin"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    assert "hooks.slack.com" not in command["create"]
    # The database host gets its node exporter and an exporter per engine kind on the address the
    # peer's Prometheus reaches; each exporter reads its password from its credentials directory.
    database_host = evaluate("alibaba", monitoring={"enabled": True})
    monitoring_command = database_host.named("alibaba-db-monitoring")
    alibaba = step_parameters(database_host, "alibaba-db-monitoring")
    assert alibaba["PROGRAMS"] == "node-exporter mysqld-exporter postgres-exporter redis-exporter"
    assert "--web.listen-address=127.0.0.1:9100" in alibaba["UNIT_NODE_EXPORTER"]
    assert "--config.my-cnf=%d/mysqld-exporter.cnf" in alibaba["UNIT_MYSQLD_EXPORTER"]
    assert "Environment=DATA_SOURCE_PASS_FILE=%d/postgres-exporter.password" in alibaba["UNIT_POSTGRES_EXPORTER"]
    assert "-redis.addr=rediss://127.0.0.1:6379" in alibaba["UNIT_REDIS_EXPORTER"]
    for kind in ("mysql", "postgres", "redis"):
        user_step = database_host.named(f"alibaba-db-exporter-production-{kind}")
        # The exporter's password is a secret on stdin, made after the engine runs and before
        # the monitoring step starts the exporter.
        assert user_step.inputs["stdin"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
        assert database_host.named(f"alibaba-db-production-{kind}").urn in user_step.dependencies
        assert user_step.urn in monitoring_command.dependencies


def test_enabled_monitoring_without_a_webhook_is_one_line():
    from plan import check_secrets_present

    config = config_for("tencent", monitoring={"enabled": True})
    values = {k: v for k, v in config.config.items() if k != "platform:alertWebhook"}
    plan = load_plan(values, config.secret_keys)
    with pytest.raises(PlanError, match=r"^platform:alertWebhook: not set; Alertmanager on this host posts alerts"):
        check_secrets_present(plan, values)


WEBHOOK_SECRET = "PLANTED-hunter2"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (json.dumps([f"https://hooks.slack.com/services/{WEBHOOK_SECRET}"]), "a list, not a URL"),
        (json.dumps({"url": f"https://hooks.slack.com/{WEBHOOK_SECRET}"}), "an object, not a URL"),
        ("12345", "a number, not a URL"),
        (f"http://hooks.slack.com/services/{WEBHOOK_SECRET}", "not an https URL on one line"),
        (f"https://hooks.slack.com/services/{WEBHOOK_SECRET}\nhttps://x/", "not an https URL on one line"),
        (f"https://hooks.slack.com/a {WEBHOOK_SECRET}", "not an https URL on one line"),
        (WEBHOOK_SECRET, "not an https URL on one line"),
    ],
)
def test_a_webhook_that_is_no_https_url_is_refused_before_anything_without_its_value(value: str, says: str):
    """The secret's value reaches the program only in a real run: its type is checked there, before
    any resource, and the line never shows it."""
    from plan import check_secrets_present

    config = config_for("tencent", monitoring={"enabled": True})
    values = {**config.config, "platform:alertWebhook": value}
    plan = load_plan(values, config.secret_keys)
    with pytest.raises(PlanError) as raised:
        check_secrets_present(plan, values)
    assert str(raised.value).startswith(f"platform:alertWebhook: {says}")
    assert WEBHOOK_SECRET not in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://oapi.dingtalk.com/robot/send?access_token=0123abcd",
        "https://placeholder.invalid/PLACEHOLDER-SECRET-platform-alertWebhook",  # the offline preview's
    ],
)
def test_an_https_webhook_passes(url: str):
    from plan import check_secrets_present

    config = config_for("tencent", monitoring={"enabled": True})
    values = {**config.config, "platform:alertWebhook": url, "platform:alertSigningSecret": "SEC0123"}
    check_secrets_present(load_plan(values, config.secret_keys | {"platform:alertSigningSecret"}), values)


def test_a_signing_secret_that_is_a_list_is_refused():
    from plan import check_secrets_present

    config = config_for("tencent", monitoring={"enabled": True})
    values = {**config.config, "platform:alertSigningSecret": json.dumps([WEBHOOK_SECRET])}
    with pytest.raises(PlanError) as raised:
        check_secrets_present(load_plan(values, config.secret_keys | {"platform:alertSigningSecret"}), values)
    assert str(raised.value).startswith("platform:alertSigningSecret: a list, not the robot's signing secret")
    assert WEBHOOK_SECRET not in str(raised.value)


def test_one_exporter_per_engine_kind_watches_the_first_database_of_that_kind():
    from plan import DEFAULT_DATABASES

    second = {**DEFAULT_DATABASES[0], "name": "reporting-mysql", "ports": [{"port": 3307, "expose": "peer"}]}
    plan = plan_of("alibaba", monitoring={"enabled": True}, databases=[*DEFAULT_DATABASES, second])
    assert plan.exported_databases["mysqld-exporter"].name == "production-mysql"
    assert [db.name for db in plan.unexported_databases] == ["reporting-mysql"]
    off = plan_of("alibaba", monitoring={"enabled": False}, databases=[*DEFAULT_DATABASES, second])
    assert (off.exported_databases, off.unexported_databases) == ({}, ())


def test_the_peers_database_ports_are_probed_by_a_tcp_connect_each_named_by_its_workload():
    """Neo4j, Elasticsearch and Weaviate have no exporter: every database port the peer opens is
    probed (the blackbox exporter's tcp_connect), and the ports follow what the peer's stack exports."""
    from dataclasses import replace

    from plan import peer_databases_of

    view = plan_of("tencent").monitoring_plan
    (job,) = [j for j in prometheus_config(view, scrape_targets(view), "rules.yml")["scrape_configs"]
              if j["job_name"] == "database-port"]  # fmt: skip
    probed: dict[str, list[str]] = {}
    for config in job["static_configs"]:
        probed.setdefault(config["labels"]["workload"], []).extend(config["targets"])
    assert sorted(probed["production-neo4j"]) == [f"{view.peer_address}:7474", f"{view.peer_address}:7687"]
    assert sorted(probed) == sorted(d.name for d in plan_of("alibaba").databases)
    assert {c["labels"]["host"] for c in job["static_configs"]} == {"alibaba"}
    assert job["params"] == {"module": ["tcp_connect"]}
    # The peer moved Weaviate and exports its ports: the probes follow, the exporters are not probed.
    ingress = [
        {"port": 18080, "protocol": "tcp", "workload": "production-weaviate"},
        {"port": 9100, "protocol": "tcp", "workload": "node-exporter"},
    ]
    moved = replace(view, peer_databases=peer_databases_of(ingress))
    (job,) = [j for j in prometheus_config(moved, scrape_targets(moved), "rules.yml")["scrape_configs"]
              if j["job_name"] == "database-port"]  # fmt: skip
    assert [c["targets"] for c in job["static_configs"]] == [[f"{view.peer_address}:18080"]]
    assert "database-port" in expected_jobs(view)
    assert "database-port" not in expected_jobs(plan_of("alibaba").monitoring_plan)


def test_the_peers_engines_without_an_exporter_are_asked_for_health_over_http():
    """Neo4j's, Elasticsearch's and Weaviate's HTTP ports are asked their health path (blackbox's
    http_answers), from the default plan or from what the peer's stack exports; a peer stack of an
    earlier version exports no path, and then only their ports are probed."""
    from dataclasses import replace

    from plan import peer_health_of

    def asked(view: MonitoringPlan) -> list[str]:
        jobs = prometheus_config(view, scrape_targets(view), "rules.yml")["scrape_configs"]
        return [
            t for j in jobs if j["job_name"] == "database-health" for c in j["static_configs"] for t in c["targets"]
        ]

    view = plan_of("tencent").monitoring_plan
    address = view.peer_address
    assert asked(view) == [f"http://{address}:7474/", f"http://{address}:8080/v1/.well-known/ready",
                           f"http://{address}:9200/"]  # fmt: skip
    ingress = [
        {"port": 18080, "protocol": "tcp", "workload": "production-weaviate", "health": "/v1/.well-known/ready"},
        {"port": 3306, "protocol": "tcp", "workload": "production-mysql"},
    ]
    assert asked(replace(view, peer_health=peer_health_of(ingress))) == [f"http://{address}:18080/v1/.well-known/ready"]
    earlier = [{"port": 7474, "protocol": "tcp", "workload": "production-neo4j"}]
    assert asked(replace(view, peer_health=peer_health_of(earlier))) == []
    assert "database-health" not in expected_jobs(replace(view, peer_health=()))
    assert asked(plan_of("alibaba", monitoring={"enabled": True, "prometheus": True}).monitoring_plan) == []
    assert BLACKBOX_CONFIG["modules"]["http_answers"]["http"]["valid_status_codes"] == [200, 401]


@pytest.mark.parametrize(
    ("stack", "command", "expected"),
    [
        (
            "alibaba",
            "alibaba-db-certificate-check",
            [f"/etc/platform/secrets/tls/production-{kind}/{leaf}" for kind in ("mysql", "postgres", "redis")
             for leaf in ("ca.crt", "server.crt")],
        ),
        (
            "tencent",
            "tencent-svc-certificate-check",
            [*(f"/opt/platform/replication/{kind}/ca.crt" for kind in ("mysql", "postgres", "redis")),
             "/etc/letsencrypt/live/api.example.com/fullchain.pem"],
        ),
    ],
)  # fmt: skip
def test_each_host_checks_the_certificates_its_plan_puts_there(stack: str, command: str, expected: list[str]):
    from tests.stacks import evaluate, step_parameters

    run = evaluate(stack)
    script = step_parameters(run, command)["SCRIPT_CONTENT"]
    (line,) = [line for line in script.splitlines() if line.startswith("CERT_FILES=")]
    assert shlex.split(line.removeprefix("CERT_FILES=")) == [" ".join(expected)]
    monitoring = run.named(command.replace("certificate-check", "monitoring"))
    assert monitoring.urn in run.named(command).dependencies
    assert run.named(command).parent == run.named(command.rsplit("-", 2)[0]).urn


def test_without_monitoring_no_certificate_check_is_installed():
    from tests.stacks import evaluate

    run = evaluate("alibaba", monitoring={"enabled": False})
    assert not [r for r in run.resources if r.name.endswith("certificate-check")]


@pytest.mark.parametrize(("interval", "delay"), [(None, "30s"), (5, "5s")])
def test_prometheus_resends_firing_alerts_at_every_evaluation(interval: int | None, delay: str):
    """So a stopped Prometheus's Watchdog leaves Alertmanager 4 intervals after its last sending (the
    heartbeat's bound), not 4 minutes: tests/provisioning/test_monitoring_network.py shows it."""
    from components.monitoring import program_unit

    settings = {"enabled": True} | ({"scrapeIntervalS": interval} if interval else {})
    unit = program_unit(plan_of("tencent", monitoring=settings).monitoring_plan, "prometheus")
    assert f"--rules.alert.resend-delay={delay}" in unit
