#!/usr/bin/env bash
# PostgreSQL as a replica (components/scripts/repl_replica.sh renders it after lib/repl.sh):
# replica_postgres: the engine follows its source over verified TLS.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

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

pg_has_database() {
  [[ "$(echo "SELECT count(*) FROM pg_database WHERE datname = $(sql_literal "${DATABASE}");" | local_psql postgres)" != 0 ]]
}

# Whether the engine already follows this source (then nothing is guarded: it holds the source's data).
following_postgres() {
  find_postgres
  # shellcheck disable=SC2310  # pg_has_database answers with its status
  pg_has_database || return 1
  [[ -n "$(echo "SELECT 1 FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname =
    current_database() AND s.subname = $(sql_literal "${SUBSCRIPTION}");" | local_psql "${DATABASE}")" ]]
}

# DATABASE's tables that hold rows (the first sync copies the source's rows into them).
pg_tables_with_rows() {
  local table tables
  # shellcheck disable=SC2310  # pg_has_database answers with its status
  pg_has_database || return 0
  tables=$(echo "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1;" | local_psql "${DATABASE}")
  while IFS= read -r table; do
    [[ -n "${table}" ]] || continue
    if [[ "$(echo "SELECT EXISTS (SELECT 1 FROM ${table});" | local_psql "${DATABASE}")" == t ]]; then printf '%s\n' "${table}"; fi
  done <<< "${tables}"
}

# What it holds of its own: rows in DATABASE's tables (its other databases are left as they are).
holds_postgres() {
  local tables
  tables=$(pg_tables_with_rows)
  [[ -z "${tables}" ]] || printf 'rows in %s: %s' "${DATABASE}" "$(paste -sd, <<< "${tables}" | sed 's/,/, /g')"
}

# DATABASE in PostgreSQL's custom format in $1 (pg_restore reads it).
dump_postgres() {
  local runuser
  runuser=$(PATH="${PATH}:/usr/sbin:/sbin" command -v runuser) || fail "runuser (util-linux) is missing"
  (cd / && timeout "${CLIENT_TIMEOUT}" "${runuser}" -u "${pg_os_user}" -- pg_dump -Fc -h "${pg_socket_dir}" -p "${PORT}" \
    -d "${DATABASE}") > "$1/${DATABASE}.pgdump" || fail "could not dump ${DATABASE}" 5
}

discard_postgres() {
  local tables
  tables=$(pg_tables_with_rows)
  [[ -z "${tables}" ]] || echo "TRUNCATE $(paste -sd, <<< "${tables}") CASCADE;" | local_psql "${DATABASE}"
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
    discard_if_pending
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
