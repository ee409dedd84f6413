#!/usr/bin/env bash
# Elasticsearch (the engine writes its snapshot into its data volume) in the backup programs:
# backup_elasticsearch for platform-backup; verify_elasticsearch for platform-restore-drill.
# components/backups.py renders every engine's file between lib/backup_common.sh and each
# program's body; the program calls the function for the database's KIND.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the programs set pipefail and inherit_errexit, hold the
# variables and configuration (read_config) these functions use, and call them
ENGINES+=(elasticsearch)
BACKUP_EXT[elasticsearch]=tar

# The Elasticsearch API from inside the container, the elastic user's password in curl's config on stdin.
es_api() {  # method path [body]
  local -a body=()
  local secret
  [[ $# -lt 3 ]] || body=(-H 'Content-Type: application/json' --data-binary "$3")
  secret_escaped secret
  printf 'user = "%s:%s"\n' "${DB_USER}" "${secret}" \
    | podman exec -i "${NAME}" curl -sS -f --max-time "${SAVE_TIMEOUT_S}" -K - -X "$1" "${body[@]}" \
      "http://127.0.0.1:9200$2"
}

# shellcheck disable=SC2310  # each API call's failure is answered where it is made
backup_elasticsearch() {
  local snapshot="platform-${stamp,,}" answer repository
  in_volume repository "${ES_SNAPSHOT_PATH}"
  es_api PUT /_snapshot/platform "{\"type\": \"fs\", \"settings\": {\"location\": \"${ES_SNAPSHOT_PATH}\"}}" > /dev/null \
    || fail 5 "the snapshot repository could not be registered (path.repo ${ES_SNAPSHOT_PATH})"
  answer=$(es_api PUT "/_snapshot/platform/${snapshot}?wait_for_completion=true" '{"include_global_state": true}') \
    || fail 5 "the snapshot API failed"
  [[ "${answer}" == *'"state":"SUCCESS"'* ]] || fail 5 "snapshot ${snapshot} did not succeed: ${answer:0:300}"
  tool=$(es_api GET / | sed -n 's/.*"number" *: *"\([^"]*\)".*/elasticsearch \1/p' | head -n 1) || true
  checks[shards]=$(sed -n 's/.*"shards":{"total":\([0-9]*\).*/\1/p' <<< "${answer}")
  tar -cf "${tmp}" -C "${repository}" .
  # One snapshot in the repository at a time, so each archive is complete on its own.
  es_api DELETE "/_snapshot/platform/${snapshot}" > /dev/null || echo "${NAME}: could not delete snapshot ${snapshot}" >&2
}

verify_elasticsearch() {  # why it is not restored
  verify_listing '^(\./)?index-[0-9]+$' "$1"
}
