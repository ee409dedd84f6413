#!/usr/bin/env bash
# Neo4j in the backup programs:
# backup_neo4j for platform-backup; verify_neo4j for platform-restore-drill (a JVM engine is not restored).
# components/backups.py renders every engine's file between lib/backup_common.sh and each
# program's body; the program calls the function for the database's KIND.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the programs set pipefail and inherit_errexit, hold the
# variables and configuration (read_config) these functions use, and call them
ENGINES+=(neo4j)
BACKUP_EXT[neo4j]=tar

# Bounded wait for the engine's own health check after it was started again.
healthy_within() {  # seconds
  local deadline=$((SECONDS + $1))
  until podman healthcheck run "${NAME}" > /dev/null 2>&1; do
    [[ "${SECONDS}" -le "${deadline}" ]] || return 1
    sleep 2
  done
}

backup_neo4j() {
  local dumped=0 database
  work="${daily}/.tmp-${base}.d"
  mkdir -m 700 "${work}"
  chown 7474:7474 "${work}"  # the image's neo4j user writes the dumps
  # The maintenance window: neo4j-admin dumps a stopped database only (Community edition).
  echo "${NAME}: stopping ${SERVICE} for neo4j-admin database dump (it starts again right after)"
  systemctl stop "${SERVICE}"
  for database in neo4j system; do
    if timeout --kill-after=30 "${SAVE_TIMEOUT_S}" podman run --rm --name "${NAME}-backup" \
      "--memory=${MEMORY_MIB}m" "--memory-swap=${MEMORY_MIB}m" -e "HEAP_SIZE=${HEAP_MIB}m" \
      -v "${DATA_DIR}:/data:Z" -v "${work}:/backups:Z" "${IMAGE}" \
      neo4j-admin database dump "--to-path=/backups" "${database}"; then
      dumped=$((dumped + 1))
    else
      error="neo4j-admin database dump ${database} failed"
      break
    fi
  done
  systemctl start "${SERVICE}" || error="${error:+${error}; }${SERVICE} did not start again"
  # shellcheck disable=SC2310  # answered here
  healthy_within "${HEALTH_TIMEOUT_S}" || error="${error:+${error}; }${NAME} not healthy ${HEALTH_TIMEOUT_S}s after the dump"
  [[ -z "${error}" ]] || fail 5 "${error}"
  [[ -s "${work}/neo4j.dump" ]] || fail 5 "neo4j-admin wrote no neo4j.dump"
  tool=$(podman exec "${NAME}" neo4j-admin --version 2> /dev/null || echo neo4j-admin)
  tar -cf "${tmp}" -C "${work}" .
  checks[databases]=${dumped}
}

verify_neo4j() {  # why it is not restored
  verify_listing '^(\./)?neo4j\.dump$' "$1"
}
