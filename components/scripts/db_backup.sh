#!/usr/bin/env bash
# Installs a scheduled backup program: a database's backup (platform-backup) or the restore drill
# (platform-restore-drill). Writes the program, its configuration (0600), UNIT.service and
# UNIT.timer (OnCalendar=SCHEDULE, RandomizedDelaySec, Persistent=true), reloads systemd when a
# unit changed and keeps the timer enabled and running. Each file is compared first and written
# only when it differs (through a temporary file beside it); with nothing to change the run writes
# nothing, restarts nothing and says "unchanged". It never runs a backup and never removes one.
# The programs read the database's password from its 0600 secret file when they run, so no
# secret reaches this script.
# The drill's install also takes down the backup timer and configuration of each database in
# STOP_BACKUPS (retired, or now `backup: none`); their backups stay where they are.
# Parameters: NAME, PROGRAM_FILE, PROGRAM_CONTENT, CONFIG_FILE, CONFIG_CONTENT, UNITS_DIR, UNIT,
# SERVICE_CONTENT, TIMER_CONTENT, SCHEDULE, DIRS, METRICS_DIR, BACKUPS_ROOT, OFF_HOST_URL, OSSUTIL,
# STOP_BACKUPS, CONFIG_DIR.
# Stops: platform-backup-<database>.timer of each database in ${STOP_BACKUPS}
# Removes: ${UNITS_DIR}/*, ${CONFIG_DIR}/*
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail
umask 077

service="${UNITS_DIR}/${UNIT}.service"
timer="${UNITS_DIR}/${UNIT}.timer"
action=unchanged
units_changed=0

# An off-host target needs its CLI on the host: refuse now rather than fail every night.
if [[ -n "${OFF_HOST_URL}" ]] && ! command -v "${OSSUTIL}" > /dev/null 2>&1; then
  echo "${NAME}: backups are copied to ${OFF_HOST_URL}, but ${OSSUTIL} is not installed on this host;" \
    "install Alibaba Cloud's ossutil (1.7 or newer) on its PATH, or set platform:backups.offHost to null" >&2
  exit 3
fi

# Whether file $1 holds exactly $2 (compared through a pipe: no temporary file).
holds() {
  [[ -f "$1" ]] && cmp -s "$1" <(printf '%s' "$2")
}

# Install content $2 at $1 with mode $3 through a temporary file beside it, when it differs.
converge() {  # path content mode
  local tmp mode
  # shellcheck disable=SC2310  # holds answers with its status
  if ! holds "$1" "$2"; then
    tmp=$(mktemp "$1.XXXXXX")
    printf '%s' "$2" > "${tmp}"
    chmod "$3" "${tmp}"
    mv -f -- "${tmp}" "$1"
    action=updated
    return 0
  fi
  mode=$(stat -c %a "$1")
  [[ "${mode}" == "$3" ]] || { chmod "$3" "$1"; action=updated; }
  return 1
}

ensure_dir() {  # path mode
  if [[ ! -d "$1" ]]; then
    mkdir -p "$1"
    action=updated
  fi
  local mode
  mode=$(stat -c %a "$1")
  [[ "${mode}" == "$2" ]] || chmod "$2" "$1"
}

read -ra backup_dirs < <(printf '%s\n' "${DIRS}")  # read splits without pathname expansion
ensure_dir "${PROGRAM_FILE%/*}" 755
ensure_dir "${CONFIG_FILE%/*}" 700
ensure_dir "${BACKUPS_ROOT}" 700
for dir in "${backup_dirs[@]}"; do ensure_dir "${dir}" 700; done
ensure_dir "${METRICS_DIR}" 755  # the node exporter's textfile collector reads it
ensure_dir "${UNITS_DIR}" 755

# shellcheck disable=SC2310  # converge answers whether it wrote; only the units' answer matters
{
  converge "${PROGRAM_FILE}" "${PROGRAM_CONTENT}" 755 || true
  converge "${CONFIG_FILE}" "${CONFIG_CONTENT}" 600 || true
}
# shellcheck disable=SC2310  # converge answers whether it wrote
if converge "${service}" "${SERVICE_CONTENT}" 644; then units_changed=1; fi
# shellcheck disable=SC2310  # converge answers whether it wrote
if converge "${timer}" "${TIMER_CONTENT}" 644; then units_changed=1; fi

if [[ "${units_changed}" == 1 ]]; then
  systemctl daemon-reload
fi
if ! systemctl is-enabled --quiet "${UNIT}.timer"; then
  systemctl enable --quiet "${UNIT}.timer"
  action=updated
fi
if ! systemctl is-active --quiet "${UNIT}.timer"; then
  systemctl start "${UNIT}.timer"
  action=updated
elif [[ "${units_changed}" == 1 ]]; then
  systemctl restart "${UNIT}.timer"  # a new schedule takes effect now
fi
echo "${NAME}: ${action}, ${UNIT}.timer on ${SCHEDULE}"

read -ra stopping < <(printf '%s\n' "${STOP_BACKUPS}")  # read splits without pathname expansion
for database in "${stopping[@]}"; do
  stopped="${UNITS_DIR}/platform-backup-${database}.timer"
  [[ -f "${stopped}" ]] || continue
  systemctl stop "platform-backup-${database}.timer"
  systemctl disable --quiet "platform-backup-${database}.timer"
  rm -f -- "${stopped}" "${UNITS_DIR}/platform-backup-${database}.service" "${CONFIG_DIR}/${database}.conf"
  systemctl daemon-reload
  echo "${database}: no longer backed up; its timer is removed, its backups kept in ${BACKUPS_ROOT}/${database}"
done
