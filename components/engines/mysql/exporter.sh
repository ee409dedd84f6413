#!/usr/bin/env bash
# MySQL (and MariaDB) as its exporter's step (components/scripts/db_exporter.sh renders it after lib/repl.sh):
# exporter_mysql: the exporter's user, and its credential file's content in ${credential}.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

exporter_mysql() {
  local account grants expected option
  option=$(mysql_option_password "${password}")
  credential=$(printf '[client]\nuser=%s\n%s\nhost=127.0.0.1\nport=%s\n' "${EXPORTER_USER}" "${option}" "${PORT}")
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
