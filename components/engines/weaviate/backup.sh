#!/usr/bin/env bash
# Weaviate (the engine writes its backup into its data volume) in the backup programs:
# backup_weaviate for platform-backup; verify_weaviate for platform-restore-drill.
# components/backups.py renders every engine's file between lib/backup_common.sh and each
# program's body; the program calls the function for the database's KIND.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the programs set pipefail and inherit_errexit, hold the
# variables and configuration (read_config) these functions use, and call them
ENGINES+=(weaviate)
BACKUP_EXT[weaviate]=tar

# The Weaviate API on its published port, the API key in curl's config on stdin.
weaviate_api() {  # method path [body]
  local -a body=()
  local secret
  [[ $# -lt 3 ]] || body=(-H 'Content-Type: application/json' --data-binary "$3")
  secret_escaped secret
  printf 'header = "Authorization: Bearer %s"\n' "${secret}" \
    | curl -sS -f --max-time 60 -K - -X "$1" "${body[@]}" "http://127.0.0.1:${API_PORT}/v1$2"
}

# shellcheck disable=SC2310  # each API call's failure is answered where it is made
backup_weaviate() {
  local id="platform-${stamp,,}" answer deadline written module_dir
  answer=$(weaviate_api POST /backups/filesystem "{\"id\": \"${id}\"}") || fail 5 "the backup API failed"
  deadline=$((SECONDS + SAVE_TIMEOUT_S))
  until [[ "${answer}" == *'"status":"SUCCESS"'* ]]; do
    [[ "${answer}" != *'"status":"FAILED"'* ]] || fail 5 "backup ${id} failed: ${answer:0:300}"
    [[ "${SECONDS}" -lt "${deadline}" ]] || fail 5 "backup ${id} did not finish within ${SAVE_TIMEOUT_S}s"
    sleep 2
    answer=$(weaviate_api GET "/backups/filesystem/${id}") || fail 5 "the backup status API failed"
  done
  in_volume written "${WEAVIATE_BACKUP_PATH}/${id}"
  in_volume module_dir "${WEAVIATE_BACKUP_PATH}"
  tar -cf "${tmp}" -C "${written}" .
  tool=weaviate
  checks[classes]=$(grep -o '"classes":\[[^]]*\]' <<< "${answer}" | grep -o '"[^"]*"' | grep -vc '"classes"' || true)
  # The module keeps every backup it wrote; the archive holds this one now.
  assert_under "${module_dir}" "${written}"
  rm -rf -- "${written}"
}

verify_weaviate() {  # why it is not restored
  verify_listing '.' "$1"
}
