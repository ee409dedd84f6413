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
case "${KIND}" in
  mysql) ext=sql.gz ;;
  postgres | neo4j | elasticsearch | weaviate) ext=tar ;;
  redis) ext=rdb ;;
  *) die 2 "unknown engine '${KIND}' (mysql, postgres, redis, neo4j, elasticsearch or weaviate)" ;;
esac
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

# --- MySQL / MariaDB ----------------------------------------------------------------------------

mysql_credentials() {
  local password
  password=$(< "${SECRET_FILE}")
  password=${password//\\/\\\\}
  password=${password//\"/\\\"}
  printf '[client]\nuser=%s\npassword="%s"\n' "${DB_USER}" "${password}"
}

# The tool with the credentials as its option file on stdin.
mysql_tool() {  # tool args...
  mysql_credentials | podman exec -i "${NAME}" sh -c "${MYSQL_TOOL}" sh "$@"
}

backup_mysql() {
  local figures
  tool=$(podman exec "${NAME}" sh -c "${MYSQL_TOOL}" sh mysqldump --version)
  # Every database, the accounts (mysql) included; the server's help tables are its own, not data.
  mysql_tool mysqldump --defaults-extra-file=/dev/stdin --single-transaction --quick --routines --events --triggers \
    --hex-blob --flush-privileges --default-character-set=utf8mb4 --ignore-table=mysql.help_topic \
    --ignore-table=mysql.help_category --ignore-table=mysql.help_relation --ignore-table=mysql.help_keyword \
    --all-databases | gzip -c > "${tmp}"
  figures=$(mysql_tool mysql --defaults-extra-file=/dev/stdin -N -B -e "SELECT
    (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name NOT IN (${SYSTEM_SCHEMAS})),
    (SELECT COUNT(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE'
      AND table_schema NOT IN (${SYSTEM_SCHEMAS}))")
  read -r "checks[databases]" "checks[tables]" <<< "${figures}"
}

# --- PostgreSQL ---------------------------------------------------------------------------------

psql_in() {  # database sql
  podman exec "${NAME}" psql -X -q -At -v ON_ERROR_STOP=1 -U "${DB_USER}" -d "$1" -c "$2"
}

backup_postgres() {
  local databases database index=0 tables=0 count
  tool=$(podman exec "${NAME}" pg_dump --version)
  databases=$(psql_in postgres "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
  work="${daily}/.tmp-${base}.d"
  mkdir -m 700 "${work}"
  podman exec "${NAME}" pg_dumpall -U "${DB_USER}" --globals-only > "${work}/globals.sql"
  : > "${work}/databases"
  while IFS= read -r database; do
    [[ -n "${database}" ]] || continue
    index=$((index + 1))
    printf '%s\n' "${database}" >> "${work}/databases"
    podman exec "${NAME}" pg_dump -U "${DB_USER}" -Fc -d "${database}" > "${work}/${index}.dump"
    count=$(psql_in "${database}" "${PG_TABLES}")
    tables=$((tables + count))
  done <<< "${databases}"
  [[ "${index}" -gt 0 ]] || fail 5 "no database to dump"
  tar -cf "${tmp}" -C "${work}" .
  checks[databases]=${index}
  checks[tables]=${tables}
}

# --- Redis --------------------------------------------------------------------------------------

# Commands (one per argument) to redis-cli, after AUTH with the password from the secret file
# (its "requirepass <value>" line, whose quoting redis-cli reads like the server does).
redis_query() {  # command...
  local line
  line=$(< "${SECRET_FILE}")
  line=${line%%$'\n'*}
  [[ "${line}" == "requirepass "* ]] || fail 5 "${SECRET_FILE} holds no requirepass line"
  { printf 'AUTH %s\n' "${line#requirepass }"; printf '%s\n' "$@"; } | podman exec -i "${NAME}" redis-cli
}

# The replies to the commands, the AUTH's OK dropped (and checked), carriage returns removed.
redis_replies() {  # command...
  local out
  out=$(redis_query "$@")
  out=${out//$'\r'/}
  [[ "${out%%$'\n'*}" == OK ]] || fail 5 "redis refused the password from ${SECRET_FILE}"
  printf '%s\n' "${out#*$'\n'}"
}

backup_redis() {
  local -a replies
  local before deadline report out
  out=$(redis_replies LASTSAVE TIME "INFO server")
  mapfile -t replies <<< "${out}"
  [[ "${replies[0]:-}" =~ ^[0-9]+$ && "${replies[1]:-}" =~ ^[0-9]+$ ]] || fail 5 "LASTSAVE/TIME answered '${replies[*]:0:2}'"
  before=${replies[0]}
  tool=$(sed -n 's/^redis_version:/redis /p' <<< "${out}")
  # LASTSAVE counts whole seconds: a save must end in a later second than the last one to show.
  [[ "${replies[1]}" -gt "${before}" ]] || sleep 1
  out=$(redis_replies "BGSAVE SCHEDULE")
  mapfile -t replies <<< "${out}"
  case "${replies[0]:-}" in
    "Background saving started" | "Background saving scheduled" | *"already in progress"*) ;;
    *) fail 5 "BGSAVE answered '${replies[0]:-nothing}'" ;;
  esac
  deadline=$((SECONDS + SAVE_TIMEOUT_S))
  while :; do
    out=$(redis_replies LASTSAVE)
    mapfile -t replies <<< "${out}"
    [[ ! "${replies[0]:-}" =~ ^[0-9]+$ || "${replies[0]}" -le "${before}" ]] || break
    [[ "${SECONDS}" -lt "${deadline}" ]] || fail 5 "BGSAVE did not finish within ${SAVE_TIMEOUT_S}s"
    sleep 0.5
  done
  out=$(redis_replies "INFO persistence")
  grep -qx 'rdb_last_bgsave_status:ok' <<< "${out}" || fail 5 "BGSAVE failed (rdb_last_bgsave_status)"
  cp -- "${DATA_DIR}/dump.rdb" "${tmp}"
  # The copy's own check and key count, by the engine's checker reading it on stdin.
  report=$(podman exec -i "${NAME}" redis-check-rdb /dev/stdin < "${tmp}") || fail 5 "redis-check-rdb rejects the copy"
  checks[keys]=$(sed -n 's/^\[info\] \([0-9]*\) keys read$/\1/p' <<< "${report}")
  checks[expires]=$(sed -n 's/^\[info\] \([0-9]*\) expires$/\1/p' <<< "${report}")
  [[ "${checks[keys]}" =~ ^[0-9]+$ ]] || fail 5 "redis-check-rdb reported no key count"
  [[ "${checks[expires]}" =~ ^[0-9]+$ ]] || checks[expires]=0
}

# --- Neo4j --------------------------------------------------------------------------------------

# Bounded wait for the engine's own health check after it was started again.
healthy_within() {  # seconds
  local deadline=$((SECONDS + $1))
  until podman healthcheck run "${NAME}" > /dev/null 2>&1; do
    [[ "${SECONDS}" -le "${deadline}" ]] || return 1
    sleep 2
  done
}

backup_neo4j() {
  local dumped=0 database
  work="${daily}/.tmp-${base}.d"
  mkdir -m 700 "${work}"
  chown 7474:7474 "${work}"  # the image's neo4j user writes the dumps
  # The maintenance window: neo4j-admin dumps a stopped database only (Community edition).
  echo "${NAME}: stopping ${SERVICE} for neo4j-admin database dump (it starts again right after)"
  systemctl stop "${SERVICE}"
  for database in neo4j system; do
    if timeout --kill-after=30 "${SAVE_TIMEOUT_S}" podman run --rm --name "${NAME}-backup" \
      "--memory=${MEMORY_MIB}m" "--memory-swap=${MEMORY_MIB}m" -e "HEAP_SIZE=${HEAP_MIB}m" \
      -v "${DATA_DIR}:/data:Z" -v "${work}:/backups:Z" "${IMAGE}" \
      neo4j-admin database dump "--to-path=/backups" "${database}"; then
      dumped=$((dumped + 1))
    else
      error="neo4j-admin database dump ${database} failed"
      break
    fi
  done
  systemctl start "${SERVICE}" || error="${error:+${error}; }${SERVICE} did not start again"
  # shellcheck disable=SC2310  # answered here
  healthy_within "${HEALTH_TIMEOUT_S}" || error="${error:+${error}; }${NAME} not healthy ${HEALTH_TIMEOUT_S}s after the dump"
  [[ -z "${error}" ]] || fail 5 "${error}"
  [[ -s "${work}/neo4j.dump" ]] || fail 5 "neo4j-admin wrote no neo4j.dump"
  tool=$(podman exec "${NAME}" neo4j-admin --version 2> /dev/null || echo neo4j-admin)
  tar -cf "${tmp}" -C "${work}" .
  checks[databases]=${dumped}
}

# --- Elasticsearch and Weaviate (the engine writes its snapshot into its data volume) ------------

# $1 := the secret file's value, escaped for a double-quoted curl config value.
secret_escaped() {  # variable
  local value
  value=$(< "${SECRET_FILE}")
  value=${value//\\/\\\\}
  printf -v "$1" '%s' "${value//\"/\\\"}"
}

# The Elasticsearch API from inside the container, the elastic user's password in curl's config on stdin.
es_api() {  # method path [body]
  local -a body=()
  local secret
  [[ $# -lt 3 ]] || body=(-H 'Content-Type: application/json' --data-binary "$3")
  secret_escaped secret
  printf 'user = "%s:%s"\n' "${DB_USER}" "${secret}" \
    | podman exec -i "${NAME}" curl -sS -f --max-time "${SAVE_TIMEOUT_S}" -K - -X "$1" "${body[@]}" \
      "http://127.0.0.1:9200$2"
}

# $1 := the host path of container path $2, inside the data volume.
in_volume() {  # variable path
  [[ "$2" == "${DATA_PATH}"/?* ]] || fail 2 "$2 is not inside the data volume ${DATA_PATH}"
  printf -v "$1" '%s' "${DATA_DIR}${2#"${DATA_PATH}"}"
}

# shellcheck disable=SC2310  # each API call's failure is answered where it is made
backup_elasticsearch() {
  local snapshot="platform-${stamp,,}" answer repository
  in_volume repository "${ES_SNAPSHOT_PATH}"
  es_api PUT /_snapshot/platform "{\"type\": \"fs\", \"settings\": {\"location\": \"${ES_SNAPSHOT_PATH}\"}}" > /dev/null \
    || fail 5 "the snapshot repository could not be registered (path.repo ${ES_SNAPSHOT_PATH})"
  answer=$(es_api PUT "/_snapshot/platform/${snapshot}?wait_for_completion=true" '{"include_global_state": true}') \
    || fail 5 "the snapshot API failed"
  [[ "${answer}" == *'"state":"SUCCESS"'* ]] || fail 5 "snapshot ${snapshot} did not succeed: ${answer:0:300}"
  tool=$(es_api GET / | sed -n 's/.*"number" *: *"\([^"]*\)".*/elasticsearch \1/p' | head -n 1) || true
  checks[shards]=$(sed -n 's/.*"shards":{"total":\([0-9]*\).*/\1/p' <<< "${answer}")
  tar -cf "${tmp}" -C "${repository}" .
  # One snapshot in the repository at a time, so each archive is complete on its own.
  es_api DELETE "/_snapshot/platform/${snapshot}" > /dev/null || echo "${NAME}: could not delete snapshot ${snapshot}" >&2
}

# The Weaviate API on its published port, the API key in curl's config on stdin.
weaviate_api() {  # method path [body]
  local -a body=()
  local secret
  [[ $# -lt 3 ]] || body=(-H 'Content-Type: application/json' --data-binary "$3")
  secret_escaped secret
  printf 'header = "Authorization: Bearer %s"\n' "${secret}" \
    | curl -sS -f --max-time 60 -K - -X "$1" "${body[@]}" "http://127.0.0.1:${API_PORT}/v1$2"
}

# shellcheck disable=SC2310  # each API call's failure is answered where it is made
backup_weaviate() {
  local id="platform-${stamp,,}" answer deadline written module_dir
  answer=$(weaviate_api POST /backups/filesystem "{\"id\": \"${id}\"}") || fail 5 "the backup API failed"
  deadline=$((SECONDS + SAVE_TIMEOUT_S))
  until [[ "${answer}" == *'"status":"SUCCESS"'* ]]; do
    [[ "${answer}" != *'"status":"FAILED"'* ]] || fail 5 "backup ${id} failed: ${answer:0:300}"
    [[ "${SECONDS}" -lt "${deadline}" ]] || fail 5 "backup ${id} did not finish within ${SAVE_TIMEOUT_S}s"
    sleep 2
    answer=$(weaviate_api GET "/backups/filesystem/${id}") || fail 5 "the backup status API failed"
  done
  in_volume written "${WEAVIATE_BACKUP_PATH}/${id}"
  in_volume module_dir "${WEAVIATE_BACKUP_PATH}"
  tar -cf "${tmp}" -C "${written}" .
  tool=weaviate
  checks[classes]=$(grep -o '"classes":\[[^]]*\]' <<< "${answer}" | grep -o '"[^"]*"' | grep -vc '"classes"' || true)
  # The module keeps every backup it wrote; the archive holds this one now.
  assert_under "${module_dir}" "${written}"
  rm -rf -- "${written}"
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
