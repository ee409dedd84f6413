#!/usr/bin/env bash
# PostgreSQL as a replication source (components/scripts/repl_source.sh renders it after lib/repl.sh):
# source_postgres: the replication user and settings on the source.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

# Tables whose UPDATE and DELETE a publication FOR ALL TABLES would make fail on the primary:
# no primary key and no other replica identity.
PG_NO_IDENTITY="SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ' ORDER BY 1)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND NOT c.relispartition
  AND (c.relreplident = 'n' OR (c.relreplident = 'd'
    AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)));"

source_postgres() {
  local state version databases database tables published refused=()
  version=$(run_sql "SHOW server_version_num;" container_psql postgres)
  [[ "${version}" -ge 140000 ]] || fail "PostgreSQL ${version} has no pg_read_all_data (needs 14 or later)" 4

  # The role: attributes and memberships read back; the password through the marker.
  state=$(run_sql "SELECT concat_ws(',', r.rolcanlogin, r.rolreplication, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
  r.rolbypassrls, pg_has_role(r.oid, 'pg_read_all_data', 'MEMBER'), pg_has_role(r.oid, 'pg_read_all_stats', 'MEMBER'))
FROM pg_roles r WHERE r.rolname = $(sql_literal "${REPL_USER}");" container_psql postgres)
  # shellcheck disable=SC2310  # applied_matches answers with its status
  if [[ "${state}" != "t,t,f,f,f,f,t,t" ]] || ! applied_matches "${marker}" "${REPL_USER}"$'\n'"${password}"; then
    run_sql "$(pg_login_role_sql "${REPL_USER}" "REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS" "${password}")
GRANT pg_read_all_data, pg_read_all_stats TO \"${REPL_USER}\";" container_psql postgres > /dev/null
    record_applied "${marker}" "${REPL_USER}"$'\n'"${password}"
    changes+=("role ${REPL_USER}: LOGIN REPLICATION, pg_read_all_data, pg_read_all_stats, password set")
  fi

  # A publication of every table in every database but the maintenance one.
  databases=$(run_sql "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate
  AND datname <> 'postgres' ORDER BY 1;" container_psql postgres)
  while IFS= read -r database; do
    [[ -n "${database}" ]] || continue
    tables=$(run_sql "${PG_NO_IDENTITY}" container_psql "${database}")
    published=$(run_sql "SELECT count(*) FROM pg_publication WHERE pubname = $(sql_literal "${PUBLICATION}") AND puballtables;" \
      container_psql "${database}")
    if [[ "${published}" == 1 ]]; then
      if [[ -n "${tables}" ]]; then
        echo "${NAME}: warning: in ${database}, UPDATE and DELETE fail on tables without a primary key" \
          "or replica identity: ${tables}" >&2
      fi
      continue
    fi
    if [[ -n "${tables}" ]]; then
      refused+=("${database} (${tables})")
      continue
    fi
    run_sql "CREATE PUBLICATION \"${PUBLICATION}\" FOR ALL TABLES;" container_psql "${database}" > /dev/null
    changes+=("publication ${PUBLICATION} in ${database}")
  done <<< "${databases}"

  source_pg_hba
  if [[ "${#refused[@]}" -gt 0 ]]; then
    report
    fail "no publication in: ${refused[*]}: a publication of every table would make UPDATE and DELETE on these fail. Give each a primary key (or ALTER TABLE ... REPLICA IDENTITY FULL), then run again" 6
  fi
}

# The managed block of pg_hba.conf (lib/repl.sh: pg_hba_block): the replication role over TLS from
# the peer only, and refused on every other connection.
source_pg_hba() {
  pg_hba_block "platform replication" "$(printf 'hostssl all %s %s/32 scram-sha-256' "${REPL_USER}" "${PEER}")
$(printf 'host all %s all reject' "${REPL_USER}")
$(printf 'local all %s reject' "${REPL_USER}")" \
    "${REPL_USER} over TLS (hostssl) from ${PEER}/32 only"
}
