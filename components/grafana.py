"""Grafana's dashboards as code, for an optional Grafana (off by default) on the Prometheus host.

The dashboards are JSON files under monitoring/grafana/dashboards, provisioned read-only from a
directory (``dashboard_provider``) and reading one datasource whose uid they name
(``DATASOURCE_UID``, provisioned by ``datasource``). Pure functions; checked in
tests/components/test_grafana.py (every panel's query parses with the real ``promtool``, and every metric
the platform alerts on is on some dashboard).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

DATASOURCE_UID = "platform-prometheus"
DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "monitoring" / "grafana" / "dashboards"


def datasource(prometheus_url: str, scrape_interval_s: int) -> dict[str, Any]:
    """The provisioned Prometheus datasource. ``timeInterval`` is the scrape interval, so that
    ``$__rate_interval`` always spans at least four scrapes."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Platform Prometheus",
                "type": "prometheus",
                "uid": DATASOURCE_UID,
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
                "editable": False,
                "jsonData": {"timeInterval": f"{scrape_interval_s}s"},
            }
        ],
    }


def dashboard_provider(dashboards_path: str) -> dict[str, Any]:
    """The provider that loads the dashboard files from ``dashboards_path``: neither deletable nor
    editable in the UI, since the next deployment would overwrite the change."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "platform",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
            }
        ],
    }


def dashboards() -> dict[str, str]:
    """File name -> text of each dashboard, sorted by name."""
    return {path.name: path.read_text() for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        # A collapsed row holds its panels; an open one is followed by them at the top level.
        yield from _panels(panel.get("panels", []))


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, rows' nested panels included."""
    return [
        (panel.get("title", ""), target["expr"])
        for panel in _panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def grafana_ini(listen_address: str, port: int, data_dir: str, provisioning_dir: str) -> str:
    """A minimal grafana.ini. The admin password is not in it: Grafana reads it from the file named
    by ``GF_SECURITY_ADMIN_PASSWORD__FILE``, which the unit points at its systemd credential
    (LoadCredential=), so the secret is in no configuration file.

    ``cookie_secure``: browsers keep secure cookies over plain HTTP only on localhost, so Grafana is
    reached through a tunnel to localhost or behind TLS.
    """
    values = {"listen_address": listen_address, "data_dir": data_dir, "provisioning_dir": provisioning_dir}
    for key, value in values.items():
        if not value or any(c in value for c in "\n\r;#"):
            raise ValueError(f"grafana_ini: {key}={value!r} must be one non-empty line without ';' or '#'")
    if not 1 <= port <= 65535:
        raise ValueError(f"grafana_ini: port={port} must be between 1 and 65535")
    sections = {
        "server": {"http_addr": listen_address, "http_port": str(port)},
        "paths": {"data": data_dir, "provisioning": provisioning_dir},
        "analytics": {"reporting_enabled": "false", "check_for_updates": "false"},
        "security": {"disable_gravatar": "true", "cookie_secure": "true"},
        "users": {"allow_sign_up": "false"},
        "auth.anonymous": {"enabled": "false"},
        "log": {"mode": "console"},
    }
    lines = ["; Managed by Pulumi (platform plan); edits are overwritten."]
    for section, settings in sections.items():
        lines += ["", f"[{section}]", *(f"{key} = {value}" for key, value in settings.items())]
    return "\n".join(lines) + "\n"
