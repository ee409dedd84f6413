"""The monitoring across the rehearsal's network: what the two hosts notice when the other, a
database or the watcher dies (root; skipped with the rehearsal's reason otherwise).

Each stack's registered security-group rules are enforced as nftables in the namespace that plays
its host (the rehearsal's shipped stack files, ``rehearsal.network``). On the Alibaba namespace:
Debian's MariaDB on the plan's port 3306, its exporter's user made by the real exporter step, and
node exporter and the MySQL exporter installed by the real monitoring step over an sshd in that
namespace (``SshHost(netns=...)``); small listeners on the plan's seven other database ports; the
rehearsal's sshd on port 22 holding the Alibaba stack's authorized_keys line for the metrics tunnel.
On the Tencent namespace: Prometheus, Alertmanager, the blackbox exporter and node exporter, and the
tunnel, installed by the real monitoring step, which scrape the Alibaba exporters through the tunnel
and probe the Alibaba database ports across the groups. Slack and the heartbeat service are one
webhook receiver on the Internet namespace, port 443 (the groups let it out; plain HTTP here).

Standing in: the rehearsal's tunnel key and host key for the stacks' (root for the login's user, as
in ``make rehearse``); the test's faster clock (scrapes every second, ``targetDownMinutes`` 1, the
Alibaba heartbeat's window 3 s) for the plan's defaults, whose bounds the README states.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from components import heartbeat, monitoring
from components.exporters import exporter_password, exporter_step
from plan import MetricsTunnel, MonitoringPlan, Plan, metrics_tunnel_of
from preflight.engine import unwrap
from rehearsal import Stack, evaluate
from rehearsal.flows import ADDRESSES
from rehearsal.network import Host, Network, cannot_run
from rehearsal.nftables import ruleset
from tests.provisioning import real_engines, webhook
from tests.provisioning.harness import STATS, SshHost, password_for
from tests.provisioning.test_db_exporters import database, write_secret
from tests.provisioning.test_monitoring_loopback import beat

WHY_NOT = cannot_run()
PROGRAMS = ("node-exporter", "mysqld-exporter", "prometheus", "alertmanager", "blackbox-exporter")
MISSING = [monitoring.binary_of(p) for p in PROGRAMS if not Path(monitoring.binary_of(p)).exists()]
ALIBABA, INTERNET = ADDRESSES["alibaba"], ADDRESSES["internet"]
HOOK_PORT = 443  # Slack's and the heartbeat service's: on both groups' outbound allowlist
SCRAPE_S = 1
DOWN_MINUTES = 1  # the plan's least targetDownMinutes
GROUP_WAIT_S = 30  # Alertmanager's route (components/monitoring.py)
SCRAPED_WITHIN_S = 3
WATCHED = ("node-exporter", "mysqld-exporter")  # the Alibaba exporters this rehearsal runs
# What `make bench` prints: how long each failure took to be noticed here, beside the bound.
NOTICED: list[tuple[str, float, float]] = []

pytestmark = [
    pytest.mark.drill,
    pytest.mark.skipif(WHY_NOT is not None, reason=f"rehearsal: {WHY_NOT}"),
    pytest.mark.skipif(
        bool(MISSING), reason=f"needs {', '.join(MISSING)} (Debian's prometheus packages; .ci/run installs them)"
    ),
]


@dataclass(frozen=True)
class Platform:
    network: Network
    alibaba: SshHost
    tencent: SshHost
    alibaba_plan: Plan
    watcher: MonitoringPlan  # the Tencent host's monitoring, as its step renders it
    mysql: real_engines.Instance
    requests: Path  # what the Internet's receiver was sent, a JSON line each

    def posted(self) -> list[dict]:
        return [r["body"] for r in webhook.recorded(self.requests) if r["method"] == "POST"]

    def pings(self) -> list[str]:
        return [r["path"] for r in webhook.recorded(self.requests) if r["method"] == "GET"]

    def tencent_api(self, program: str, path: str) -> object:
        """Prometheus's or Alertmanager's HTTP API on the Tencent host's loopback."""
        url = f"http://127.0.0.1:{monitoring.port_of(self.watcher, program)}{path}"
        return json.loads(self.network.run("tencent", ["curl", "-fsS", "--max-time", "5", url]))

    def firing(self) -> set[tuple[str, str]]:
        """(alertname, what it names) of every alert Prometheus fires."""
        query = urllib.parse.quote('ALERTS{alertstate="firing"}')
        result = self.tencent_api("prometheus", f"/api/v1/query?query={query}")
        assert isinstance(result, dict)
        return {
            (s["metric"]["alertname"], s["metric"].get("workload") or s["metric"].get("job", ""))
            for s in result["data"]["result"]
        }

    def targets_down(self) -> list[str]:
        """The scrape targets not up (each job's targets, as the plan renders them)."""
        result = self.tencent_api("prometheus", "/api/v1/targets?state=active")
        assert isinstance(result, dict)
        targets = result["data"]["activeTargets"]
        return [f"{t['labels']['job']} {t['labels']['instance']}" for t in targets if t["health"] != "up"] or (
            [] if targets else ["no targets yet"]
        )


def wait_for(condition: Callable[[], object], within_s: float, what: str) -> float:
    """Seconds until ``condition`` holds, polled every half second; fails after ``within_s``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within_s:
            pytest.fail(f"{what}: not within {within_s:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def stacks() -> dict[str, Stack]:
    return evaluate()


@pytest.fixture(scope="module")
def platform(stacks: dict[str, Stack], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    if reason := real_engines.unavailable("mysql"):
        pytest.skip(reason)
    hosts = [Host(name, (ADDRESSES[name],)) for name in stacks]
    hosts.append(Host("internet", (INTERNET,)))
    started: list[SshHost] = []
    first_run = len(STATS.runs)
    with Network(hosts) as network:
        for name, stack in stacks.items():
            network.enforce(name, ruleset(stack.rules(), stack.cloud))
        requests = network.workdir / "internet-requests.jsonl"
        receiver = Path(webhook.__file__)
        network.start("internet", [sys.executable, "-I", str(receiver), INTERNET, str(HOOK_PORT), str(requests)])
        reachable = [(INTERNET, INTERNET, HOOK_PORT, "tcp")]
        wait_for(lambda: network.probe("internet", reachable) == [True], 30, "the Internet's receiver")
        mysql = None
        try:
            alibaba = ssh_host(network, "alibaba", tmp_path_factory, started)
            tencent = ssh_host(network, "tencent", tmp_path_factory, started)
            placed = real_engines.Placement(network.namespace("alibaba"), 3306)
            mysql = real_engines.start_mysql(tmp_path_factory.mktemp("alibaba-mysql"), placed=placed)
            alibaba_plan = database_host(alibaba, mysql)
            peer_databases = stacks["tencent"].plan.monitoring_plan.peer_databases
            network.listen("alibaba", [(port, "tcp") for _, port in peer_databases if port != mysql.port])
            network.sshd("alibaba", stacks["alibaba"].plan.host.ssh_port)
            watcher = watching_host(network, stacks["alibaba"], tencent, peer_databases)
            yield Platform(network, alibaba, tencent, alibaba_plan, watcher, mysql, requests)
        finally:
            for host in started:
                host.stop()
            if mysql is not None:
                mysql.close()
    for host in started:
        leaks = host.find_leaks(STATS.runs[first_run:])
        assert not leaks, "placeholder secrets leaked:\n" + "\n".join(leaks)


def ssh_host(network: Network, role: str, factory: pytest.TempPathFactory, started: list[SshHost]) -> SshHost:
    host = SshHost(factory.mktemp(f"{role}-host"), netns=network.namespace(role))
    started.append(host)
    host.start()
    host.reset()
    return host


def database_host(alibaba: SshHost, mysql: real_engines.Instance) -> Plan:
    """The Alibaba host's MySQL and its exporters, as its steps make them over SSH in its namespace:
    the exporter's user in MariaDB, then node exporter and the MySQL exporter on its loopback."""
    plan = alibaba.plan("alibaba", databases=[database("mysql", mysql.port)], extra={"monitoring": {"enabled": True}})
    db = plan.databases[0]
    write_secret(plan, "mysql")
    real_engines.attach(mysql, db.name, alibaba.standin_state)
    (exporter,) = plan.exported_databases
    made = alibaba.step(
        exporter_step("alibaba-db", plan.layout, exporter, db, False, ""),
        exporter_password(password_for(db.name), db),
    )
    assert made.code == 0, made
    assert {w.name for w in plan.monitoring_workloads} == {*WATCHED, "metrics-login"}  # the login: rehearsal sshd
    installed = alibaba.step(monitoring.monitoring_step("alibaba", plan.monitoring_plan), "", timeout=180)
    assert installed.code == 0, installed
    return plan


def watching_host(
    network: Network, alibaba: Stack, tencent: SshHost, peer_databases: tuple[tuple[str, int], ...]
) -> MonitoringPlan:
    """The Tencent host's monitoring, installed by its step: the tunnel as the Alibaba stack exports
    it (its watched exporters; the rehearsal's user and host key), the database ports the Tencent
    stack probes, the webhook on the Internet host. Its health check reads the Alibaba node exporter
    through the tunnel, across both groups."""
    exported = metrics_tunnel_of(unwrap(alibaba.run.outputs["metricsTunnel"]))
    assert exported is not None
    options = alibaba.parameters("metrics-login")["AUTHORIZED"].split(" ")[0]
    network.authorize(f"{options} {(network.workdir / 'tunnel.pub').read_text()}")
    host_key = " ".join((network.workdir / "host.pub").read_text().split()[:2])
    exporters = tuple((name, port) for name, port in exported.exporters if name in WATCHED)
    tunnel = MetricsTunnel("root", exported.ssh_port, host_key, exporters)
    fast = {"enabled": True, "scrapeIntervalS": SCRAPE_S, "alerting": {"targetDownMinutes": DOWN_MINUTES}}
    plan = tencent.plan("tencent", extra={"databaseStack": "organization/platform/alibaba", "monitoring": fast})
    # The listeners standing in for Neo4j, Elasticsearch and Weaviate speak no HTTP: their health is
    # not asked here (tests/provisioning/test_monitoring_loopback.py asks a real blackbox exporter).
    watcher = replace(
        plan.monitoring_plan, peer_address=ALIBABA, tunnel=tunnel, peer_databases=peer_databases, peer_health=()
    )
    key = (network.workdir / "tunnel").read_text()
    stdin = monitoring.webhook_stdin(f"http://{INTERNET}:{HOOK_PORT}/hook", None, key)
    installed = tencent.step(monitoring.monitoring_step("app", watcher), stdin, timeout=180)
    assert installed.code == 0, installed
    assert "monitoring: metrics-tunnel (re)started" in installed.stdout, installed
    return watcher


def all_up(platform: Platform) -> None:
    """Every target answers, and Prometheus fires nothing but the Watchdog."""
    wait_for(lambda: not platform.targets_down(), 60, f"every target up (down: {platform.targets_down()})")
    jobs = {"node-exporter", "mysqld-exporter", "database-port"}
    result = platform.tencent_api("prometheus", "/api/v1/targets?state=active")
    assert isinstance(result, dict)
    assert {t["labels"]["job"] for t in result["data"]["activeTargets"]} == jobs
    wait_for(lambda: ("Watchdog", "") in platform.firing(), 30, "the Watchdog firing")
    assert platform.firing() == {("Watchdog", "")}


def test_a_stopped_prometheus_silences_both_hosts_heartbeats(platform: Platform):
    """Each host's heartbeat pings the service on the Internet while Prometheus works (the Tencent one
    while Alertmanager holds the Watchdog, the Alibaba one while the Tencent Prometheus scrapes it
    through the tunnel); once that Prometheus stops, neither does, so the service pages."""
    all_up(platform)
    tencent_url = f"http://{INTERNET}:{HOOK_PORT}/ping/tencent-host"
    alibaba_url = f"http://{INTERNET}:{HOOK_PORT}/ping/alibaba-host"
    alibaba_watch = platform.alibaba_plan.monitoring_plan
    held = "/api/v2/alerts?filter=alertname%3D%22Watchdog%22"
    wait_for(lambda: platform.tencent_api("alertmanager", held), 90, "the Watchdog at Alertmanager")
    for host, watch, url, within in (
        (platform.tencent, platform.watcher, tencent_url, heartbeat.SCRAPED_WITHIN_S),
        (platform.alibaba, alibaba_watch, alibaba_url, SCRAPED_WITHIN_S),
    ):
        stdin = heartbeat.heartbeat_stdin(url)
        step = heartbeat.heartbeat_step("app" if host is platform.tencent else "db", watch, stdin, within)
        installed = host.step(step, stdin)
        assert installed.code == 0, installed
    assert platform.pings() == ["/ping/tencent-host"]  # the Alibaba one counts its scrapes from now
    time.sleep(2 * SCRAPE_S)
    scraped = beat(platform.alibaba, alibaba_watch.layout.paths)
    assert scraped.code == 0, scraped
    assert "the peer's Prometheus scraped this host" in scraped.stdout, scraped
    assert platform.pings() == ["/ping/tencent-host", "/ping/alibaba-host"]

    stopped = platform.tencent.run(f"systemctl stop {monitoring.unit_name('prometheus')}", label="stop prometheus")
    assert stopped.code == 0, stopped
    # The Alibaba timer's next run still counts the scrapes made before the stop, and pings.
    assert beat(platform.alibaba, alibaba_watch.layout.paths).code == 0
    # Alertmanager drops the Watchdog 4 resend delays (here 4 scrape intervals) after its last sending.
    bound = 4 * SCRAPE_S + 20
    seconds = wait_for(
        lambda: beat(platform.tencent, platform.watcher.layout.paths).code == 1, bound, "Tencent stops pinging"
    )
    NOTICED.append(("Tencent heartbeat stops (Prometheus stopped)", round(seconds, 1), bound))
    pinged = platform.pings()  # the Tencent runs before found the Watchdog still held, and pinged
    time.sleep(SCRAPED_WITHIN_S + 1)
    unscraped = beat(platform.alibaba, alibaba_watch.layout.paths)
    assert unscraped.code == 1, unscraped
    assert f"nobody has scraped this host for more than {SCRAPED_WITHIN_S} s" in unscraped.stdout, unscraped
    silent = beat(platform.tencent, platform.watcher.layout.paths)
    assert silent.code == 1, silent
    assert "Alertmanager holds no Watchdog alert" in silent.stdout, silent
    assert platform.pings() == pinged  # no ping from either host since: the service pages for both

    restarted = platform.tencent.run(f"systemctl start {monitoring.unit_name('prometheus')}", label="start prometheus")
    assert restarted.code == 0, restarted
    wait_for(lambda: beat(platform.tencent, platform.watcher.layout.paths).code == 0, 60, "Tencent pings again")


def test_a_stopped_database_fires_and_a_dead_host_pages_once(platform: Platform):
    """MariaDB stops on the Alibaba host: the MySQL exporter and the TCP probe across the groups both
    say so. Then the Alibaba host's network goes: HostDown reaches the webhook, and the alerts of that
    host that follow it are held back."""
    all_up(platform)
    platform.mysql.stop()
    bound = DOWN_MINUTES * 60 + 4 * SCRAPE_S + 15
    database_alerts = {("DatabaseDown", "mysqld-exporter"), ("DatabaseUnreachable", "production-mysql")}
    seconds = wait_for(lambda: database_alerts <= platform.firing(), bound, "the stopped database's alerts")
    NOTICED.append(("DatabaseDown firing (MariaDB stopped)", round(seconds, 1), bound))
    bound = GROUP_WAIT_S + 20
    seconds = wait_for(lambda: len(titles(platform)) == 2, bound, "the database's alerts at the webhook")
    NOTICED.append(("  and at the webhook, after firing", round(seconds, 1), bound))
    assert titles(platform) == ["FIRING: DatabaseDown", "FIRING: DatabaseUnreachable"]
    sent = json.dumps(platform.posted())
    assert "the database mysqld-exporter watches on alibaba does not answer it" in sent
    assert "production-mysql on alibaba does not accept connections" in sent

    platform.network.run("alibaba", ["ip", "link", "set", "eth0", "down"])
    bound = DOWN_MINUTES * 60 + 4 * SCRAPE_S + GROUP_WAIT_S + 20

    def host_down() -> list[dict]:
        return [body for body in platform.posted() if "HostDown" in json.dumps(body)]

    seconds = wait_for(host_down, bound, "HostDown at the webhook")
    NOTICED.append(("HostDown at the webhook (network down)", round(seconds, 1), bound))
    (message,) = host_down()
    assert f"alibaba does not answer ({ALIBABA}:9100)" in json.dumps(message)

    # Everything else of that host (its other database ports, the MySQL exporter through the dead
    # tunnel) fires as well, and Alertmanager holds it back while HostDown fires: one page for the host.
    def others() -> list[dict]:
        alerts = platform.tencent_api("alertmanager", "/api/v2/alerts?filter=host%3D%22alibaba%22")
        assert isinstance(alerts, list)
        return [a for a in alerts if a["labels"]["alertname"] != "HostDown"]

    wait_for(lambda: len(others()) > len(database_alerts), 30, "the Alibaba host's other alerts")
    time.sleep(5)  # their groups' first flush falls with HostDown's
    for alert in others():
        assert alert["status"]["inhibitedBy"], alert
    assert titles(platform) == ["FIRING: DatabaseDown", "FIRING: DatabaseUnreachable", "FIRING: HostDown"]


def titles(platform: Platform) -> list[str]:
    """The title of each message Slack was sent (one per alert group), sorted."""
    return sorted(a["title"] for body in platform.posted() for a in body.get("attachments", []))
