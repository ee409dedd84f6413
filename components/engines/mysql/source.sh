#!/usr/bin/env bash
# MySQL (and MariaDB) as a replication source (components/scripts/repl_source.sh renders it after lib/repl.sh):
# source_mysql: the replication user and settings on the source.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

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
