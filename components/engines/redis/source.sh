#!/usr/bin/env bash
# Redis as a replication source (components/scripts/repl_source.sh renders it after lib/repl.sh):
# source_redis: the replication user and settings on the source.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the step's parameters and variables, set -euo pipefail, and its call

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
