#!/usr/bin/env bash
# Retire a service (platform:retired.services): stop and disable its unit, remove the unit, its
# releases, its credentials, its uploads and the marker of the port it held. Safe to run again: with nothing left to remove it
# changes nothing and says so. A SERVICE_DIR that is not strictly below SERVICES_ROOT is refused
# before anything changes.
# Parameters: NAME, SERVICES_ROOT, SERVICE_DIR, UNIT_FILE, UNIT_NAME, STATE_DIR, SECRETS_ROOT,
# CREDENTIALS_DIR, UPLOADS_ROOT, UPLOADS_DIR.
# Stops: ${UNIT_NAME}
# Removes: ${UNIT_FILE}, ${SERVICE_DIR}, ${CREDENTIALS_DIR}, ${UPLOADS_DIR}, ${STATE_DIR}/ports/*
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

assert_under "${SERVICES_ROOT}" "${SERVICE_DIR}"  # its releases are deleted below
assert_under "${SECRETS_ROOT}" "${CREDENTIALS_DIR}"  # and its credentials
assert_under "${UPLOADS_ROOT}" "${UPLOADS_DIR}"  # and its uploads

changes=0
if systemctl is-active --quiet "${UNIT_NAME}"; then
  systemctl stop "${UNIT_NAME}"
  changes=$((changes + 1))
fi
if systemctl is-enabled --quiet "${UNIT_NAME}" 2>/dev/null; then
  systemctl disable --quiet "${UNIT_NAME}"
  changes=$((changes + 1))
fi
if [[ -e "${UNIT_FILE}" ]]; then
  rm -f -- "${UNIT_FILE}"
  systemctl daemon-reload
  changes=$((changes + 1))
fi
# Checked above, before anything changed: each lies strictly below its root. One line per
# directory, so the policy pack reads what each removal targets (data-protection).
if [[ -e "${SERVICE_DIR}" ]]; then
  rm -rf -- "${SERVICE_DIR}"
  changes=$((changes + 1))
fi
if [[ -e "${CREDENTIALS_DIR}" ]]; then
  rm -rf -- "${CREDENTIALS_DIR}"
  changes=$((changes + 1))
fi
if [[ -e "${UPLOADS_DIR}" ]]; then
  rm -rf -- "${UPLOADS_DIR}"
  changes=$((changes + 1))
fi
# A port marker names the workload that holds the port (svc_deploy.sh wrote it).
for marker in "${STATE_DIR}"/ports/*; do
  [[ -f "${marker}" ]] || continue
  owner=$(< "${marker}")
  if [[ "${owner}" == "${NAME}" ]]; then
    rm -f -- "${marker}"
    changes=$((changes + 1))
  fi
done
if [[ "${changes}" == 0 ]]; then
  echo "${NAME}: unchanged (already retired)"
else
  echo "${NAME}: retired (unit stopped and disabled, releases, credentials and uploads deleted)"
fi
