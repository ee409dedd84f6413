#!/usr/bin/env bash
# A database exporter's own user inside the database's container (podman exec, as the replication
# source's user is made), allowed what its metrics need and nothing more:
#   mysql     EXPORTER_USER@'%' with PROCESS, REPLICATION CLIENT on *.* and SELECT on
#             performance_schema, at most CONNECTIONS connections; made with sql_log_bin=0, so
#             it never reaches the replicas. '%': the exporter reaches the container through
#             Podman's published port, from the bridge's address rather than 127.0.0.1.
#   postgres  login role EXPORTER_USER, member of pg_monitor only, CONNECTION LIMIT CONNECTIONS.
#   redis     nothing to change: the ACL user is in the engine's auth file, which the container's
#             own step installs (components/engines/redis.py: secret_content); this checks that the
#             running engine has it, enabled, with this password and REDIS_COMMANDS only.
# Then the exporter's credential file (CREDENTIAL_FILE, 0600 root, handed to the exporter by
# LoadCredential=): a MySQL option file, the PostgreSQL password, or redis_exporter's JSON map of
# address to password. A changed file restarts the exporter (UNIT) when it runs.
# Runs again without changing anything when all is so ("unchanged").
#
# stdin: the exporter's password (components/exporters.py: exporter_password, 64 hex characters).
# Parameters: NAME, KIND, EXPORTER_USER, CONNECTIONS, SECRET_FILE, PG_SUPERUSER, STATE_DIR, PORT,
# REDIS_URL, REDIS_COMMANDS, CREDENTIAL_FILE, UNIT.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
# shellcheck disable=SC2312  # substitutions quote a value or read output that the next line checks
set -euo pipefail
umask 077

password=""
IFS= read -r -d '' password || true
password=${password%$'\n'}
[[ "${password}" =~ ^[0-9a-f]{64}$ ]] || fail "the exporter's password on stdin is not 64 hex characters" 2
marker="${STATE_DIR}/monitoring/${NAME}.exporter"
changes=()

exporter_mysql() {
  local account grants expected
  account="$(sql_literal "${EXPORTER_USER}")@'%'"
  grants=$(printf 'SHOW GRANTS FOR %s;\n' "${account}" | container_mysql 2>/dev/null || true)
  expected="${EXPORTER_USER}"$'\n'"${password}"$'\n'"${CONNECTIONS}"
  # shellcheck disable=SC2310  # applied_matches answers with its status
  if [[ "$(grep -c '^GRANT ' <<< "${grants}" || true)" == 2 ]] \
    && grep -Eq '^GRANT (PROCESS, (REPLICATION CLIENT|BINLOG MONITOR)|PROCESS, SLAVE MONITOR, BINLOG MONITOR) ON \*\.\* TO ' <<< "${grants}" \
    && grep -q '^GRANT SELECT ON .performance_schema.\.\* TO ' <<< "${grants}" \
    && applied_matches "${marker}" "${expected}"; then
    return 0
  fi
  run_sql "SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY $(sql_literal "${password}");
ALTER USER ${account} IDENTIFIED BY $(sql_literal "${password}") WITH MAX_USER_CONNECTIONS ${CONNECTIONS};
REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${account};
GRANT PROCESS, REPLICATION CLIENT ON *.* TO ${account};
GRANT SELECT ON performance_schema.* TO ${account};" container_mysql > /dev/null
  record_applied "${marker}" "${expected}"
  changes+=("user ${EXPORTER_USER}: PROCESS, REPLICATION CLIENT, SELECT on performance_schema, password set")
}

exporter_postgres() {
  local role state expected
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

exporter_redis() {
  check_redis_acl_user "${EXPORTER_USER}" "${password}" "-@all ${REDIS_COMMANDS}" "the exporter"
}

case "${KIND}" in
  mysql)
    exporter_mysql
    option=$(mysql_option_password "${password}")
    credential=$(printf '[client]\nuser=%s\n%s\nhost=127.0.0.1\nport=%s\n' "${EXPORTER_USER}" "${option}" "${PORT}")
    ;;
  postgres)
    exporter_postgres
    credential=${password}
    ;;
  redis)
    exporter_redis
    credential=$(printf '{"%s": "%s"}' "${REDIS_URL}" "${password}")
    ;;
  *) fail "${KIND} has no exporter (mysql, postgres and redis have)" 2 ;;
esac

[[ -d "${CREDENTIAL_FILE%/*}" ]] || mkdir -p "${CREDENTIAL_FILE%/*}"
if [[ ! -f "${CREDENTIAL_FILE}" ]] || ! cmp -s "${CREDENTIAL_FILE}" <(printf '%s\n' "${credential}"); then
  tmp=$(mktemp "${CREDENTIAL_FILE}.XXXXXX")
  printf '%s\n' "${credential}" > "${tmp}"
  mv -f "${tmp}" "${CREDENTIAL_FILE}"
  changes+=("${CREDENTIAL_FILE} written")
  # shellcheck disable=SC2310  # is-active answers with its status
  if systemctl is-active --quiet "${UNIT}"; then
    systemctl restart "${UNIT}"
    changes+=("${UNIT} restarted with it")
  fi
fi

for change in "${changes[@]}"; do echo "${NAME}: ${change}"; done
[[ "${#changes[@]}" != 0 ]] || echo "${NAME}: unchanged (exporter user ${EXPORTER_USER})"
