#!/usr/bin/env bash
# platform-backup: one database's logical backup, run by platform-backup-<db>.timer.
# Usage: platform-backup CONFIG   (CONFIG: <paths.state>/backup/db/<db>.conf, see components/backups.py)
#
# The engine's own tool runs inside the database's container (podman exec), so it is bounded by
# the container's memory limit, not the host's; what runs here (bash, gzip, tar, sha256sum,
# ossutil) is bounded by the service's MemoryMax. How each tool bounds its memory:
#   mysql     mysqldump --single-transaction --quick: one consistent read, rows streamed one at a
#             time (client memory: the largest row plus its net buffer); gzip runs on the host.
#   postgres  pg_dump -Fc per database, pg_dumpall --globals-only: COPY streams the rows; pg_dump
#             holds the catalog (schema size, not data size) and one zlib stream.
#   redis     BGSAVE forks redis-server inside the container: pages written during the save are
#             copied (copy-on-write) within the container's cgroup, on top of maxmemory (75% of
#             the limit): a write-heavy save can reach the limit. redis-check-rdb (key counts)
#             reads one key at a time.
#   neo4j     neo4j-admin database dump needs the database stopped: the service is stopped for
#             the dump (a maintenance window of the dump's length, started again even when the
#             dump fails) and the dump runs in a one-off container with the database's own
#             limit (its memory is free while it is stopped), heap HEAP_MIB.
#   elasticsearch  the snapshot API: the node copies its segments to path.repo itself.
#   weaviate  the backup-filesystem module: the node writes its backup itself.
# Passwords: read from the host's 0600 SECRET_FILE into this shell's memory and handed to the
# tool on a pipe (a MySQL option file or curl config on stdin, Redis AUTH as the first command on
# stdin); never an argument, an environment variable or a temporary file. PostgreSQL connects on
# the container's local socket, which the image trusts.
#
# Each backup: <BACKUP_DIR>/daily/<db>-<UTC stamp>.<ext> and its manifest <...>.json (engine,
# database, file, size, sha256, start and end, tool version, check figures), written under a
# temporary name and renamed. The first good backup of an ISO week is hard-linked into weekly/.
# Pruning keeps the KEEP_DAILY newest good backups in daily/ and KEEP_WEEKLY in weekly/; a backup
# that is not good (no valid manifest, wrong size or sha256) never counts, so the newest good one
# is never deleted. With OFF_HOST_URL, file and manifest are copied with ossutil as the instance's
# RAM role (a failed copy fails the run). Results: STATUS_FILE (JSON) and METRICS_FILE
# (Prometheus textfile collector), both written atomically.
#
# Exit codes: 0 done; 2 usage, configuration or unknown engine; 3 lock not taken; 4 ossutil
# missing (the local backup is still made); 5 the backup failed; 6 the off-host copy failed;
# 8 a removal outside BACKUP_DIR refused.
# For tests only: BACKUP_NOW (epoch seconds) stands in for the clock in the backup's name, its
# ISO week and the reported times, so retention can be run across simulated days.
# shellcheck disable=SC2154  # the configuration's variables are set by read_config
set -euo pipefail
shopt -s inherit_errexit
umask 077

NAME=platform-backup
[[ $# -eq 1 ]] || die 2 "usage: platform-backup CONFIG"
read_config "$1" "${DATABASE_KEYS[@]}"
engines=$(engine_names)
known_engine "${KIND}" || die 2 "unknown engine '${KIND}' (${engines})"
ext=${BACKUP_EXT[${KIND}]}
for number in "${KEEP_DAILY}" "${KEEP_WEEKLY}" "${LOCK_WAIT_S}" "${SAVE_TIMEOUT_S}" "${BACKUP_NOW:-0}"; do
  [[ "${number}" =~ ^[0-9]+$ ]] || die 2 "not a number: '${number}'"
done
[[ "${KEEP_DAILY}" -ge 1 ]] || die 2 "KEEP_DAILY must be at least 1"
assert_under "${BACKUPS_ROOT}" "${BACKUP_DIR}"

if [[ -n "${BACKUP_NOW:-}" ]]; then now=${BACKUP_NOW}; else printf -v now '%(%s)T' -1; fi
printf -v stamp '%(%Y%m%dT%H%M%SZ)T' "${now}"
printf -v week '%(%G-W%V)T' "${now}"
iso_time started "${now}"
daily="${BACKUP_DIR}/daily"
weekly="${BACKUP_DIR}/weekly"
error=""
off_host=disabled
result=""
size=0
tmp=""
work=""

# The number of backups in directory $2, into $1.
count_backups() {  # variable dir
  local list
  list=$(backups_in "$2")
  if [[ -z "${list}" ]]; then
    printf -v "$1" 0
  else
    mapfile -t list_lines <<< "${list}"
    printf -v "$1" '%s' "${#list_lines[@]}"
  fi
}

# The status file and metrics of this run; called once, on exit.
report() {  # exit code
  local code=$1 status=failed ok=0 last_success=0 finished finished_at previous kept_daily kept_weekly
  local j_name j_kind j_file j_error labels="database=\"${NAME}\",engine=\"${KIND}\""
  finished=$((now + SECONDS))
  iso_time finished_at "${finished}"
  read_manifest "${STATUS_FILE}"
  previous=${manifest[lastSuccess]:-}
  [[ ! "${previous}" =~ ^[0-9]+$ ]] || last_success=${previous}
  if [[ "${code}" == 0 ]]; then
    status=ok ok=1 last_success=${finished}
  elif [[ -z "${error}" ]]; then
    error="failed (exit ${code}) at line ${failed_line:-?}"
  fi
  to_json j_name "${NAME}"
  to_json j_kind "${KIND}"
  to_json j_file "${result}"
  to_json j_error "${error}"
  count_backups kept_daily "${daily}"
  count_backups kept_weekly "${weekly}"
  mkdir -p "${STATUS_FILE%/*}" "${METRICS_FILE%/*}"
  write_atomically "${STATUS_FILE}" "{
  \"database\": ${j_name},
  \"engine\": ${j_kind},
  \"status\": \"${status}\",
  \"exitCode\": ${code},
  \"started\": \"${started}\",
  \"finished\": \"${finished_at}\",
  \"file\": ${j_file},
  \"size\": ${size},
  \"offHost\": \"${off_host}\",
  \"error\": ${j_error},
  \"lastSuccess\": ${last_success}
}
" 644
  write_atomically "${METRICS_FILE}" "# HELP platform_backup_last_success_timestamp_seconds When the database's last backup (and its off-host copy) succeeded.
# TYPE platform_backup_last_success_timestamp_seconds gauge
platform_backup_last_success_timestamp_seconds{${labels}} ${last_success}
# HELP platform_backup_last_run_timestamp_seconds When the last backup run ended.
# TYPE platform_backup_last_run_timestamp_seconds gauge
platform_backup_last_run_timestamp_seconds{${labels}} ${finished}
# HELP platform_backup_last_run_success Whether the last backup run succeeded (1) or failed (0).
# TYPE platform_backup_last_run_success gauge
platform_backup_last_run_success{${labels}} ${ok}
# HELP platform_backup_size_bytes Size of the last backup written.
# TYPE platform_backup_size_bytes gauge
platform_backup_size_bytes{${labels}} ${size}
# HELP platform_backup_duration_seconds How long the last backup run took.
# TYPE platform_backup_duration_seconds gauge
platform_backup_duration_seconds{${labels}} ${SECONDS}
# HELP platform_backup_kept Backups kept on the host.
# TYPE platform_backup_kept gauge
platform_backup_kept{${labels},set=\"daily\"} ${kept_daily}
platform_backup_kept{${labels},set=\"weekly\"} ${kept_weekly}
" 644
}

# shellcheck disable=SC2317,SC2329  # called by the traps
on_exit() {
  local code=$?
  trap - EXIT
  set +e
  if [[ -n "${tmp}" && -e "${tmp}" ]]; then rm -f -- "${tmp}"; fi
  if [[ -n "${work}" && -d "${work}" ]]; then
    assert_under "${BACKUP_DIR}" "${work}"
    rm -rf -- "${work}"
  fi
  report "${code}"
  [[ "${code}" == 0 ]] || echo "${NAME}: backup failed (exit ${code})" >&2
  exit "${code}"
}
failed_line=""
trap 'failed_line=${LINENO}' ERR
trap on_exit EXIT

fail() {  # exit code, message (printed too: a failure inside $(...) still reaches the journal)
  error=$2
  echo "${NAME}: $2" >&2
  exit "$1"
}

take_lock
mkdir -p "${daily}" "${weekly}"
chmod 700 "${BACKUP_DIR}" "${daily}" "${weekly}"
# What a run that was cut short left behind.
for stale in "${daily}"/.tmp-*; do
  [[ -e "${stale}" ]] || continue
  assert_under "${BACKUP_DIR}" "${stale}"
  rm -rf -- "${stale}"
done

ossutil_missing=0
if [[ -n "${OFF_HOST_URL}" ]] && ! command -v "${OSSUTIL}" > /dev/null 2>&1; then
  ossutil_missing=1
  echo "${NAME}: ${OSSUTIL} is not installed: the off-host copy to ${OFF_HOST_URL} cannot run (making the local backup only)" >&2
fi

base="${NAME}-${stamp}"
n=1
while compgen -G "${daily}/${base}.*" > /dev/null; do
  n=$((n + 1))
  base="${NAME}-${stamp}-${n}"
done
tmp="${daily}/.tmp-${base}.${ext}"
declare -A checks=()
tool=""

# --- what the engines' backup_<kind> functions share (components/engines/<kind>/backup.sh) ------------

# $1 := the secret file's value, escaped for a double-quoted curl config value.
secret_escaped() {  # variable
  local value
  value=$(< "${SECRET_FILE}")
  value=${value//\\/\\\\}
  printf -v "$1" '%s' "${value//\"/\\\"}"
}

# $1 := the host path of container path $2, inside the data volume.
in_volume() {  # variable path
  [[ "$2" == "${DATA_PATH}"/?* ]] || fail 2 "$2 is not inside the data volume ${DATA_PATH}"
  printf -v "$1" '%s' "${DATA_DIR}${2#"${DATA_PATH}"}"
}

# --- the backup ---------------------------------------------------------------------------------

"backup_${KIND}"
[[ -s "${tmp}" ]] || fail 5 "the ${KIND} backup is empty"
size=$(stat -c %s -- "${tmp}")
sha=$(sha256_of "${tmp}")
file="${base}.${ext}"
mv -f -- "${tmp}" "${daily}/${file}"
tmp=""
check_lines=""
keys=$(printf '%s\n' "${!checks[@]}" | sort)
while IFS= read -r key; do
  [[ -n "${key}" && "${checks[${key}]}" =~ ^[0-9]+$ ]] || continue
  check_lines+="${check_lines:+,$'\n'}    \"${key}\": ${checks[${key}]}"
done <<< "${keys}"
to_json j_kind "${KIND}"
to_json j_name "${NAME}"
to_json j_file "${file}"
to_json j_tool "${tool%%$'\n'*}"
iso_time finished_at "$((now + SECONDS))"
write_atomically "${daily}/${base}.json" "{
  \"format\": 1,
  \"engine\": ${j_kind},
  \"database\": ${j_name},
  \"file\": ${j_file},
  \"size\": ${size},
  \"sha256\": \"${sha}\",
  \"started\": \"${started}\",
  \"finished\": \"${finished_at}\",
  \"durationSeconds\": ${SECONDS},
  \"week\": \"${week}\",
  \"tool\": ${j_tool},
  \"checks\": {
${check_lines}
  }
}
" 600
result=${file}
echo "${NAME}: ${file} (${size} bytes, sha256 ${sha})"

# --- retention ----------------------------------------------------------------------------------

# The week's first good backup is kept as its weekly one.
promoted=0
if [[ "${KEEP_WEEKLY}" -gt 0 ]]; then
  have_week=0
  for kept in "${weekly}"/*.json; do
    [[ -f "${kept}" ]] || continue
    read_manifest "${kept}"
    [[ "${manifest[week]:-}" != "${week}" ]] || have_week=1
  done
  if [[ "${have_week}" == 0 ]]; then
    ln -f -- "${daily}/${file}" "${weekly}/${file}"
    ln -f -- "${daily}/${base}.json" "${weekly}/${base}.json"
    promoted=1
  fi
fi

# Keep the $2 newest good backups of $1. A backup that is not good never counts; it is removed
# only once enough good ones newer than it are kept (it is the evidence of a failure until then).
prune() {  # dir keep
  local dir=$1 keep=$2 kept=0 candidate doomed candidates
  candidates=$(backups_in "${dir}")
  while IFS= read -r candidate; do
    [[ -n "${candidate}" ]] || continue
    # shellcheck disable=SC2310  # backup_good answers with its status
    if [[ "${kept}" -lt "${keep}" ]]; then
      if backup_good "${dir}" "${candidate}"; then
        kept=$((kept + 1))
      else
        echo "${NAME}: ${dir##*/}/${candidate} is not a good backup (${why}); it does not count" >&2
      fi
      continue
    fi
    for doomed in "${dir}/${candidate}".*; do
      [[ -e "${doomed}" ]] || continue
      assert_under "${BACKUP_DIR}" "${doomed}"
      rm -f -- "${doomed}"
    done
    echo "${NAME}: pruned ${dir##*/}/${candidate}"
  done <<< "${candidates}"
}
prune "${daily}" "${KEEP_DAILY}"
prune "${weekly}" "${KEEP_WEEKLY}"

# --- the off-host copy --------------------------------------------------------------------------

if [[ "${ossutil_missing}" == 1 ]]; then
  off_host=missing
  fail 4 "${OSSUTIL} is not installed: the off-host copy to ${OFF_HOST_URL} did not run"
fi
upload() {  # file set
  local output
  if ! output=$("${OSSUTIL}" cp -f "$1" "${OFF_HOST_URL}$2/${NAME}/${1##*/}" --mode EcsRamRole \
    --ecs-role-name "${OFF_HOST_RAM_ROLE}" -e "${OFF_HOST_ENDPOINT}" 2>&1); then
    off_host=failed
    fail 6 "off-host copy of ${1##*/} to ${OFF_HOST_URL}$2/${NAME}/ failed: ${output:0:300}"
  fi
}
if [[ -n "${OFF_HOST_URL}" ]]; then
  off_host=copying
  upload "${daily}/${file}" daily
  upload "${daily}/${base}.json" daily  # the manifest last: its presence means the copy is whole
  if [[ "${promoted}" == 1 ]]; then
    upload "${weekly}/${file}" weekly
    upload "${weekly}/${base}.json" weekly
  fi
  off_host=copied
  also=""
  [[ "${promoted}" == 0 ]] || also=" and weekly/${NAME}/"
  echo "${NAME}: copied to ${OFF_HOST_URL}daily/${NAME}/${also}"
fi
