#!/usr/bin/env bash
# platform-restore-drill: restore backups into scratch containers and check them, weekly.
# Usage: platform-restore-drill CONFIG [DATABASE [BACKUP]]
#   CONFIG    <paths.state>/backup/drill.conf (components/backups.py: drill_config)
#   DATABASE  one database (default: each backed-up database in turn)
#   BACKUP    that database's backup file name in daily/ or weekly/ (default: its latest good one)
#
# Per database: the backup's sha256 is verified first (the latest good one is the newest whose
# manifest, size and sha256 agree), then it is restored into a scratch container named
# <db>-drill (podman run --rm -d --network=none --memory=DRILL_MEMORY_MIB, on a throwaway data
# directory under SCRATCH_ROOT, never the database's own) and checked against the manifest's
# figures: MySQL databases and tables (and a query counting every row), PostgreSQL databases
# and tables (and the rows), Redis keys (between keys - expires and keys: a volatile key may
# have expired since). The scratch container and directory are removed whatever happened.
# Neo4j, Elasticsearch and Weaviate need a JVM or an engine far larger than a scratch limit on
# this host: their archives are verified (sha256, archive listing, the expected files) and
# reported "verified", not restored.
#
# One line per database on stdout; STATUS_FILE (JSON) and METRICS_FILE (Prometheus textfile
# collector) written atomically. Exit codes: 0 every drill passed; 1 one failed; 2 usage or
# configuration; 3 lock not taken; 8 a removal outside SCRATCH_ROOT refused.
# shellcheck disable=SC2154  # the configuration's variables are set by read_config
set -euo pipefail
shopt -s inherit_errexit
umask 077

NAME=platform-restore-drill
[[ $# -ge 1 && $# -le 3 ]] || die 2 "usage: platform-restore-drill CONFIG [DATABASE [BACKUP]]"
read_config "$1" CONFIG_DIR BACKUPS_ROOT SCRATCH_ROOT DRILL_MEMORY_MIB DRILL_START_TIMEOUT_S STATUS_FILE METRICS_FILE LOCK_FILE \
  LOCK_WAIT_S SCRATCH_MIN_MIB
only=${2:-}
named=${3:-}
# kind:MiB pairs, for the engines the drill restores (the others' archives are verified only).
declare -A scratch_min=()
read -ra pairs <<< "${SCRATCH_MIN_MIB}"
for pair in "${pairs[@]}"; do
  [[ "${pair}" == ?*:?* ]] || die 2 "SCRATCH_MIN_MIB: '${pair}' is not kind:MiB"
  scratch_min[${pair%%:*}]=${pair#*:}
done
for number in "${DRILL_MEMORY_MIB}" "${DRILL_START_TIMEOUT_S}" "${LOCK_WAIT_S}" "${scratch_min[@]}"; do
  [[ "${number}" =~ ^[0-9]+$ ]] || die 2 "not a number: '${number}'"
done
assert_under "${BACKUPS_ROOT}" "${SCRATCH_ROOT}"
[[ "${named}" != */* ]] || die 2 "BACKUP is a file name in the database's daily/ or weekly/, not a path"

configs=()
if [[ -n "${only}" ]]; then
  [[ -f "${CONFIG_DIR}/${only}.conf" ]] || die 2 "no backed-up database named '${only}' (no ${CONFIG_DIR}/${only}.conf)"
  configs=("${CONFIG_DIR}/${only}.conf")
else
  for conf in "${CONFIG_DIR}"/*.conf; do
    [[ -f "${conf}" ]] && configs+=("${conf}")
  done
fi
[[ "${#configs[@]}" -gt 0 ]] || die 2 "no database is backed up on this host (nothing in ${CONFIG_DIR})"

take_lock
printf -v started '%(%s)T' -1
mkdir -p "${STATUS_FILE%/*}" "${METRICS_FILE%/*}" "${SCRATCH_ROOT}"
results=$(mktemp -d "${STATUS_FILE%/*}/.drill-results.XXXXXX")
# shellcheck disable=SC2317,SC2329  # called by the trap
remove_results() { rm -rf -- "${results}"; }
trap remove_results EXIT

# --- one database (run in a subshell: its configuration and failure stay its own) ---------------

fail() {  # message
  error=$1
  exit 1
}

# shellcheck disable=SC2329  # called by the engines' drill_<kind> or verify_<kind> (components/engines/<kind>/backup.sh)
wait_ready() {  # what, command... : bounded by DRILL_START_TIMEOUT_S
  local what=$1 deadline=$((SECONDS + DRILL_START_TIMEOUT_S))
  shift
  until "$@" > /dev/null 2>&1; do
    [[ "${SECONDS}" -lt "${deadline}" ]] || fail "the scratch ${what} did not answer within ${DRILL_START_TIMEOUT_S}s"
    sleep 0.5
  done
}

# shellcheck disable=SC2329  # called by the engines' drill_<kind> or verify_<kind> (components/engines/<kind>/backup.sh)
start_scratch() {  # podman run options and arguments from the image on
  podman run -d --rm --name "${container}" --network=none "--memory=${DRILL_MEMORY_MIB}m" "--memory-swap=${DRILL_MEMORY_MIB}m" \
    -v "${scratch}/data:${DATA_PATH}:Z,U" "$@" > /dev/null || fail "the scratch container did not start"
}

# Compare found[$1] with expected[$1] (the manifest's figure); record both.
# shellcheck disable=SC2329  # called by the engines' drill_<kind> or verify_<kind> (components/engines/<kind>/backup.sh)
same() {  # figure
  local want="${expected[$1]:-}" got="${found[$1]:-}"
  figures+="${figures:+, }$1 ${got}/${want}"
  [[ -n "${want}" ]] || fail "the manifest has no $1 figure"
  [[ "${got}" == "${want}" ]] || fail "$1: ${got:-none} restored, ${want} in the backup"
}

verify_archive() {  # why it is not restored
  status=verified
  "verify_${KIND}" "$1"
}

# The archive is a tar holding an entry that matches $1.
# shellcheck disable=SC2329  # called by the engines' drill_<kind> or verify_<kind> (components/engines/<kind>/backup.sh)
verify_listing() {  # pattern, why it is not restored
  local listing
  listing=$(tar -tf "${file}") || fail "the archive cannot be read"
  grep -Eq "$1" <<< "${listing}" || fail "the archive holds no $1 entry"
  mapfile -t entries <<< "${listing}"
  figures="archive verified (${#entries[@]} entries); not restored: $2"
}

# shellcheck disable=SC2317,SC2329  # called by the trap
finish_database() {
  local code=$? seconds=${SECONDS} labels
  trap - EXIT
  set +e
  podman rm -f -i "${container}" > /dev/null 2>&1
  if [[ -d "${scratch}" ]]; then
    assert_under "${SCRATCH_ROOT}" "${scratch}"
    rm -rf -- "${scratch}"
  fi
  [[ "${code}" == 0 ]] || status=failed
  [[ "${code}" == 0 || -n "${error}" ]] || error="failed (exit ${code})"
  labels="database=\"${NAME}\",engine=\"${KIND}\""
  local j_name j_kind j_backup j_figures j_error restored=false passed=1 restored_metric=0
  to_json j_name "${NAME}"
  to_json j_kind "${KIND}"
  to_json j_backup "${backup}"
  to_json j_figures "${figures}"
  to_json j_error "${error}"
  [[ "${status}" != ok ]] || restored=true restored_metric=1
  [[ "${status}" != failed ]] || passed=0
  printf '%s' "    {
      \"database\": ${j_name},
      \"engine\": ${j_kind},
      \"status\": \"${status}\",
      \"backup\": ${j_backup},
      \"restored\": ${restored},
      \"figures\": ${j_figures},
      \"seconds\": ${seconds},
      \"error\": ${j_error}
    }" > "${results}/${index}.json"
  printf '%s\n' \
    "platform_restore_drill_success{${labels}} ${passed}" \
    "platform_restore_drill_restored{${labels}} ${restored_metric}" \
    "platform_restore_drill_duration_seconds{${labels}} ${seconds}" > "${results}/${index}.prom"
  if [[ "${status}" == failed ]]; then
    echo "${NAME}: FAILED ${backup:-(no backup)}: ${error} (${seconds}s)"
  else
    echo "${NAME}: ${status} ${backup}: ${figures} (${seconds}s)"
  fi
  exit "${code}"
}

drill_database() {  # config
  declare -gA expected=() found=()
  status=ok error="" backup="" figures="" container="" scratch=""
  read_config "$1" "${DATABASE_KEYS[@]}"
  container="${NAME}-drill"
  scratch="${SCRATCH_ROOT}/${NAME}"
  trap finish_database EXIT
  known_engine "${KIND}" || fail "unknown engine '${KIND}'"
  local dir base key
  if [[ -n "${named}" ]]; then
    base="${NAME}-$(stamp_of "${named}")"
    [[ "${base}" != "${NAME}-" ]] || fail "${named} is not a backup of ${NAME}"
    dir="${BACKUP_DIR}/daily"
    [[ -f "${dir}/${base}.json" ]] || dir="${BACKUP_DIR}/weekly"
    # shellcheck disable=SC2310  # backup_good answers with its status
    backup_good "${dir}" "${base}" || fail "${named}: ${why}"
  else
    dir="${BACKUP_DIR}/daily"
    base=$(newest_good "${dir}")
    if [[ -z "${base}" ]]; then
      dir="${BACKUP_DIR}/weekly"
      base=$(newest_good "${dir}")
    fi
    [[ -n "${base}" ]] || fail "no good backup in ${BACKUP_DIR}"
  fi
  read_manifest "${dir}/${base}.json"
  backup=${manifest[file]}
  file="${dir}/${backup}"
  for key in databases tables keys expires; do
    expected[${key}]=${manifest[${key}]:-}
  done
  assert_under "${SCRATCH_ROOT}" "${scratch}"
  podman rm -f -i "${container}" > /dev/null 2>&1 || true  # a drill cut short left it
  rm -rf -- "${scratch}"
  mkdir -p "${scratch}/data"
  chmod 700 "${scratch}" "${scratch}/data"
  local least=${scratch_min[${KIND}]:-}
  if [[ -z "${least}" ]]; then
    verify_archive "${KIND} needs a JVM or an engine far larger than a scratch limit"
  elif [[ "${DRILL_MEMORY_MIB}" -lt "${least}" ]]; then
    verify_archive "a scratch ${KIND} needs ${least} MiB, drillMemoryMib is ${DRILL_MEMORY_MIB}"
  else
    "drill_${KIND}"
  fi
}

# --- every database, then the report ------------------------------------------------------------

failed=0
index=0
for conf in "${configs[@]}"; do
  index=$((index + 1))
  set +e
  (
    set -e
    drill_database "${conf}"
  )
  code=$?
  set -e
  [[ "${code}" == 0 ]] || failed=1
done

printf -v finished '%(%s)T' -1
last_success=0
read_manifest "${STATUS_FILE}"
previous=${manifest[lastSuccess]:-}
[[ ! "${previous}" =~ ^[0-9]+$ ]] || last_success=${previous}
overall=failed
if [[ "${failed}" == 0 ]]; then overall=ok last_success=${finished}; fi
records=""
samples=""
for ((i = 1; i <= index; i++)); do
  [[ ! -f "${results}/${i}.json" ]] || records+="${records:+,$'\n'}$(< "${results}/${i}.json")"
  [[ ! -f "${results}/${i}.prom" ]] || samples+="$(< "${results}/${i}.prom")"$'\n'
done
iso_time started_at "${started}"
iso_time finished_at "${finished}"
write_atomically "${STATUS_FILE}" "{
  \"status\": \"${overall}\",
  \"started\": \"${started_at}\",
  \"finished\": \"${finished_at}\",
  \"lastSuccess\": ${last_success},
  \"databases\": [
${records}
  ]
}
" 644
# Each metric's HELP and TYPE, then its samples together.
metrics=""
family() {  # name help [sample...]
  local name=$1 line
  metrics+="# HELP ${name} $2"$'\n'"# TYPE ${name} gauge"$'\n'
  shift 2
  for line in "$@"; do metrics+="${line}"$'\n'; done
  while IFS= read -r line; do
    [[ "${line}" != "${name}{"* ]] || metrics+="${line}"$'\n'
  done <<< "${samples}"
}
family platform_restore_drill_last_run_timestamp_seconds "When the restore drill last ran." \
  "platform_restore_drill_last_run_timestamp_seconds ${finished}"
family platform_restore_drill_last_success_timestamp_seconds "When every database last passed the drill." \
  "platform_restore_drill_last_success_timestamp_seconds ${last_success}"
family platform_restore_drill_success \
  "Whether the database's last drill passed (restored and checked, or its archive verified)."
family platform_restore_drill_restored "Whether the last drill restored the backup and checked it (1) or not (0)."
family platform_restore_drill_duration_seconds "How long the database's last drill took."
write_atomically "${METRICS_FILE}" "${metrics}" 644
exit "${failed}"
