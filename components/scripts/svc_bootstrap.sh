#!/usr/bin/env bash
# Application host bootstrap: the tools the deploys use and the directories they install into.
# Parameters: SERVICES_ROOT, UNIT_DIR, STATE_DIR.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

for tool in curl tar sha256sum systemctl; do
  command -v "${tool}" >/dev/null 2>&1 || { echo "bootstrap: ${tool} is required on the host" >&2; exit 4; }
done

changes=0
for dir in "${SERVICES_ROOT}" "${UNIT_DIR}" "${STATE_DIR}/ports"; do
  if [[ ! -d "${dir}" ]]; then
    mkdir -p "${dir}"
    echo "bootstrap: created ${dir}"
    changes=$((changes + 1))
  fi
done
if [[ "${changes}" = 0 ]]; then
  echo "bootstrap: unchanged"
else
  echo "bootstrap: ${changes} change(s)"
fi
