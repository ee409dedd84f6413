#!/usr/bin/env bash
# MySQL (and MariaDB) as its clients' step (components/scripts/db_clients.sh renders it after lib/repl.sh):
# clients_mysql: the former clients' users dropped; each client's user and database.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

clients_mysql() {
  local client account database grants create expected entry
  for entry in "${former[@]}"; do
    run_sql "SET SESSION sql_log_bin = 0;
DROP USER IF EXISTS $(sql_literal "${entry%@*}")@$(sql_literal "${entry#*@}");" container_mysql > /dev/null
    changes+=("user ${entry} dropped (no longer a client); its database kept as it is")
  done
  for client in ${CLIENTS}; do
    account="$(sql_literal "${client}")@$(sql_literal "${PEER}")"
    database=${client//-/_}
    grants=$(printf 'SHOW GRANTS FOR %s;\n' "${account}" | container_mysql 2>/dev/null || true)
    create=$(printf 'SHOW CREATE USER %s;\n' "${account}" | container_mysql 2>/dev/null || true)
    expected="${client}@${PEER}"$'\n'"${passwords[${client}]}"$'\n'"${PRIVILEGES}"
    # Its own database's grant and the USAGE every account has, nothing else; the password by the marker.
    # shellcheck disable=SC2310  # applied_matches answers with its status
    if [[ "$(grep -c '^GRANT ' <<< "${grants}" || true)" == 2 ]] \
      && grep -q "^GRANT .* ON \`${database}\`\\.\\* TO " <<< "${grants}" \
      && [[ "${create}" == *"REQUIRE SSL"* ]] \
      && applied_matches "${STATE_DIR}/clients/${NAME}.${client}" "${expected}"; then
      continue
    fi
    run_sql "CREATE DATABASE IF NOT EXISTS \`${database}\`;
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY $(sql_literal "${passwords[${client}]}") REQUIRE SSL;
ALTER USER ${account} IDENTIFIED BY $(sql_literal "${passwords[${client}]}") REQUIRE SSL;
REVOKE ALL PRIVILEGES, GRANT OPTION FROM ${account};
GRANT ${PRIVILEGES} ON \`${database}\`.* TO ${account};" container_mysql > /dev/null
    record_applied "${STATE_DIR}/clients/${NAME}.${client}" "${expected}"
    changes+=("user ${client}@${PEER}: ${PRIVILEGES} on ${database} only, REQUIRE SSL, password set")
  done
}
