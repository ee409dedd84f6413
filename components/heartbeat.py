"""Who watches the watcher: each host's dead man's switch, a ping to a heartbeat service outside
both clouds (``platform:heartbeatUrl``, a secret; a healthchecks-style check per host) that pages
when the pings stop.

- **The host that runs Prometheus** (``watchdog``): Prometheus fires ``Watchdog`` always
  (``components/monitoring.py``) and Alertmanager routes it to nobody; a timer on the host
  (``heartbeat.sh``, every minute) pings while Alertmanager holds that alert. The pings stop when
  the host, its network, Prometheus, its rule evaluation or Alertmanager dies.
- **The host it scrapes through the metrics tunnel** (``scraped``, the Alibaba host by default):
  the timer pings while node exporter counts scrapes besides its own reads. The pings stop when
  the Prometheus host, its Prometheus or the tunnel dies, or this host does: the database host
  notices the application host's death on its own, through a check of its own at the service.

``HeartbeatNotSent`` reports a ping the service refuses while the rest still works.

A timer rather than an Alertmanager webhook: Debian's and Ubuntu's Alertmanager (0.25) read a
webhook's URL from the configuration only (no ``url_file``), which would put the secret in a world-
readable file; the oneshot reads it from a root-only file and costs no resident memory.
"""

from __future__ import annotations

from typing import Any

from components.monitoring import port_of, secret_file
from components.provisioning import Step, render
from components.timer_checks import TimerCheck
from plan import MonitoringPlan, Paths
from policies.facts import metrics_dir

HEARTBEAT_SERVICE = "platform-heartbeat"
# Chosen here: a minute between pings lets a heartbeat service with a 5-minute period and grace
# page within about ten minutes of the watcher's death.
HEARTBEAT_INTERVAL = "1min"
URL_FILE_NAME = "heartbeat-url"
REQUEST_TIMEOUT_S = 10
# How recent the peer's last scrape must be (scraped mode): the longest scrape interval a plan allows
# (monitoring.scrapeIntervalS, 300 s) and one run of the timer, so a slow scraper is no page.
SCRAPED_WITHIN_S = 300 + 60


def metrics_file(paths: Paths) -> str:
    return f"{metrics_dir(paths.state)}/heartbeat.prom"


def url_file(paths: Paths) -> str:
    """Where the step writes the heartbeat URL (root only), beside the other monitoring secrets."""
    return secret_file(paths, URL_FILE_NAME)


def heartbeat_check(paths: Paths) -> TimerCheck:
    return TimerCheck(
        what="heartbeat",
        service=HEARTBEAT_SERVICE,
        program=f"{paths.root}/bin/{HEARTBEAT_SERVICE}",
        metrics_file=metrics_file(paths),
        description="Ping the heartbeat URL while this host's watcher works",
        timer_description="Send the heartbeat every minute",
        # The watcher's question, then the ping and its two retries, each within REQUEST_TIMEOUT_S.
        timeout_s=6 * REQUEST_TIMEOUT_S,
        memory_max="32M",
        timer=("OnBootSec=2min", f"OnUnitActiveSec={HEARTBEAT_INTERVAL}", "AccuracySec=10s"),
    )


def local(monitoring: MonitoringPlan, program: str) -> str:
    return f"127.0.0.1:{port_of(monitoring, program)}"


def heartbeat_stdin(url: str | None) -> str:
    """The step's stdin: the URL on one line, or nothing (no heartbeat: its file is removed)."""
    value = (url or "").strip()
    if "\n" in value:
        raise ValueError("platform:heartbeatUrl is one line")
    return f"{value}\n" if value else ""


def heartbeat_step(
    component: str, monitoring: MonitoringPlan, stdin: Any, scraped_within_s: int = SCRAPED_WITHIN_S
) -> Step:
    """Installs the heartbeat's script and timer and writes its URL (``heartbeat_stdin``, a secret):
    ``watchdog`` on the host that runs Prometheus, ``scraped`` on the one it scrapes."""
    paths = monitoring.layout.paths
    if monitoring.runs_prometheus:
        watched: dict[str, str | int] = {"MODE": "watchdog", "ALERTMANAGER": local(monitoring, "alertmanager")}
    else:
        watched = {
            "MODE": "scraped",
            "NODE_EXPORTER": local(monitoring, "node-exporter"),
            "SCRAPED_WITHIN": scraped_within_s,
        }
    script = render(
        ["heartbeat.sh"],
        {**watched, "URL_FILE": url_file(paths), "METRICS_FILE": metrics_file(paths), "TIMEOUT": REQUEST_TIMEOUT_S},
    )
    check = heartbeat_check(paths)
    return check.step(f"{component}-heartbeat", monitoring.layout, script, secret=(url_file(paths), stdin))
