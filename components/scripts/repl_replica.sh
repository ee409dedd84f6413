#!/usr/bin/env bash
# A native engine on the Tencent host becomes a replica of its Alibaba source, over TLS that
# verifies the source's certificate against the program's CA (TLS_VERIFY, CA_FILE):
#   mysql     GTID replication on the default connection: MariaDB CHANGE MASTER TO ...
#             MASTER_USE_GTID=slave_pos, MASTER_SSL=1, MASTER_SSL_VERIFY_SERVER_CERT=1; MySQL 8.0.23+
#             CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION=1, SOURCE_SSL=1,
#             SOURCE_SSL_VERIFY_SERVER_CERT=1 (chosen from VERSION()). Its other databases stay.
#   postgres  a subscription SUBSCRIPTION to the source's publication in DATABASE (made if missing),
#             with sslmode=verify-full; on first setup the schema comes from the source
#             (pg_dump --schema-only) when the database has no tables yet. Later DDL is applied on
#             both sides by hand (logical replication carries rows, not DDL).
#   redis     REPLICAOF with masteruser/masterauth and tls-replication; its own dataset is replaced
#             by the source's on the first sync. Persisted with CONFIG REWRITE.
# The engine is reached locally: MySQL as root on its unix socket, PostgreSQL as its OS user on its
# socket, Redis on 127.0.0.1:PORT; an admin password, if the engine needs one, is read from
# LOCAL_SECRET_FILE (optional, 0600). Before anything changes, the source is probed with the same
# TLS settings and credentials, so a wrong CA, name or password fails here, not in the engine.
# Then it waits (bounded: SYNC_TIMEOUT) for the first sync. Running again with everything in place
# restarts nothing and says "unchanged".
#
# stdin (components/replication.py: replica_stdin): the replication password, a newline, the CA (PEM).
# The password reaches the engine in the statement that configures replication (on a pipe); the
# engine keeps it where replication needs it (MySQL's connection metadata, PostgreSQL's
# pg_subscription, Redis's config file). PASS_FILE (0600) keeps it for pg_dump and the health check.
# Parameters: NAME, KIND, PORT, SOURCE_NAME, SOURCE_HOST, SOURCE_PORT, SOURCE_USER, SOURCE_SERVER_ID,
# DATABASE, PUBLICATION, SUBSCRIPTION, CA_FILE, REPLICA_DIR, PASS_FILE, LOCAL_SECRET_FILE, STATE_DIR,
# SYNC_TIMEOUT, TLS_VERIFY.
# Removes: ${CA_FILE}.new
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
# shellcheck disable=SC2312  # substitutions quote a value or read output that the next line checks
set -euo pipefail
umask 077

input=""
IFS= read -r -d '' input || true
password=${input%%$'\n'*}
ca=${input#"${password}"}
ca=${ca#$'\n'}
check_password "replication password" "${password}"
if [[ "${ca}" != "-----BEGIN CERTIFICATE-----"* ]] || ! printf '%s' "${ca}" | openssl x509 -noout 2>/dev/null; then
  fail "stdin: no CA certificate (PEM) after the password line" 2
fi
changes=()
marker="${STATE_DIR}/replication/${NAME}.replica"
applied="${SOURCE_HOST}:${SOURCE_PORT}:${SOURCE_USER}"$'\n'"${password}"
deadline=$((SECONDS + SYNC_TIMEOUT))

note() { echo "${NAME}: $*"; }

# The CA where the engine's own user can read it (REPLICA_DIR is 0755; the CA is public). A new
# CA is staged beside the file and used by the probe first: the file changes only once the source
# has been verified with it, so a wrong CA never replaces one that works.
ca_probe=${CA_FILE}
ca_changed=0
stage_ca() {
  # Created world-traversable, parents included: the engine's own user reads the CA below it.
  [[ -d "${REPLICA_DIR}" ]] || (umask 022 && mkdir -p "${REPLICA_DIR}")
  if [[ -f "${CA_FILE}" ]] && cmp -s "${CA_FILE}" <(printf '%s' "${ca}"); then
    [[ "$(stat -c %a "${CA_FILE}")" == 644 ]] || chmod 644 "${CA_FILE}"
    return 0
  fi
  printf '%s' "${ca}" > "${CA_FILE}.new"
  chmod 644 "${CA_FILE}.new"
  ca_probe="${CA_FILE}.new" ca_changed=1
}
commit_ca() {
  [[ "${ca_changed}" == 1 ]] || return 0
  mv -f "${CA_FILE}.new" "${CA_FILE}"
  ca_probe=${CA_FILE}
  changes+=("CA written to ${CA_FILE}")
}
# The source refuses the replication user over TLS verified with the staged CA: stop here.
refused() {  # the probe's message
  rm -f "${CA_FILE}.new"
  fail "${SOURCE_NAME} at ${SOURCE_HOST}:${SOURCE_PORT} refuses ${SOURCE_USER} over TLS verified with the program's CA: $1" 6
}

# Whether the deadline has passed (SECONDS counts whole seconds, hence "greater").
past_deadline() { [[ "${SECONDS}" -gt "${deadline}" ]]; }

# --- MySQL / MariaDB ---------------------------------------------------------------------------

mysql_configured() {
  [[ "${repl_status[Source_Host]:-}" == "${SOURCE_HOST}" && "${repl_status[Source_Port]:-}" == "${SOURCE_PORT}" \
    && "${repl_status[Source_User]:-}" == "${SOURCE_USER}" && "${repl_status[Source_SSL_Allowed]:-}" == Yes \
    && "${repl_status[Source_SSL_CA_File]:-}" == "${CA_FILE}" \
    && "${repl_status[Source_SSL_Verify_Server_Cert]:-}" == Yes ]] || return 1
  if [[ "${mysql_flavour}" == mariadb ]]; then
    [[ "${repl_status[Using_Gtid]:-}" == Slave_Pos ]]
  else
    [[ "${repl_status[Auto_Position]:-}" == 1 ]]
  fi
}

replica_mysql() {
  local version server_id gtid_mode sql host_literal
  find_mysql_socket
  mysql_status
  version=$(echo 'SELECT VERSION();' | local_mysql -N -B)
  if [[ "${mysql_flavour}" == mysql ]]; then
    local major minor patch
    IFS=.- read -r major minor patch _ <<< "${version}"
    if ((major < 8 || (major == 8 && minor == 0 && patch < 23))); then
      fail "MySQL ${version}: CHANGE REPLICATION SOURCE TO needs 8.0.23 or later (MariaDB works too)" 4
    fi
    gtid_mode=$(echo 'SELECT @@GLOBAL.gtid_mode;' | local_mysql -N -B)
    [[ "${gtid_mode}" == ON ]] || fail "gtid_mode is ${gtid_mode}: GTID replication needs gtid_mode=ON and \
enforce_gtid_consistency=ON on this MySQL (set them in its configuration, stepping through OFF_PERMISSIVE and \
ON_PERMISSIVE as MySQL documents, then run again)" 4
  fi
  server_id=$(echo 'SELECT @@GLOBAL.server_id;' | local_mysql -N -B)
  if [[ "${server_id}" == 0 || "${server_id}" == "${SOURCE_SERVER_ID}" ]]; then
    fail "server_id is ${server_id}: a replica needs its own (not 0, not the source's ${SOURCE_SERVER_ID}); set server_id in its configuration" 4
  fi
  if [[ -n "${repl_status[Source_Host]:-}" && "${repl_status[Source_Host]}" != "${SOURCE_HOST}" ]]; then
    fail "already replicates from ${repl_status[Source_Host]}: stop that first (STOP SLAVE; RESET SLAVE ALL) if it should follow ${SOURCE_NAME}" 4
  fi
  stage_ca
  local configured=0 running=0 out=""
  # shellcheck disable=SC2310  # the functions answer with their status
  if mysql_configured && applied_matches "${marker}" "${applied}"; then configured=1; fi
  if [[ "${repl_status[Replica_IO_Running]:-}" == Yes && "${repl_status[Replica_SQL_Running]:-}" == Yes ]]; then running=1; fi
  if [[ "${configured}" == 1 && "${running}" == 1 && "${ca_changed}" == 0 ]]; then return 0; fi

  # shellcheck disable=SC2310  # probe_mysql answers with its status
  out=$(probe_mysql "${SOURCE_HOST}" "${SOURCE_PORT}" "${SOURCE_USER}" "${password}" "${ca_probe}") || refused "${out}"
  commit_ca
  if [[ "${configured}" == 1 ]]; then
    # The settings are in place: restart the threads, which reconnect with the CA file as it is now.
    if [[ "${mysql_flavour}" == mariadb ]]; then sql='STOP SLAVE; START SLAVE;'; else sql='STOP REPLICA; START REPLICA;'; fi
    echo "${sql}" | local_mysql -N -B
    changes+=("replication restarted (IO ${repl_status[Replica_IO_Running]:-No}, SQL ${repl_status[Replica_SQL_Running]:-No} before)")
  else
    host_literal=$(sql_literal "${SOURCE_HOST}")
    if [[ "${mysql_flavour}" == mariadb ]]; then
      sql="STOP SLAVE;
CHANGE MASTER TO MASTER_HOST=${host_literal}, MASTER_PORT=${SOURCE_PORT}, MASTER_USER=$(sql_literal "${SOURCE_USER}"),
  MASTER_PASSWORD=$(sql_literal "${password}"), MASTER_SSL=1, MASTER_SSL_CA=$(sql_literal "${CA_FILE}"),
  MASTER_SSL_VERIFY_SERVER_CERT=1, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=10;
START SLAVE;"
    else
      sql="STOP REPLICA;
CHANGE REPLICATION SOURCE TO SOURCE_HOST=${host_literal}, SOURCE_PORT=${SOURCE_PORT},
  SOURCE_USER=$(sql_literal "${SOURCE_USER}"), SOURCE_PASSWORD=$(sql_literal "${password}"), SOURCE_SSL=1,
  SOURCE_SSL_CA=$(sql_literal "${CA_FILE}"), SOURCE_SSL_VERIFY_SERVER_CERT=1, SOURCE_AUTO_POSITION=1,
  SOURCE_CONNECT_RETRY=10;
START REPLICA;"
    fi
    local status=0
    out=$(printf '%s\n' "${sql}" | local_mysql -N -B 2>&1) || status=$?
    [[ "${status}" == 0 ]] || fail "could not configure replication: $(redact "${out}" "${password}")" 5
    record_applied "${marker}" "${applied}"
    changes+=("replicates ${SOURCE_NAME} from ${SOURCE_HOST}:${SOURCE_PORT} (GTID, TLS verified, ${mysql_flavour} syntax)")
  fi
  wait_mysql
}

wait_mysql() {
  local error
  while true; do
    mysql_status
    local io=${repl_status[Replica_IO_Running]:-No} sql=${repl_status[Replica_SQL_Running]:-No}
    local lag=${repl_status[Seconds_Behind_Source]:-NULL}
    if [[ "${io}" == Yes && "${sql}" == Yes && "${lag}" == 0 ]]; then
      note "in sync with ${SOURCE_NAME} (IO and SQL threads running, 0 s behind)"
      return 0
    fi
    if [[ "${io}" != Yes && -n "${repl_status[Last_IO_Error]:-}" ]]; then
      error=$(redact "${repl_status[Last_IO_Error]}" "${password}")
      fail "replication from ${SOURCE_HOST}:${SOURCE_PORT} fails: ${error}" 6
    fi
    if [[ "${sql}" != Yes && -n "${repl_status[Last_SQL_Error]:-}" ]]; then
      fail "replication stopped applying: ${repl_status[Last_SQL_Error]}" 6
    fi
    # shellcheck disable=SC2310  # past_deadline answers with its status
    if past_deadline; then
      if [[ "${io}" == Yes && "${sql}" == Yes ]]; then
        note "connected, still catching up after ${SYNC_TIMEOUT} s: ${lag} s behind"
        return 0
      fi
      fail "not replicating after ${SYNC_TIMEOUT} s (IO ${io}, SQL ${sql})" 6
    fi
    sleep 1
  done
}

# --- PostgreSQL --------------------------------------------------------------------------------

pg_source() {  # stdin: SQL on the source, as the replication user
  probe_postgres "${SOURCE_HOST}" "${SOURCE_PORT}" "${DATABASE}" "${SOURCE_USER}" "${ca_probe}" "${PASS_FILE}"
}

install_pass_file() {
  local line tmp
  line="${SOURCE_HOST}:${SOURCE_PORT}:*:${SOURCE_USER}:${password//:/\\:}"
  if [[ -f "${PASS_FILE}" ]] && cmp -s "${PASS_FILE}" <(printf '%s\n' "${line}"); then return 0; fi
  [[ -d "${PASS_FILE%/*}" ]] || install -d -m 700 "${PASS_FILE%/*}"
  tmp=$(mktemp "${PASS_FILE}.XXXXXX")
  printf '%s\n' "${line}" > "${tmp}"
  chmod 600 "${tmp}"
  mv -f "${tmp}" "${PASS_FILE}"
}

replica_postgres() {
  local database_literal sub_literal exists state conninfo wanted out tables status=0
  find_postgres
  stage_ca
  install_pass_file
  database_literal=$(sql_literal "${DATABASE}")
  sub_literal=$(sql_literal "${SUBSCRIPTION}")
  wanted="host=${SOURCE_HOST} port=${SOURCE_PORT} dbname=${DATABASE} user=${SOURCE_USER}"
  wanted+=" password=$(conninfo_value "${password}") sslmode=${TLS_VERIFY} sslrootcert=${CA_FILE}"

  exists=$(echo "SELECT count(*) FROM pg_database WHERE datname = ${database_literal};" | local_psql postgres)
  if [[ "${exists}" == 0 ]]; then
    echo "CREATE DATABASE \"${DATABASE}\";" | local_psql postgres
    changes+=("database ${DATABASE} created")
  fi
  local session="SET log_statement = 'none'; SET log_min_error_statement = 'panic';"
  state=$(echo "SELECT CASE WHEN s.subenabled THEN 't' ELSE 'f' END || ',' || array_to_string(s.subpublications, ',') FROM pg_subscription s
    JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = current_database() AND s.subname = ${sub_literal};" \
    | local_psql "${DATABASE}")
  if [[ -z "${state}" ]]; then
    # shellcheck disable=SC2310  # pg_source answers with its status
    out=$(pg_source <<< 'SELECT 1') || refused "${out}"
    commit_ca
    tables=$(echo "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%';" | local_psql "${DATABASE}")
    if [[ "${tables}" == 0 ]]; then
      # The source's schema, without owners, grants, publications or subscriptions.
      local schema
      schema=$(timeout "${CLIENT_TIMEOUT}" pg_dump --schema-only --no-owner --no-privileges --no-publications --no-subscriptions \
        "host=${SOURCE_HOST} port=${SOURCE_PORT} dbname=${DATABASE} user=${SOURCE_USER} sslmode=${TLS_VERIFY} sslrootcert=${CA_FILE} passfile=${PASS_FILE}" \
        2>&1) || fail "could not dump the schema of ${DATABASE} from ${SOURCE_NAME}: ${schema}" 5
      out=$(printf '%s\n' "${schema}" | local_psql "${DATABASE}" 2>&1) || status=$?
      [[ "${status}" == 0 ]] || fail "could not apply the schema of ${DATABASE} from ${SOURCE_NAME}: ${out}" 5
      changes+=("schema of ${DATABASE} copied from ${SOURCE_NAME}")
    else
      note "${DATABASE} has ${tables} table(s): its schema is taken as prepared (not copied from ${SOURCE_NAME})"
    fi
    out=$(printf '%s\nCREATE SUBSCRIPTION "%s" CONNECTION %s PUBLICATION "%s";\n' "${session}" "${SUBSCRIPTION}" \
      "$(sql_literal "${wanted}")" "${PUBLICATION}" | local_psql "${DATABASE}" 2>&1) || status=$?
    [[ "${status}" == 0 ]] || fail "could not subscribe: $(redact "${out}" "${password}")" 5
    changes+=("subscribed to ${PUBLICATION} of ${SOURCE_NAME} (${DATABASE}, sslmode=${TLS_VERIFY})")
  else
    conninfo=$(echo "SELECT subconninfo FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
      WHERE d.datname = current_database() AND s.subname = ${sub_literal};" | local_psql "${DATABASE}")
    if [[ "${conninfo}" != "${wanted}" || "${ca_changed}" == 1 ]]; then
      # shellcheck disable=SC2310  # pg_source answers with its status
      out=$(pg_source <<< 'SELECT 1') || refused "${out}"
      commit_ca
    fi
    if [[ "${conninfo}" != "${wanted}" ]]; then
      out=$(printf '%s\nALTER SUBSCRIPTION "%s" CONNECTION %s;\n' "${session}" "${SUBSCRIPTION}" \
        "$(sql_literal "${wanted}")" | local_psql "${DATABASE}" 2>&1) || status=$?
      [[ "${status}" == 0 ]] || fail "could not update the subscription: $(redact "${out}" "${password}")" 5
      changes+=("subscription connects to ${SOURCE_HOST}:${SOURCE_PORT} (sslmode=${TLS_VERIFY})")
    fi
    if [[ "${state#*,}" != "${PUBLICATION}" ]]; then
      echo "ALTER SUBSCRIPTION \"${SUBSCRIPTION}\" SET PUBLICATION \"${PUBLICATION}\";" | local_psql "${DATABASE}"
      changes+=("subscription follows ${PUBLICATION}")
    fi
    if [[ "${state%%,*}" != t ]]; then
      echo "ALTER SUBSCRIPTION \"${SUBSCRIPTION}\" ENABLE;" | local_psql "${DATABASE}"
      changes+=("subscription enabled")
    fi
  fi
  [[ "${#changes[@]}" -gt 0 ]] || return 0
  wait_postgres
}

wait_postgres() {
  local counts error
  while true; do
    # The apply worker runs and every table finished its first copy (r: ready, s: synchronised).
    counts=$(echo "SELECT (SELECT count(*) FROM pg_stat_subscription WHERE subname = $(sql_literal "${SUBSCRIPTION}")
        AND relid IS NULL AND pid IS NOT NULL) || ',' || count(*) FILTER (WHERE r.srsubstate NOT IN ('r', 's'))
      FROM pg_subscription s LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid
      WHERE s.subname = $(sql_literal "${SUBSCRIPTION}");" | local_psql "${DATABASE}")
    if [[ "${counts}" == 1,0 ]]; then
      note "in sync with ${SOURCE_NAME} (every table copied, apply worker running)"
      return 0
    fi
    # shellcheck disable=SC2310  # past_deadline answers with its status
    if past_deadline; then
      # shellcheck disable=SC2310  # pg_source answers with its status
      error=$(pg_source <<< 'SELECT 1') && error="tables still copying or the apply worker restarting (see its log)"
      fail "not in sync after ${SYNC_TIMEOUT} s (worker,tables not ready: ${counts}): ${error}" 6
    fi
    sleep 1
  done
}

# --- Redis -------------------------------------------------------------------------------------

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

case "${KIND}" in
  mysql) replica_mysql ;;
  postgres) replica_postgres ;;
  redis) replica_redis ;;
  *) fail "${KIND} cannot replicate across clouds" 2 ;;
esac
for change in "${changes[@]}"; do note "${change}"; done
if [[ "${#changes[@]}" == 0 ]]; then
  note "unchanged (replica of ${SOURCE_NAME} at ${SOURCE_HOST}:${SOURCE_PORT}, TLS ${TLS_VERIFY})"
else
  note "updated"
fi
