#!/usr/bin/env bash
# Retire a database (platform:retired.databases): stop its container (the Quadlet unit's stop
# removes the container, never a volume), remove its unit, its secret (file and Podman secret),
# its healthy-unit record and the markers of the ports it held. Its data directory stays unless
# the retired entry says purge: true; a DATA_DIR to purge that is not strictly below DATA_ROOT is
# refused before anything changes. Safe to run again: with nothing left to remove it says so.
# Only what the platform deployed is retired: a running NAME.service without the platform's own
# Quadlet file behind it (sshd, a packaged engine, a hand-made container) is refused, unchanged.
# Parameters: NAME, UNIT_FILE, SECRET_FILE, DATA_ROOT, DATA_DIR, STATE_DIR, PURGE.
# Stops: ${NAME}.service, the Podman secret ${NAME}
# Removes: ${UNIT_FILE}, ${SECRET_FILE}, ${STATE_DIR}/healthy/${NAME}.container, ${STATE_DIR}/ports/*
# Removes: ${DATA_DIR} if PURGE
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

if [[ "${PURGE}" == 1 ]]; then assert_under "${DATA_ROOT}" "${DATA_DIR}"; fi
managed="# Managed by Pulumi (platform plan)"
if [[ -e "${UNIT_FILE}" ]] && ! head -n 1 -- "${UNIT_FILE}" | grep -qF -- "${managed}"; then
  echo "${NAME}: ${UNIT_FILE} was not written by the platform; refusing to retire it (nothing changed)" >&2
  exit 3
fi
if [[ ! -e "${UNIT_FILE}" ]] && systemctl is-active --quiet "${NAME}.service"; then
  echo "${NAME}: ${NAME}.service runs, but the platform never deployed it (no ${UNIT_FILE}); refusing to stop it" \
    "(nothing changed)" >&2
  exit 3
fi

changes=0
if systemctl is-active --quiet "${NAME}.service"; then
  systemctl stop "${NAME}.service"
  changes=$((changes + 1))
fi
if [[ -e "${UNIT_FILE}" ]]; then
  rm -f -- "${UNIT_FILE}"
  systemctl daemon-reload  # the generated $NAME.service goes with its .container file
  changes=$((changes + 1))
fi
if podman secret inspect "${NAME}" >/dev/null 2>&1; then
  podman secret rm "${NAME}" >/dev/null
  changes=$((changes + 1))
fi
doomed=("${SECRET_FILE}" "${STATE_DIR}/healthy/${NAME}.container")
# A port marker names the workload that holds the port (db_container.sh wrote it).
for marker in "${STATE_DIR}"/ports/*; do
  [[ -f "${marker}" ]] || continue
  owner=$(< "${marker}")
  if [[ "${owner}" == "${NAME}" ]]; then doomed+=("${marker}"); fi
done
for path in "${doomed[@]}"; do
  if [[ -e "${path}" ]]; then
    rm -f -- "${path}"
    changes=$((changes + 1))
  fi
done
if [[ "${PURGE}" == 1 && -e "${DATA_DIR}" ]]; then
  # Checked above, before anything changed: DATA_DIR lies strictly below DATA_ROOT.
  rm -rf -- "${DATA_DIR}"
  changes=$((changes + 1))
fi

if [[ "${changes}" == 0 ]]; then
  echo "${NAME}: unchanged (already retired)"
elif [[ "${PURGE}" == 1 ]]; then
  echo "${NAME}: retired, data purged"
else
  echo "${NAME}: retired, data kept in ${DATA_DIR}"
fi
