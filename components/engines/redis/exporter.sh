#!/usr/bin/env bash
# Redis as its exporter's step (components/scripts/db_exporter.sh renders it after lib/repl.sh):
# exporter_redis: the exporter's user, and its credential file's content in ${credential}.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

exporter_redis() {
  check_redis_acl_user "${EXPORTER_USER}" "${password}" "-@all ${REDIS_COMMANDS}" "the exporter"
  credential=$(printf '{"%s": "%s"}' "${REDIS_URL}" "${password}")
}
