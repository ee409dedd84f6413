#!/usr/bin/env bash
# PostgreSQL as its clients' step (components/scripts/db_clients.sh renders it after lib/repl.sh):
# clients_postgres: the former clients' logins taken away; each client's role and database; the
# managed pg_hba.conf block that lets each in, over TLS from the peer, to its own database only.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

clients_postgres() {
  local client role database state expected entry lines="" refusals=""
  for entry in "${former[@]}"; do
    [[ " ${CLIENTS} " != *" ${entry%@*} "* ]] || continue  # the same client from a new peer: its role stays
    run_sql "ALTER ROLE \"${entry%@*}\" NOLOGIN;" container_psql postgres > /dev/null
    changes+=("role ${entry%@*}: NOLOGIN (no longer a client); its database kept as it is")
  done
  for client in ${CLIENTS}; do
    role="\"${client}\""
    database=${client//-/_}
    # Login and no other attribute, no memberships, owner of its database, which PUBLIC may not enter.
    state=$(run_sql "SELECT concat_ws(',', r.rolcanlogin, r.rolsuper, r.rolreplication, r.rolcreatedb, r.rolcreaterole,
  r.rolbypassrls, (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid),
  (SELECT d.datdba = r.oid AND NOT has_database_privilege('public', d.oid, 'CONNECT')
   FROM pg_database d WHERE d.datname = $(sql_literal "${database}")))
FROM pg_roles r WHERE r.rolname = $(sql_literal "${client}");" container_psql postgres)
    expected="${client}"$'\n'"${passwords[${client}]}"
    lines+="hostssl \"${database}\" \"${client}\" ${PEER}/32 scram-sha-256"$'\n'
    refusals+="host all \"${client}\" all reject"$'\n'"local all \"${client}\" reject"$'\n'
    # shellcheck disable=SC2310  # applied_matches answers with its status
    if [[ "${state}" == "t,f,f,f,f,f,0,t" ]] && applied_matches "${STATE_DIR}/clients/${NAME}.${client}" "${expected}"; then
      continue
    fi
    run_sql "$(pg_login_role_sql "${client}" "NOSUPERUSER NOREPLICATION NOCREATEDB NOCREATEROLE NOBYPASSRLS" \
      "${passwords[${client}]}")" container_psql postgres > /dev/null
    if [[ -z "$(run_sql "SELECT 1 FROM pg_database WHERE datname = $(sql_literal "${database}");" container_psql postgres)" ]]; then
      run_sql "CREATE DATABASE \"${database}\" OWNER ${role};" container_psql postgres > /dev/null
      changes+=("database ${database} made, owned by ${client}")
    fi
    run_sql "ALTER DATABASE \"${database}\" OWNER TO ${role};
REVOKE ALL ON DATABASE \"${database}\" FROM PUBLIC;" container_psql postgres > /dev/null
    record_applied "${STATE_DIR}/clients/${NAME}.${client}" "${expected}"
    changes+=("role ${client}: LOGIN only, owner of ${database}, which PUBLIC may not enter; password set")
  done
  pg_hba_block "platform clients" "${lines}${refusals%$'\n'}" \
    "clients over TLS (hostssl) from ${PEER}/32, each to its own database only: ${CLIENTS:-none}"
}
