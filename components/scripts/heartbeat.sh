#!/usr/bin/env bash
# The dead man's switch of the Prometheus host: while Alertmanager (ALERTMANAGER, on loopback) holds
# the always-firing Watchdog alert, which only a running Prometheus that evaluates its rules and
# reaches Alertmanager keeps there, ping the heartbeat URL (URL_FILE, 0600, one https URL of a
# healthchecks-style service). When this host, its Prometheus or its Alertmanager dies, the pings
# stop and the heartbeat service pages: the one alert that cannot come from the host that died.
# The URL goes to curl through its configuration on stdin, never on its command line.
# Textfile metrics for node exporter (METRICS_FILE):
#   platform_heartbeat_configured                 1 when URL_FILE holds a URL
#   platform_heartbeat_watchdog_active            1 when Alertmanager holds the Watchdog alert
#   platform_heartbeat_last_sent_timestamp_seconds the last ping the service took (kept across runs)
# Exit status 0 when the ping was taken or no URL is set; 1 when the Watchdog is missing or the
# service refused or could not be reached.
# Parameters: ALERTMANAGER (host:port), URL_FILE, METRICS_FILE, TIMEOUT (seconds per request).
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail
umask 022

configured=0 active=0 status=0
last_sent=""
if [[ -f "${METRICS_FILE}" ]]; then
  last_sent=$(sed -n 's/^platform_heartbeat_last_sent_timestamp_seconds \([0-9]*\)$/\1/p' "${METRICS_FILE}")
fi

if [[ -s "${URL_FILE}" ]]; then
  configured=1
  # filter=alertname="Watchdog", URL-encoded.
  query="http://${ALERTMANAGER}/api/v2/alerts?active=true&silenced=false&inhibited=false&filter=alertname%3D%22Watchdog%22"
  if ! alerts=$(curl -fsS --max-time "${TIMEOUT}" "${query}" 2>&1); then
    echo "heartbeat: Alertmanager on ${ALERTMANAGER} does not answer (${alerts}); no ping: the heartbeat service will page"
    status=1
  elif [[ "${alerts}" != *'"alertname":"Watchdog"'* ]]; then
    echo "heartbeat: Alertmanager holds no Watchdog alert (Prometheus is not evaluating its rules or not reaching it); no ping: the heartbeat service will page"
    status=1
  else
    active=1
    # `url = "..."`: the plan admits no quote, backslash or white space in the URL.
    if answer=$(printf 'url = "%s"\n' "$(< "${URL_FILE}")" \
      | curl -fsS --max-time "${TIMEOUT}" --retry 2 -o /dev/null --config - 2>&1); then
      last_sent=$(date +%s)
      echo "heartbeat: sent (the Watchdog alert is active)"
    else
      echo "heartbeat: the heartbeat service did not take the ping: ${answer##*curl: }"
      status=1
    fi
  fi
else
  echo "heartbeat: no URL (platform:heartbeatUrl): nothing outside this host hears whether its alerting works"
fi

metrics=$(mktemp "${METRICS_FILE}.XXXXXX")
trap 'rm -f "${metrics}"' EXIT
{
  echo "# HELP platform_heartbeat_configured Whether a heartbeat URL is set (platform:heartbeatUrl)."
  echo "# TYPE platform_heartbeat_configured gauge"
  echo "platform_heartbeat_configured ${configured}"
  echo "# HELP platform_heartbeat_watchdog_active Whether Alertmanager held the Watchdog alert at the last run."
  echo "# TYPE platform_heartbeat_watchdog_active gauge"
  echo "platform_heartbeat_watchdog_active ${active}"
  if [[ -n "${last_sent}" ]]; then
    echo "# HELP platform_heartbeat_last_sent_timestamp_seconds When the heartbeat service last took a ping."
    echo "# TYPE platform_heartbeat_last_sent_timestamp_seconds gauge"
    echo "platform_heartbeat_last_sent_timestamp_seconds ${last_sent}"
  fi
} > "${metrics}"
chmod 644 "${metrics}"
mv -f "${metrics}" "${METRICS_FILE}"
trap - EXIT
exit "${status}"
