#!/usr/bin/env bash
# A database exporter's own user inside the database's container (podman exec, as the replication
# source's user is made), allowed what its metrics need and nothing more:
#   mysql     EXPORTER_USER@'%' with PROCESS, REPLICATION CLIENT on *.* and SELECT on
#             performance_schema, at most CONNECTIONS connections; made with sql_log_bin=0, so
#             it never reaches the replicas. '%': the exporter reaches the container through
#             Podman's published port, from the bridge's address rather than 127.0.0.1.
#   postgres  login role EXPORTER_USER, member of pg_monitor only, CONNECTION LIMIT CONNECTIONS.
#   redis     nothing to change: the ACL user is in the engine's auth file, which the container's
#             own step installs (components/engines/redis: secret_content); this checks that the
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
# shellcheck disable=SC2034  # read by exporter_<kind> (components/engines/<kind>/exporter.sh)
marker="${STATE_DIR}/monitoring/${NAME}.exporter"
changes=()

# The engine's own part (components/engines/<kind>/exporter.sh, rendered above this body): the
# exporter's user in the database, and the credential file's content in ${credential}.
declare -F "exporter_${KIND}" > /dev/null || fail "${KIND} has no exporter (mysql, postgres and redis have)" 2
credential=""
"exporter_${KIND}"

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
