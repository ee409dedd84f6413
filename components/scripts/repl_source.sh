#!/usr/bin/env bash
# A replication source on the Alibaba host, set up inside its container (podman exec) so that the
# peer, and only the peer, may replicate from it over verified TLS (the server certificate and CA
# come from repl_tls.sh; the replica checks them: TLS_VERIFY):
#   mysql     user REPL_USER@PEER with REPLICATION SLAVE only, REQUIRE SSL; made with sql_log_bin=0,
#             so neither the statement nor the user reaches the binary log and the replicas.
#   postgres  login role REPL_USER with REPLICATION, pg_read_all_data (the subscriber's first copy
#             of each table) and pg_read_all_stats (its lag, for the health check); a publication
#             PUBLICATION FOR ALL TABLES in every database but "postgres"; and at the top of
#             pg_hba.conf a managed block: hostssl for REPL_USER from PEER/32 (scram), the role
#             refused on any other connection, plaintext included.
#   redis     nothing to change here: the replication ACL user is in the engine's auth file, which
#             the container's own step installs (components/engines/redis.py: secret_content); this
#             checks that the running engine has it with this password and serves TLS only.
# Runs again without changing anything when the engine already is so ("unchanged"); replication
# itself is never restarted here.
#
# stdin: the replication password (components/replication.py: source_stdin).
# A MySQL password is compared through a salted digest in STATE_DIR/replication/NAME.source (the
# engine keeps only a hash it cannot be compared with); a changed one is set again.
# Parameters: NAME, KIND, PEER, REPL_USER, SECRET_FILE, PG_SUPERUSER, PUBLICATION, STATE_DIR,
# TLS_VERIFY, CA_FILE.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
# shellcheck disable=SC2312  # substitutions quote a value or read output that the next line checks
set -euo pipefail
umask 077

password=""
IFS= read -r -d '' password || true
password=${password%$'\n'}
check_password "replication password" "${password}"
[[ -s "${CA_FILE}" ]] || fail "no CA at ${CA_FILE}: the TLS step writes it before the sources are set up" 4
marker="${STATE_DIR}/replication/${NAME}.source"
changes=()

source_mysql() {
  local account grants create expected others
  account="$(sql_literal "${REPL_USER}")@$(sql_literal "${PEER}")"
  grants=$(printf 'SHOW GRANTS FOR %s;\n' "${account}" | container_mysql 2>/dev/null || true)
  create=$(printf 'SHOW CREATE USER %s;\n' "${account}" | container_mysql 2>/dev/null || true)
  local only_replication=0
  if [[ "$(grep -c '^GRANT ' <<< "${grants}" || true)" == 1 ]] \
    && grep -Eq '^GRANT REPLICATION (SLAVE|REPLICA) ON \*\.\* TO ' <<< "${grants}"; then
    only_replication=1
  fi
  expected="${REPL_USER}@${PEER}"$'\n'"${password}"
  # shellcheck disable=SC2310  # applied_matches answers with its status
  if [[ "${only_replication}" == 1 && "${create}" == *"REQUIRE SSL"* ]] && applied_matches "${marker}" "${expected}"; then
    return 0
  fi
  # REVOKE then GRANT: whatever else the user was given goes; the password is set again (the
  # engine keeps a hash that cannot be compared).
  run_sql "SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY $(sql_literal "${password}") REQUIRE SSL;
ALTER USER ${account} IDENTIFIED BY $(sql_literal "${password}") REQUIRE SSL;
REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${account};
GRANT REPLICATION SLAVE ON *.* TO ${account};" container_mysql > /dev/null
  record_applied "${marker}" "${expected}"
  changes+=("user ${REPL_USER}@${PEER}: REPLICATION SLAVE only, REQUIRE SSL, password set")
  others=$(run_sql "SELECT GROUP_CONCAT(Host) FROM mysql.user WHERE User = $(sql_literal "${REPL_USER}") AND Host <> $(sql_literal "${PEER}");" container_mysql)
  if [[ -n "${others}" && "${others}" != NULL ]]; then
    echo "${NAME}: warning: ${REPL_USER} also exists for ${others} (not made by this platform; left as it is)" >&2
  fi
}

pg_role_sql() {
  local role
  role="\"${REPL_USER}\""
  printf '%s\n' "SET log_statement = 'none';
SET log_min_error_statement = 'panic';
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = $(sql_literal "${REPL_USER}")) THEN CREATE ROLE ${role}; END IF;
END \$\$;
ALTER ROLE ${role} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD $(sql_literal "${password}");
GRANT pg_read_all_data, pg_read_all_stats TO ${role};"
}

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
    run_sql "$(pg_role_sql)" container_psql postgres > /dev/null
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

# Inside the container: stdin replaces file $1 through a copy beside it that keeps its owner and mode.
# shellcheck disable=SC2016  # expanded by the container's shell
WRITE_IN_PLACE='cp -p "$1" "$1.platform" && cat > "$1.platform" && mv -f "$1.platform" "$1"'

# The managed block at the top of pg_hba.conf (first match wins): the replication role over TLS
# from the peer only, and refused on every other connection.
source_pg_hba() {
  local hba current rest block line in_block=0 wanted errors
  hba=$(run_sql "SHOW hba_file;" container_psql postgres)
  current=$(timeout "${CLIENT_TIMEOUT}" podman exec --user postgres "${NAME}" cat "${hba}" && printf x) \
    || fail "cannot read ${hba} in ${NAME}" 5
  current=${current%x}
  block="# BEGIN platform replication (managed by Pulumi: edits inside are overwritten)
$(printf 'hostssl all %s %s/32 scram-sha-256' "${REPL_USER}" "${PEER}")
$(printf 'host all %s all reject' "${REPL_USER}")
$(printf 'local all %s reject' "${REPL_USER}")
# END platform replication"
  rest=""
  while IFS= read -r line; do
    if [[ "${line}" == "# BEGIN platform replication"* ]]; then in_block=1; continue; fi
    if [[ "${in_block}" == 1 ]]; then
      [[ "${line}" != "# END platform replication"* ]] || in_block=0
      continue
    fi
    rest+="${line}"$'\n'
  done <<< "${current%$'\n'}"
  wanted="${block}"$'\n'"${rest}"
  [[ "${wanted}" != "${current}" ]] || return 0
  printf '%s' "${wanted}" | timeout "${CLIENT_TIMEOUT}" podman exec -i --user postgres "${NAME}" sh -c \
    "${WRITE_IN_PLACE}" sh "${hba}"
  run_sql "SELECT pg_reload_conf();" container_psql postgres > /dev/null
  errors=$(run_sql "SELECT string_agg(line_number || ': ' || error, '; ') FROM pg_hba_file_rules WHERE error IS NOT NULL;" \
    container_psql postgres)
  if [[ -n "${errors}" ]]; then
    printf '%s' "${current}" | timeout "${CLIENT_TIMEOUT}" podman exec -i --user postgres "${NAME}" sh -c \
      "${WRITE_IN_PLACE}" sh "${hba}"
    run_sql "SELECT pg_reload_conf();" container_psql postgres > /dev/null
    fail "pg_hba.conf with the replication block has errors (${errors}); the previous one is back" 5
  fi
  changes+=("pg_hba.conf: ${REPL_USER} over TLS (hostssl) from ${PEER}/32 only")
}

source_redis() {
  local port tls_port
  check_redis_acl_user "${REPL_USER}" "${password}" "-@all +psync +replconf +ping" replication
  port=$(printf 'CONFIG GET port\n' | container_redis)
  tls_port=$(printf 'CONFIG GET tls-port\n' | container_redis)
  port=${port##*$'\n'} tls_port=${tls_port##*$'\n'}
  if [[ "${port}" != 0 || "${tls_port}" == 0 || -z "${tls_port}" ]]; then
    fail "the engine serves plaintext (port ${port}, tls-port ${tls_port:-none}): its unit must be rendered with its TLS directory" 4
  fi
}

report() {
  local change
  for change in "${changes[@]}"; do echo "${NAME}: ${change}"; done
}

case "${KIND}" in
  mysql) source_mysql ;;
  postgres) source_postgres ;;
  redis) source_redis ;;
  *) fail "${KIND} cannot replicate across clouds" 2 ;;
esac
report
if [[ "${#changes[@]}" == 0 ]]; then
  echo "${NAME}: unchanged (replication source for ${PEER} over TLS)"
else
  echo "${NAME}: updated"
fi
