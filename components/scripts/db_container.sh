#!/usr/bin/env bash
# One database container as a Quadlet unit: its secret (from stdin, kept in a 0600 file and
# made into the Podman secret the unit refers to), its unit, and a restart only when one
# of them changed. The data directory is bind-mounted and never removed here, so an update
# keeps the data. Running it again with nothing changed writes nothing (not even a temporary
# file), restarts nothing and says "unchanged".
#
# A run cut short is completed by the next one. A new password goes into the Podman secret
# before the file, so a file that holds it means the Podman secret does too. STATE_DIR/healthy/
# NAME.container is the unit that last passed the health check: until the plan's unit has,
# the service is restarted, and an update that fails (daemon-reload, restart or the health
# check) goes back to that unit. A Podman secret that cannot be replaced leaves the database
# running on its previous password.
# Parameters: NAME, IMAGE, UNIT_FILE, UNIT_CONTENT, SECRET_FILE, DATA_DIR, PORTS, STATE_DIR,
# HEALTH_TIMEOUT.
# Stops: ${NAME}.service (while a new password replaces its Podman secret ${NAME})
# Removes: ${SECRET_FILE}.pending, ${STATE_DIR}/ports/*
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail
umask 077

# The secret arrives on stdin only. It stays in this shell's memory (a variable that is never
# exported, never an argument of a command) until it is written to its 0600 file.
secret=""
IFS= read -r -d '' secret || true
if [[ -z "${secret}" ]]; then
  echo "${NAME}: no secret on stdin; refusing to install an empty ${SECRET_FILE}" >&2
  exit 2
fi

pending="${SECRET_FILE}.pending"  # a new password, until the Podman secret holds it
healthy_unit="${STATE_DIR}/healthy/${NAME}.container"
read -ra published < <(printf '%s\n' "${PORTS}")  # read splits without pathname expansion
action=unchanged
failure=""
health=""

# Whether file $1 holds exactly $2 (compared through a pipe: no temporary file).
holds() {
  [[ -f "$1" ]] && cmp -s "$1" <(printf '%s' "$2")
}

# Install content $2 at $1 with mode $3 through a temporary file beside it.
install_content() {  # path content mode
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  printf '%s' "$2" > "${tmp}"
  chmod "$3" "${tmp}"
  mv -f "${tmp}" "$1"
}

ensure_mode() {  # path mode
  local mode
  mode=$(stat -c %a "$1")
  [[ "${mode}" == "$2" ]] || chmod "$2" "$1"
}

# The Podman secret is made from a file (its path is the argument, never the value).
replace_podman_secret() {  # file
  if podman secret inspect "${NAME}" >/dev/null 2>&1; then
    podman secret rm "${NAME}" >/dev/null || return 1
  fi
  podman secret create "${NAME}" "$1" >/dev/null
}

# Bounded wait for the engine's own health check: at least HEALTH_TIMEOUT seconds (SECONDS
# counts whole seconds, hence "greater than"). Leaves the last check's output in $health.
healthy_within() {  # seconds
  local deadline=$((SECONDS + $1))
  until health=$(podman healthcheck run "${NAME}" 2>&1); do
    [[ "${SECONDS}" -le "${deadline}" ]] || return 1
    sleep 2
  done
}

for dir in "${SECRET_FILE%/*}" "${UNIT_FILE%/*}" "${DATA_DIR}" "${STATE_DIR}/ports" "${healthy_unit%/*}"; do
  [[ -d "${dir}" ]] || mkdir -p "${dir}"
done
# A rotation cut short left its new password here; it comes again from stdin.
[[ ! -e "${pending}" ]] || rm -f -- "${pending}"

# A host provisioned before the healthy unit was kept: the unit running and answering now is it.
if [[ ! -f "${healthy_unit}" && -f "${UNIT_FILE}" ]] && systemctl is-active --quiet "${NAME}.service" \
  && podman healthcheck run "${NAME}" >/dev/null 2>&1; then
  cp -p "${UNIT_FILE}" "${healthy_unit}"
fi

# The file changes last: once it holds this password, the Podman secret holds it too.
# shellcheck disable=SC2310  # holds answers with its status
if ! holds "${SECRET_FILE}" "${secret}" || ! podman secret inspect "${NAME}" >/dev/null 2>&1; then
  printf '%s' "${secret}" > "${pending}"  # 0600 by the umask
  was_active=0
  if systemctl is-active --quiet "${NAME}.service"; then
    was_active=1
    systemctl stop "${NAME}.service"  # a new password replaces the secret while the engine is down
  fi
  # shellcheck disable=SC2310  # a failure is answered below, not left to set -e
  if ! replace_podman_secret "${pending}"; then
    rm -f -- "${pending}"
    # The file still holds the password the engine runs with: its Podman secret comes back from it.
    if [[ -f "${SECRET_FILE}" ]] && ! podman secret inspect "${NAME}" >/dev/null 2>&1; then
      podman secret create "${NAME}" "${SECRET_FILE}" >/dev/null || true
    fi
    [[ "${was_active}" == 0 ]] || systemctl start "${NAME}.service" || true
    echo "${NAME}: could not replace its Podman secret; it keeps its previous password" >&2
    exit 5
  fi
  mv -f "${pending}" "${SECRET_FILE}"
  action=updated
fi
ensure_mode "${SECRET_FILE}" 600
# shellcheck disable=SC2310  # holds answers with its status
if ! holds "${UNIT_FILE}" "${UNIT_CONTENT}"; then install_content "${UNIT_FILE}" "${UNIT_CONTENT}" 644; fi
ensure_mode "${UNIT_FILE}" 644

# The plan owns these ports from now on: a later host check must not take them for a stranger's.
# Each marker names its workload, so retiring it (db_retire.sh) removes exactly its own; a
# port this database no longer publishes is released.
for marker in "${STATE_DIR}"/ports/*; do
  [[ -f "${marker}" ]] || continue
  owner=$(< "${marker}")
  if [[ "${owner}" == "${NAME}" && " ${PORTS} " != *" ${marker##*/} "* ]]; then rm -f -- "${marker}"; fi
done
for port in "${published[@]}"; do
  owner=$(cat "${STATE_DIR}/ports/${port}" 2>/dev/null || true)
  [[ "${owner}" == "${NAME}" ]] || printf '%s\n' "${NAME}" > "${STATE_DIR}/ports/${port}"
done

# The service runs the plan's unit only once that unit passed the health check: until then (a
# new unit or password, or a run cut short before its restart) it is restarted. Each step returns
# its failure rather than exiting, so that any failure goes back to the healthy unit below.
# shellcheck disable=SC2310  # every step's status is taken here, none is left to set -e
go_live() {
  if [[ "${action}" == updated ]] || ! holds "${healthy_unit}" "${UNIT_CONTENT}"; then
    action=updated
    # Quadlet generates $NAME.service from the .container file on daemon-reload.
    systemctl daemon-reload || { failure="systemctl daemon-reload failed"; return 1; }
    systemctl restart "${NAME}.service" || { failure="systemctl restart ${NAME}.service failed"; return 1; }
  elif ! systemctl is-active --quiet "${NAME}.service"; then
    action=started
    systemctl start "${NAME}.service" || { failure="systemctl start ${NAME}.service failed"; return 1; }
  fi
  if ! healthy_within "${HEALTH_TIMEOUT}"; then
    failure="not healthy after ${HEALTH_TIMEOUT}s (${IMAGE}): ${health:-no output}"
    return 1
  fi
}

# shellcheck disable=SC2310  # go_live returns each step's failure, for the rollback below
if go_live; then
  if ! holds "${healthy_unit}" "${UNIT_CONTENT}"; then install_content "${healthy_unit}" "${UNIT_CONTENT}" 644; fi
  echo "${NAME}: ${action}, healthy"
  exit 0
fi
echo "${NAME}: ${failure}" >&2
# An update (a new image, limit or setting) that breaks the engine goes back to the unit that
# worked; the data directory was never touched. A new password cannot be taken back here.
# shellcheck disable=SC2310  # holds and healthy_within answer with their status
if [[ -f "${healthy_unit}" ]] && ! holds "${healthy_unit}" "${UNIT_CONTENT}"; then
  previous_unit=$(cat "${healthy_unit}"; printf x)  # the x keeps trailing newlines through $(...)
  install_content "${UNIT_FILE}" "${previous_unit%x}" 644
  systemctl daemon-reload || true
  systemctl restart "${NAME}.service" || true
  if healthy_within "${HEALTH_TIMEOUT}"; then
    echo "${NAME}: rolled back to the previous unit, healthy" >&2
  else
    echo "${NAME}: rolled back to the previous unit, still not healthy: ${health:-no output}" >&2
  fi
fi
exit 5
