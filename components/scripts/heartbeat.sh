#!/usr/bin/env bash
# The dead man's switch of a host: ping the heartbeat URL (URL_FILE, 0600, one https URL of a
# healthchecks-style service) while this host's watcher works, so that the service pages from
# outside both clouds when the pings stop. What "works" means (MODE):
#   watchdog  the host runs Prometheus: Alertmanager (ALERTMANAGER, on loopback) holds the
#             always-firing Watchdog alert, which only a running Prometheus that evaluates its
#             rules and reaches Alertmanager keeps there;
#   scraped   the peer's Prometheus scrapes this host through the metrics tunnel: node exporter
#             (NODE_EXPORTER) counted a scrape besides this script's own reads
#             (promhttp_metric_handler_requests_total) within the last SCRAPED_WITHIN seconds, so
#             the peer host, its Prometheus and the tunnel are alive.
# The URL goes to curl through its configuration on stdin, never on its command line.
# Textfile metrics for node exporter (METRICS_FILE):
#   platform_heartbeat_configured                  1 when URL_FILE holds a URL
#   platform_heartbeat_signal{mode="..."}          1 when the watcher worked at the last run
#   platform_heartbeat_last_sent_timestamp_seconds the last ping the service took (kept across runs)
#   platform_heartbeat_node_exporter_requests      node exporter's count at the last run (scraped)
#   platform_heartbeat_last_scraped_timestamp_seconds  when a run last saw a scrape (scraped)
# Exit status 0 when the ping was taken or no URL is set; 1 when the watcher did not work or the
# service refused or could not be reached.
# Parameters: MODE, ALERTMANAGER or NODE_EXPORTER (host:port) and SCRAPED_WITHIN (seconds),
# URL_FILE, METRICS_FILE, TIMEOUT (seconds per request).
# shellcheck disable=SC2154,SC2310  # parameters are rendered above this body; the checks answer with their status
set -euo pipefail
umask 022

configured=0 signal=0 status=0
last_sent="" requests="" last_scraped=""
previous() {  # metric name: its value in the last run's file, if any
  [[ -f "${METRICS_FILE}" ]] || return 0
  awk -v name="$1" '$1 == name { printf "%d", $2 }' "${METRICS_FILE}"
}
last_sent=$(previous platform_heartbeat_last_sent_timestamp_seconds)
last_scraped=$(previous platform_heartbeat_last_scraped_timestamp_seconds)
now=$(date +%s)

watchdog_held() {
  local alerts
  # filter=alertname="Watchdog", URL-encoded.
  local query="http://${ALERTMANAGER}/api/v2/alerts?active=true&silenced=false&inhibited=false&filter=alertname%3D%22Watchdog%22"
  if ! alerts=$(curl -fsS --max-time "${TIMEOUT}" "${query}" 2>&1); then
    echo "heartbeat: Alertmanager on ${ALERTMANAGER} does not answer (${alerts}); no ping: the heartbeat service will page"
    return 1
  fi
  if [[ "${alerts}" != *'"alertname":"Watchdog"'* ]]; then
    echo "heartbeat: Alertmanager holds no Watchdog alert (Prometheus is not evaluating its rules or not reaching it); no ping: the heartbeat service will page"
    return 1
  fi
  echo "heartbeat: the Watchdog alert is active"
}

scraped_by_the_peer() {
  local page before others
  before=$(previous platform_heartbeat_node_exporter_requests)
  if ! page=$(curl -fsS --max-time "${TIMEOUT}" "http://${NODE_EXPORTER}/metrics" 2>&1); then
    echo "heartbeat: node exporter on ${NODE_EXPORTER} does not answer; no ping: the heartbeat service will page"
    return 1
  fi
  # The count excludes the request that reads it; node exporter writes large counts as 1.2e+06.
  requests=$(awk '$1 == "promhttp_metric_handler_requests_total{code=\"200\"}" { printf "%d", $2 }' <<< "${page}")
  if [[ -z "${requests}" ]]; then
    echo "heartbeat: node exporter on ${NODE_EXPORTER} reports no promhttp_metric_handler_requests_total"
    return 1
  fi
  if [[ -z "${before}" ]]; then
    echo "heartbeat: first run: the peer's scrapes are counted from now"
    return 1
  fi
  # Since the last run: every read but that run's own; after a restart of node exporter, all of them.
  if ((requests > before)); then others=$((requests - before - 1)); else others=${requests}; fi
  if ((others >= 1)); then last_scraped=${now}; fi
  # A scrape interval longer than the timer's minute leaves runs without a scrape: the window holds.
  if [[ -z "${last_scraped}" ]] || ((now - last_scraped > SCRAPED_WITHIN)); then
    echo "heartbeat: nobody has scraped this host for more than ${SCRAPED_WITHIN} s (the peer host, its Prometheus or the metrics tunnel is down); no ping: the heartbeat service will page"
    return 1
  fi
  echo "heartbeat: the peer's Prometheus scraped this host ${others} time(s) since the last run, last $((now - last_scraped)) s ago"
}

if [[ -s "${URL_FILE}" ]]; then
  configured=1
  case "${MODE}" in
    watchdog) if watchdog_held; then signal=1; fi ;;
    scraped) if scraped_by_the_peer; then signal=1; fi ;;
    *)
      echo "heartbeat: unknown MODE ${MODE}" >&2
      exit 2
      ;;
  esac
  if [[ "${signal}" == 1 ]]; then
    # `url = "..."`: the plan admits no quote, backslash or white space in the URL.
    if answer=$(printf 'url = "%s"\n' "$(< "${URL_FILE}")" \
      | curl -fsS --max-time "${TIMEOUT}" --retry 2 -o /dev/null --config - 2>&1); then
      last_sent=${now}
      echo "heartbeat: sent"
    else
      echo "heartbeat: the heartbeat service did not take the ping: ${answer##*curl: }"
      status=1
    fi
  else
    status=1
  fi
else
  echo "heartbeat: no URL (platform:heartbeatUrl): nothing outside this host hears whether its watcher works"
fi

metrics=$(mktemp "${METRICS_FILE}.XXXXXX")
trap 'rm -f "${metrics}"' EXIT
{
  echo "# HELP platform_heartbeat_configured Whether a heartbeat URL is set (platform:heartbeatUrl)."
  echo "# TYPE platform_heartbeat_configured gauge"
  echo "platform_heartbeat_configured ${configured}"
  echo "# HELP platform_heartbeat_signal Whether the watcher worked at the last run (the condition for a ping)."
  echo "# TYPE platform_heartbeat_signal gauge"
  echo "platform_heartbeat_signal{mode=\"${MODE}\"} ${signal}"
  if [[ -n "${last_sent}" ]]; then
    echo "# HELP platform_heartbeat_last_sent_timestamp_seconds When the heartbeat service last took a ping."
    echo "# TYPE platform_heartbeat_last_sent_timestamp_seconds gauge"
    echo "platform_heartbeat_last_sent_timestamp_seconds ${last_sent}"
  fi
  if [[ -n "${requests}" ]]; then
    echo "# HELP platform_heartbeat_node_exporter_requests Node exporter's count of its scrapes at the last run."
    echo "# TYPE platform_heartbeat_node_exporter_requests gauge"
    echo "platform_heartbeat_node_exporter_requests ${requests}"
  fi
  if [[ -n "${last_scraped}" ]]; then
    echo "# HELP platform_heartbeat_last_scraped_timestamp_seconds When a run last saw the peer's scrape."
    echo "# TYPE platform_heartbeat_last_scraped_timestamp_seconds gauge"
    echo "platform_heartbeat_last_scraped_timestamp_seconds ${last_scraped}"
  fi
} > "${metrics}"
chmod 644 "${metrics}"
mv -f "${metrics}" "${METRICS_FILE}"
trap - EXIT
exit "${status}"
