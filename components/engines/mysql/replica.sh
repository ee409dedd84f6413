#!/usr/bin/env bash
# MySQL (and MariaDB) as a replica (components/scripts/repl_replica.sh renders it after lib/repl.sh):
# replica_mysql: the engine follows its source over verified TLS.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

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

# Whether the engine already follows this source (then nothing is guarded: it holds the source's data).
following_mysql() {
  find_mysql_socket
  mysql_status
  [[ "${repl_status[Source_Host]:-}" == "${SOURCE_HOST}" ]]
}

mysql_own_databases() {
  echo "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ('mysql', 'information_schema',
    'performance_schema', 'sys') ORDER BY schema_name;" | local_mysql -N -B
}

# What it holds of its own: every database beside the system ones (the replication user may not list
# the source's, so none can be told to be there too; the source's binlog would be applied beside or
# into them).
holds_mysql() {
  local names
  names=$(mysql_own_databases)
  [[ -z "${names}" ]] || printf 'database(s) %s' "$(paste -sd, <<< "${names}" | sed 's/,/, /g')"
}

# Those databases as SQL in $1 (one consistent snapshot of InnoDB tables).
dump_mysql() {
  local client line names=()
  client=$(command -v mariadb-dump || command -v mysqldump) || fail "no mysqldump on this host"
  line=$(mysql_option_password "$(local_password)")
  mapfile -t names < <(mysql_own_databases)
  timeout "${CLIENT_TIMEOUT}" "${client}" --defaults-extra-file=<(printf '[client]\nuser=root\n%s\n' "${line}") \
    "--socket=${mysql_socket}" --single-transaction --routines --events --triggers --databases "${names[@]}" \
    > "$1/databases.sql" || fail "could not dump its databases (${names[*]})" 5
}

discard_mysql() {
  local name sql=""
  while IFS= read -r name; do sql+="DROP DATABASE \`${name//\`/\`\`}\`;"; done < <(mysql_own_databases)
  printf '%s\n' "${sql}" | local_mysql -N -B
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
  discard_if_pending
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
