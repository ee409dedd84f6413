#!/usr/bin/env bash
# Redis as a replica (components/scripts/repl_replica.sh renders it after lib/repl.sh):
# replica_redis: the engine follows its source over verified TLS.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

# Whether the engine already follows this source (then nothing is guarded: it holds the source's data).
following_redis() {
  local info
  listener_pid > /dev/null || fail "nothing listens on port ${PORT}: is the local Redis running?"
  info=$(printf 'INFO replication\n' | local_redis)
  [[ "$(info_field "${info}" role)" == slave && "$(info_field "${info}" master_host)" == "${SOURCE_HOST}" ]]
}

# What it holds of its own: its keys, all of which REPLICAOF replaces (the replication user may not
# read the source's keys, so none can be told to be there too).
holds_redis() {
  local info line keys=0
  info=$(printf 'INFO keyspace\n' | local_redis)
  while IFS= read -r line; do
    if [[ "${line}" =~ ^db[0-9]+:keys=([0-9]+) ]]; then keys=$((keys + BASH_REMATCH[1])); fi
  done <<< "${info}"
  [[ "${keys}" == 0 ]] || printf '%s key(s)' "${keys}"
}

# Its dataset as an RDB file in $1: a BGSAVE (the engine keeps serving), then its file copied.
dump_redis() {
  local before now dir file info
  before=$(printf 'LASTSAVE\n' | local_redis)
  sleep 1 # LASTSAVE counts seconds: the save below must read as a later one
  printf 'BGSAVE\n' | local_redis > /dev/null
  while true; do
    now=$(printf 'LASTSAVE\n' | local_redis)
    info=$(printf 'INFO persistence\n' | local_redis)
    if [[ "${now}" != "${before}" && "$(info_field "${info}" rdb_bgsave_in_progress)" == 0 ]]; then break; fi
    # shellcheck disable=SC2310  # past_deadline answers with its status
    if past_deadline; then fail "could not dump its dataset: BGSAVE did not finish in ${SYNC_TIMEOUT} s" 5; fi
    sleep 0.2
  done
  [[ "$(info_field "${info}" rdb_last_bgsave_status)" == ok ]] || fail "could not dump its dataset: BGSAVE failed" 5
  dir=$(redis_config dir) file=$(redis_config dbfilename)
  cp "${dir}/${file}" "$1/dump.rdb"
}

# Nothing to clear: the first sync replaces the dataset with the source's.
discard_redis() { :; }

replica_redis() {
  local pid owner info key_file cert_file out role set_tls=0 set_master=0 persisted
  pid=$(listener_pid) || fail "nothing listens on port ${PORT}: is the local Redis running?"
  owner=$(stat -c %u:%g "/proc/${pid}")
  stage_ca
  set_tls=${ca_changed}
  # Redis needs a key and certificate of its own to make TLS connections; the source asks for none
  # (tls-auth-clients no), so a self-signed pair made here is enough.
  key_file="${REPLICA_DIR}/replica.key" cert_file="${REPLICA_DIR}/replica.crt"
  if [[ ! -s "${key_file}" || ! -s "${cert_file}" ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500 \
      -subj "/CN=${NAME} replica" -keyout "${key_file}" -out "${cert_file}" 2>/dev/null
    chmod 644 "${cert_file}"
    set_tls=1
  fi
  [[ "$(stat -c '%a %u:%g' "${key_file}")" == "600 ${owner}" ]] || { chown "${owner}" "${key_file}"; chmod 600 "${key_file}"; }

  info=$(printf 'INFO replication\n' | local_redis)
  role=$(info_field "${info}" role)
  if [[ "${role}" == slave && "$(info_field "${info}" master_host)" != "${SOURCE_HOST}" ]]; then
    fail "already a replica of $(info_field "${info}" master_host): REPLICAOF NO ONE first if it should follow ${SOURCE_NAME}" 4
  fi
  local setting wanted current
  for setting in "tls-replication yes" "tls-ca-cert-file ${CA_FILE}" "tls-cert-file ${cert_file}" \
    "tls-key-file ${key_file}" "masteruser ${SOURCE_USER}"; do
    wanted=${setting#* }
    current=$(redis_config "${setting%% *}")
    [[ "${current}" == "${wanted}" ]] || set_tls=1
  done
  current=$(redis_config masterauth)
  [[ "${current}" == "${password}" ]] || set_tls=1
  if [[ "${role}" != slave || "$(info_field "${info}" master_port)" != "${SOURCE_PORT}" ]]; then set_master=1; fi
  if [[ "${set_tls}" == 0 && "${set_master}" == 0 ]]; then return 0; fi

  # shellcheck disable=SC2310  # probe_redis answers with its status
  out=$(probe_redis "${SOURCE_HOST}" "${SOURCE_PORT}" "${SOURCE_USER}" "${password}" "${ca_probe}") || refused "${out}"
  commit_ca
  discard_if_pending
  if [[ "${set_tls}" == 1 ]]; then
    # One CONFIG SET: the TLS files load together (Redis reloads them even when the paths are the same).
    out=$(printf 'CONFIG SET tls-cert-file %s tls-key-file %s tls-ca-cert-file %s tls-replication yes masteruser %s masterauth %s\n' \
      "$(redis_word "${cert_file}")" "$(redis_word "${key_file}")" "$(redis_word "${CA_FILE}")" \
      "$(redis_word "${SOURCE_USER}")" "$(redis_word "${password}")" | local_redis 2>&1)
    [[ "${out}" == *OK* ]] || fail "could not set TLS and credentials: $(redact "${out}" "${password}")" 5
    changes+=("tls-replication yes, CA ${CA_FILE}, masteruser ${SOURCE_USER}")
    if [[ "${set_master}" == 0 ]]; then
      # Already a replica of the source: reconnect with the new settings (a partial resync).
      printf 'CLIENT KILL TYPE master\n' | local_redis > /dev/null
    fi
  fi
  if [[ "${set_master}" == 1 ]]; then
    out=$(printf 'REPLICAOF %s %s\n' "$(redis_word "${SOURCE_HOST}")" "${SOURCE_PORT}" | local_redis 2>&1)
    [[ "${out}" == *OK* ]] || fail "REPLICAOF failed: ${out}" 5
    changes+=("replica of ${SOURCE_NAME} at ${SOURCE_HOST}:${SOURCE_PORT}: its own dataset is replaced by the source's")
  fi
  info=$(printf 'INFO server\n' | local_redis)
  persisted=$(info_field "${info}" config_file)
  if [[ -n "${persisted}" ]]; then
    out=$(printf 'CONFIG REWRITE\n' | local_redis 2>&1)
    [[ "${out}" == *OK* ]] || fail "could not persist the settings in ${persisted}: ${out}" 5
    changes+=("settings kept in ${persisted}")
  else
    echo "${NAME}: warning: started without a config file: a restart forgets that it is a replica" >&2
  fi
  wait_redis
}

wait_redis() {
  local info error
  while true; do
    info=$(printf 'INFO replication\n' | local_redis)
    if [[ "$(info_field "${info}" master_link_status)" == up && "$(info_field "${info}" master_sync_in_progress)" == 0 ]]; then
      note "in sync with ${SOURCE_NAME} (link up, first sync done)"
      return 0
    fi
    # shellcheck disable=SC2310  # past_deadline answers with its status
    if past_deadline; then
      # shellcheck disable=SC2310  # probe_redis answers with its status
      error=$(probe_redis "${SOURCE_HOST}" "${SOURCE_PORT}" "${SOURCE_USER}" "${password}" "${CA_FILE}") \
        && error="the link is still down or syncing (see the Redis log)"
      fail "not in sync after ${SYNC_TIMEOUT} s: ${error}" 6
    fi
    sleep 1
  done
}
