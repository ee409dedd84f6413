#!/usr/bin/env bash
# Redis in the backup programs:
# backup_redis for platform-backup; verify_redis and drill_redis for platform-restore-drill.
# components/backups.py renders every engine's file between lib/backup_common.sh and each
# program's body; the program calls the function for the database's KIND.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the programs set pipefail and inherit_errexit, hold the
# variables and configuration (read_config) these functions use, and call them
ENGINES+=(redis)
BACKUP_EXT[redis]=rdb

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

drill_redis() {
  local info keys=0 line
  cp -- "${file}" "${scratch}/data/dump.rdb"
  start_scratch "${IMAGE}" redis-server --dir "${DATA_PATH}" --dbfilename dump.rdb --appendonly no --save ""
  wait_ready "Redis server" redis_pong
  info=$(podman exec "${container}" redis-cli INFO keyspace) || fail "INFO keyspace failed"
  while IFS= read -r line; do
    [[ "${line}" =~ ^db[0-9]+:keys=([0-9]+), ]] && keys=$((keys + BASH_REMATCH[1]))
  done <<< "${info//$'\r'/}"
  found[keys]=${keys}
  figures="keys ${keys}/${expected[keys]:-?} (expires ${expected[expires]:-0})"
  [[ -n "${expected[keys]:-}" ]] || fail "the manifest has no keys figure"
  # A key with a TTL may have expired since the backup; no key may appear or vanish otherwise.
  if [[ "${keys}" -gt "${expected[keys]}" || "${keys}" -lt $((expected[keys] - ${expected[expires]:-0})) ]]; then
    fail "keys: ${keys} restored, ${expected[keys]} in the backup (${expected[expires]:-0} with a TTL)"
  fi
}

# shellcheck disable=SC2317,SC2329  # called through wait_ready
redis_pong() {
  local answer
  answer=$(podman exec "${container}" redis-cli PING)
  [[ "${answer//$'\r'/}" == PONG ]]
}

# The drill's check of an RDB it does not restore.
verify_redis() {  # why it is not restored
  local magic
  magic=$(head -c 5 -- "${file}")
  [[ "${magic}" == REDIS ]] || fail "the file is not a Redis RDB"
  figures="RDB header verified; not restored: $1"
}
