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
  run_sql "$(pg_login_role_sql "${EXPORTER_USER}" \
    "NOSUPERUSER NOREPLICATION NOCREATEDB NOCREATEROLE NOBYPASSRLS CONNECTION LIMIT ${CONNECTIONS}" "${password}")
GRANT pg_monitor TO ${role};" container_psql postgres > /dev/null
  record_applied "${marker}" "${expected}"
  changes+=("role ${EXPORTER_USER}: pg_monitor only, password set")
}
