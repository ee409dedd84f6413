"""Grafana's dashboards and provisioning (components/grafana.py): the dashboard files read the
provisioned datasource, their queries parse with the real ``promtool`` (Debian's prometheus
2.42), and every metric the platform alerts on is drawn somewhere. Grafana itself is not run.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.grafana import (
    DASHBOARD_DIR,
    DATASOURCE_UID,
    dashboard_provider,
    dashboards,
    datasource,
    grafana_ini,
    panel_queries,
)
from components.monitoring import WATCHDOG, alert_rules
from plan import Plan
from tests.stacks import plan_of

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="needs promtool (Debian's prometheus package; .ci/run installs it)"
)
EXPECTED_DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
# Grafana's variables as a plain Prometheus reads them: a range of 5m, every instance.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "${instance}": ".*", "$instance": ".*"}


def loaded() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in dashboards().items()}


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False)


def _datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


def _all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _all_panels(panel.get("panels", []))


def datasource_problems(dashboard: dict[str, Any]) -> list[str]:
    """What reads anything but the provisioned datasource: a target without one, or any
    ``datasource`` reference (panel, target, variable) naming another."""
    problems = [
        f"{panel.get('title')}: target {target.get('refId')} names no datasource"
        for panel in _all_panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if "datasource" not in target
    ]
    problems += [f"reads {ref!r}" for ref in _datasource_refs(dashboard) if ref != EXPECTED_DATASOURCE]
    return problems


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def recording_rules(exprs: list[str]) -> dict[str, Any]:
    rules = [{"record": f"grafana:check_{n}", "expr": as_promql(expr)} for n, expr in enumerate(exprs)]
    return {"groups": [{"name": "grafana-check", "rules": rules}]}


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
# An identifier not inside another token, followed by a selector ({ or [), whitespace, an
# operator or the end: a metric name in the alert rules' shape. A function or aggregation is
# followed by "(" and is left out; label names are gone with the matchers' contents.
_METRIC = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?=[{\[\s+\-*/%^<>=!]|$)")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expr, simply: string literals and the contents of {...} and [...]
    are dropped first, then ``_METRIC`` without PromQL's keywords. Enough for the platform's alert
    rules; a bare metric inside a function call (``sum(x)``) would be missed."""
    bare = _STRING.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", "{}", bare)
    bare = re.sub(r"\[[^\]]*\]", "[]", bare)
    return {name for name in _METRIC.findall(bare) if name not in _KEYWORDS}


def alerted_metrics(plan: Plan) -> set[str]:
    rules = [rule for group in alert_rules(plan.monitoring_plan)["groups"] for rule in group["rules"]]
    return {name for rule in rules for name in metric_names(rule["expr"])}


def undrawn(metrics: set[str], boards: list[dict[str, Any]]) -> list[str]:
    """The metrics no panel query names (outside its string literals)."""
    exprs = [_STRING.sub('""', expr) for board in boards for _, expr in panel_queries(board)]
    return sorted(m for m in metrics if not any(re.search(rf"(?<![\w:]){re.escape(m)}(?![\w:])", e) for e in exprs))


# --- the dashboard files ---------------------------------------------------------------------------


def test_every_dashboard_file_is_json_with_a_unique_uid_and_title():
    texts = dashboards()
    assert list(texts) == sorted(path.name for path in DASHBOARD_DIR.glob("*.json"))
    assert len(texts) >= 2
    boards = [json.loads(text) for text in texts.values()]
    uids = [board["uid"] for board in boards]
    titles = [board["title"] for board in boards]
    assert all(uids)
    assert all(titles)
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_every_dashboard_is_read_only_tagged_platform_and_made_of_timeseries_and_stat_panels(name: str):
    board = loaded()[name]
    assert board["schemaVersion"] >= 36
    assert board["tags"] == ["platform"]
    assert board["editable"] is False
    assert "id" not in board  # Grafana assigns it; a fixed id collides across instances
    panels = list(_all_panels(board["panels"]))
    assert {p["type"] for p in panels} <= {"timeseries", "stat", "row"}
    for panel in panels:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_every_panel_target_reads_the_provisioned_datasource(name: str):
    assert datasource_problems(loaded()[name]) == []
    (provisioned,) = datasource("http://127.0.0.1:9090", 30)["datasources"]
    assert {"type": provisioned["type"], "uid": provisioned["uid"]} == EXPECTED_DATASOURCE


def test_a_dashboard_pointing_at_another_datasource_is_caught():
    board = copy.deepcopy(loaded()["hosts.json"])
    board["panels"][0]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "someone-elses"}
    del board["panels"][1]["targets"][0]["datasource"]
    problems = datasource_problems(board)
    assert "reads {'type': 'prometheus', 'uid': 'someone-elses'}" in problems
    assert any("names no datasource" in problem for problem in problems)


def test_panel_queries_reach_the_panels_inside_a_collapsed_row():
    board = {
        "panels": [
            {"type": "stat", "title": "top", "targets": [{"refId": "A", "expr": "up"}]},
            {
                "type": "row",
                "title": "folded",
                "collapsed": True,
                "panels": [{"type": "timeseries", "title": "inner", "targets": [{"expr": "a"}, {"expr": "b"}]}],
            },
        ]
    }
    assert panel_queries(board) == [("top", "up"), ("inner", "a"), ("inner", "b")]


def test_the_hosts_dashboard_filters_by_an_instance_variable_from_node_uname_info():
    board = loaded()["hosts.json"]
    (variable,) = board["templating"]["list"]
    assert variable["name"] == "instance"
    assert variable["type"] == "query"
    assert variable["query"] == "label_values(node_uname_info, instance)"
    for title, expr in panel_queries(board):
        assert 'instance=~"$instance"' in expr, title


def test_every_rate_and_increase_ranges_over_the_rate_interval():
    ranges = [
        (title, found)
        for board in loaded().values()
        for title, expr in panel_queries(board)
        for found in re.findall(r"\b(?:rate|irate|increase)\([^\[]*\[([^\]]*)\]", expr)
    ]
    assert ranges  # the OOM kills, unit restarts and CPU panels
    assert [(title, r) for title, r in ranges if r != "$__rate_interval"] == []


# --- the queries, with the real promtool -------------------------------------------------------------


@needs_promtool
def test_every_panel_query_parses_as_promql_with_promtool(tmp_path: Path):
    exprs = [expr for board in loaded().values() for _, expr in panel_queries(board)]
    rules = recording_rules(exprs)
    leftover = [r["expr"] for r in rules["groups"][0]["rules"] if "$" in r["expr"]]
    assert leftover == []  # a Grafana variable the check does not know of
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    checked = run(PROMTOOL, "check", "rules", tmp_path / "rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout


@needs_promtool
def test_a_broken_panel_query_fails_the_promtool_check(tmp_path: Path):
    exprs = [expr for board in loaded().values() for _, expr in panel_queries(board)]
    broken = next(expr for expr in exprs if ")" in expr).replace(")", "", 1)  # an unclosed call
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(recording_rules([*exprs, broken]), sort_keys=False))
    checked = run(PROMTOOL, "check", "rules", tmp_path / "rules.yml")
    assert checked.returncode != 0
    assert "FAILED" in checked.stdout + checked.stderr


# --- the alerts' metrics on the dashboards -----------------------------------------------------------


def test_metric_names_are_read_from_selectors_not_functions_labels_or_keywords():
    assert metric_names('increase(node_systemd_service_restart_total{name=~"a\\\\.service|b"}[15m]) >= 3') == {
        "node_systemd_service_restart_total"
    }
    assert metric_names("time() - platform_backup_last_success_timestamp_seconds > 93600") == {
        "platform_backup_last_success_timestamp_seconds"
    }
    assert metric_names("100 * node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 10") == {
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
    }
    assert metric_names('probe_success{job="service-health"} == 0 and on (instance) up') == {"probe_success", "up"}


@pytest.mark.parametrize("stack", ["alibaba", "tencent"])
def test_every_metric_the_platform_alerts_on_is_on_a_dashboard(stack: str):
    plan = plan_of(stack)
    for group in alert_rules(plan.monitoring_plan)["groups"]:
        for rule in group["rules"]:
            if rule["alert"] != WATCHDOG:  # vector(1): the one alert about no metric
                assert metric_names(rule["expr"]), rule["alert"]  # the extraction saw each alert's metric
    assert undrawn(alerted_metrics(plan), list(loaded().values())) == []


def test_a_dashboard_set_without_an_alerted_metric_is_caught():
    boards = copy.deepcopy(list(loaded().values()))
    for board in boards:
        board["panels"] = [p for p in board["panels"] if "OOM" not in p.get("title", "")]
    assert undrawn(alerted_metrics(plan_of("tencent")), boards) == ["node_vmstat_oom_kill"]


# --- provisioning and grafana.ini --------------------------------------------------------------------


def test_the_datasource_document_provisions_one_read_only_default_prometheus():
    document = datasource("http://127.0.0.1:9090", 30)
    assert set(document) == {"apiVersion", "datasources"}
    assert document["apiVersion"] == 1
    assert document["datasources"] == [
        {
            "name": "Platform Prometheus",
            "type": "prometheus",
            "uid": DATASOURCE_UID,
            "access": "proxy",
            "url": "http://127.0.0.1:9090",
            "isDefault": True,
            "editable": False,
            "jsonData": {"timeInterval": "30s"},
        }
    ]


def test_the_dashboard_provider_loads_the_directory_read_only():
    document = dashboard_provider("/etc/platform/grafana/dashboards")
    assert set(document) == {"apiVersion", "providers"}
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider == {
        "name": "platform",
        "type": "file",
        "disableDeletion": True,
        "allowUiUpdates": False,
        "options": {"path": "/etc/platform/grafana/dashboards", "foldersFromFilesStructure": False},
    }


def test_grafana_ini_holds_the_settings_and_no_password():
    ini = grafana_ini("127.0.0.1", 3000, "/var/lib/platform/grafana", "/etc/platform/grafana/provisioning")
    assert "password" not in ini.lower()
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in ini.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = {}
        elif "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            sections[current][key] = value
    assert sections == {
        "server": {"http_addr": "127.0.0.1", "http_port": "3000"},
        "paths": {"data": "/var/lib/platform/grafana", "provisioning": "/etc/platform/grafana/provisioning"},
        "analytics": {"reporting_enabled": "false", "check_for_updates": "false"},
        "security": {"disable_gravatar": "true", "cookie_secure": "true"},
        "users": {"allow_sign_up": "false"},
        "auth.anonymous": {"enabled": "false"},
        "log": {"mode": "console"},
    }


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (("127.0.0.1\nadmin_password = x", 3000, "/d", "/p"), "listen_address="),
        (("127.0.0.1", 3000, "", "/p"), "data_dir=''"),
        (("127.0.0.1", 70000, "/d", "/p"), "port=70000"),
    ],
)
def test_grafana_ini_refuses_a_value_that_would_break_its_line(arguments: tuple[Any, ...], fragment: str):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        grafana_ini(*arguments)


# --- Grafana in the plan and the monitoring step -------------------------------------------------


def test_grafana_is_off_by_default_and_on_request_a_loopback_workload_of_the_prometheus_host():
    assert "grafana" not in [w.name for w in plan_of("tencent", monitoring={"enabled": True}).monitoring_workloads]
    plan = plan_of("tencent", monitoring={"enabled": True, "grafana": True})
    (workload,) = [w for w in plan.monitoring_workloads if w.name == "grafana"]
    assert (workload.ports[0].port, workload.ports[0].expose.value, workload.memory_mib) == (3000, "none", 160)
    assert "grafana" not in [
        w.name for w in plan_of("alibaba", monitoring={"enabled": True, "grafana": True}).workloads
    ]


def test_the_monitoring_step_provisions_grafana_from_the_repository_files():
    from components.monitoring import monitoring_files, monitoring_step, program_unit

    plan = plan_of("tencent", monitoring={"enabled": True, "grafana": True, "ports": {"prometheus": 9190}})
    files = monitoring_files(plan.monitoring_plan)
    root = f"{plan.paths.monitoring}/grafana"
    for name, text in dashboards().items():
        assert files[f"grafana/dashboards/{name}"] == text
    (source,) = yaml.safe_load(files["grafana/provisioning/datasources/platform.yml"])["datasources"]
    assert (source["uid"], source["url"]) == (DATASOURCE_UID, "http://127.0.0.1:9190")
    (provider,) = yaml.safe_load(files["grafana/provisioning/dashboards/platform.yml"])["providers"]
    assert provider["options"]["path"] == f"{root}/dashboards"
    assert f"provisioning = {root}/provisioning" in files["grafana/grafana.ini"]
    assert "http_addr = 127.0.0.1" in files["grafana/grafana.ini"]

    unit = program_unit(plan.monitoring_plan, "grafana")
    assert f"ExecStart=/usr/sbin/grafana-server --homepath=/usr/share/grafana --config={root}/grafana.ini" in unit
    assert "Environment=GF_SECURITY_ADMIN_PASSWORD__FILE=%d/grafana-admin-password" in unit
    assert f"LoadCredential=grafana-admin-password:{plan.paths.secrets}/monitoring/grafana-admin-password" in unit
    params = monitoring_step("app", plan.monitoring_plan).parameters
    assert params["PACKAGED_UNIT_GRAFANA"] == "grafana-server.service"
    assert params["HEALTH_GRAFANA"] == "http://127.0.0.1:3000/api/health"
    assert params["GENERATED"] == f"{plan.paths.secrets}/monitoring/grafana-admin-password"
    assert "FILE_GRAFANA_DASHBOARDS_HOSTS_JSON" in params
    without = monitoring_step("app", plan_of("tencent", monitoring={"enabled": True}).monitoring_plan)
    assert without.parameters["GENERATED"] == ""


def test_the_pack_counts_grafana_and_names_the_shortfall_on_the_default_tencent_host():
    from tests.policies.shapes import run_program, violations

    (short,) = violations(run_program("tencent", monitoring={"enabled": True, "grafana": True}), "memory-budget")
    assert "short by 150 MiB" in short.message  # 160 for Grafana against the 10 left
