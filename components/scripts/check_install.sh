#!/usr/bin/env bash
# Installs a check that writes textfile metrics on a timer: the replication health check
# (repl_health.sh, rendered with the plan's replicas) or the certificates' expiry (cert_check.sh).
# SCRIPT_FILE with a oneshot service and its timer, then runs it once and prints what it found. A
# finding (an unhealthy replica, a certificate close to expiry) is reported, not a failure of this
# step: the metric and the alert rules carry it on. Unchanged files are not written and systemd is
# not reloaded ("unchanged").
# SECRET_FILE, when set, is a file the check reads (the heartbeat's URL): the first line of stdin is
# written there (0600, root), or an empty stdin removes it; it never appears in an argument or output.
# Parameters: WHAT (what it checks, for the summary), SCRIPT_FILE, SCRIPT_CONTENT, UNIT_DIR, SERVICE,
# SERVICE_CONTENT, TIMER_CONTENT, METRICS_FILE, SECRET_FILE.
# Removes: ${SECRET_FILE}
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail
umask 022

changed=0
units_changed=0
# Install content $2 at $1 with mode $3 through a temporary file beside it; 0 when it changed.
converge() {  # path content mode
  local tmp
  if [[ -f "$1" ]] && cmp -s "$1" <(printf '%s' "$2"); then
    [[ "$(stat -c %a "$1" || true)" == "$3" ]] || chmod "$3" "$1"
    return 1
  fi
  [[ -d "${1%/*}" ]] || mkdir -p "${1%/*}"
  tmp=$(mktemp "$1.XXXXXX")
  printf '%s' "$2" > "${tmp}"
  chmod "$3" "${tmp}"
  mv -f "${tmp}" "$1"
}

# shellcheck disable=SC2310  # converge answers with its status
if converge "${SCRIPT_FILE}" "${SCRIPT_CONTENT}" 755; then changed=1; fi
if [[ -n "${SECRET_FILE}" ]]; then
  secret=""
  IFS= read -r secret || true
  if [[ -z "${secret}" ]]; then
    if [[ -f "${SECRET_FILE}" ]]; then
      rm -f -- "${SECRET_FILE}"
      changed=1
    fi
  else
    [[ -d "${SECRET_FILE%/*}" ]] || install -d -m 700 "${SECRET_FILE%/*}"
    # shellcheck disable=SC2310
    if (umask 077 && converge "${SECRET_FILE}" "${secret}" 600); then changed=1; fi
  fi
fi
# shellcheck disable=SC2310
if converge "${UNIT_DIR}/${SERVICE}.service" "${SERVICE_CONTENT}" 644; then units_changed=1; fi
# shellcheck disable=SC2310
if converge "${UNIT_DIR}/${SERVICE}.timer" "${TIMER_CONTENT}" 644; then units_changed=1; fi
[[ -d "${METRICS_FILE%/*}" ]] || install -d -m 755 "${METRICS_FILE%/*}"

if [[ "${units_changed}" == 1 ]]; then
  systemctl daemon-reload
  changed=1
fi
if ! systemctl is-enabled --quiet "${SERVICE}.timer"; then
  systemctl enable --quiet "${SERVICE}.timer"
  changed=1
fi
if ! systemctl is-active --quiet "${SERVICE}.timer"; then
  systemctl start "${SERVICE}.timer"
  changed=1
fi

if report=$("${SCRIPT_FILE}" 2>&1); then health=healthy; else health="NOT healthy"; fi
printf '%s\n' "${report}"
if [[ "${changed}" == 0 ]]; then
  echo "${SERVICE}: unchanged (${WHAT} ${health}; metrics in ${METRICS_FILE})"
else
  echo "${SERVICE}: installed, timer active (${WHAT} ${health}; metrics in ${METRICS_FILE})"
fi
