#!/usr/bin/env bash
# PostgreSQL as its exporter's step (components/scripts/db_exporter.sh renders it after lib/repl.sh):
# exporter_postgres: the exporter's user, and its credential file's content in ${credential}.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

exporter_postgres() {
  local role state expected
  credential=${password}
  role="\"${EXPORTER_USER}\""
  state=$(run_sql "SELECT concat_ws(',', r.rolcanlogin, r.rolsuper, r.rolreplication, r.rolcreatedb, r.rolcreaterole,
  r.rolbypassrls, r.rolconnlimit, pg_has_role(r.oid, 'pg_monitor', 'MEMBER'),
  (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid))
FROM pg_roles r WHERE r.rolname = $(sql_literal "${EXPORTER_USER}");" container_psql postgres)
  expected="${EXPORTER_USER}"$'\n'"${password}"
  # shellcheck disable=SC2310  # applied_matches answers with its status
  if [[ "${state}" == "t,f,f,f,f,f,${CONNECTIONS},t,1" ]] && applied_matches "${marker}" "${expected}"; then
    return 0
  fi
  # The statement holds the password, so nothing of it may reach the server's log.
  run_sql "SET log_statement = 'none';
SET log_min_error_statement = 'panic';
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = $(sql_literal "${EXPORTER_USER}")) THEN CREATE ROLE ${role}; END IF;
END \$\$;
ALTER ROLE ${role} WITH LOGIN NOSUPERUSER NOREPLICATION NOCREATEDB NOCREATEROLE NOBYPASSRLS
  CONNECTION LIMIT ${CONNECTIONS} PASSWORD $(sql_literal "${password}");
GRANT pg_monitor TO ${role};" container_psql postgres > /dev/null
  record_applied "${marker}" "${expected}"
  changes+=("role ${EXPORTER_USER}: pg_monitor only, password set")
}
