#!/usr/bin/env bash
# The services' reverse proxy: nginx's server blocks for the plan's routes (CONF_CONTENT) in
# CONF_FILE, checked with `nginx -t` before nginx reloads it. A configuration nginx refuses is
# taken back (the previous file, or none) and the command fails with nginx's own words, so the
# running proxy never changes to a broken one. Running it again with nothing changed does nothing.
# Parameters: CONF_FILE, CONF_CONTENT, NGINX_UNIT.
# Removes: ${CONF_FILE}
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

command -v nginx >/dev/null 2>&1 || { echo "proxy: nginx is not installed on the host" >&2; exit 4; }

if [[ -f "${CONF_FILE}" ]] && cmp -s "${CONF_FILE}" <(printf '%s' "${CONF_CONTENT}"); then
  echo "proxy: unchanged"
  exit 0
fi

previous=""
if [[ -f "${CONF_FILE}" ]]; then
  previous=$(mktemp)
  cp -p "${CONF_FILE}" "${previous}"
fi
# shellcheck disable=SC2064  # the file is fixed now
trap "rm -f -- '${previous}'" EXIT

mkdir -p "${CONF_FILE%/*}"
tmp=$(mktemp "${CONF_FILE}.XXXXXX")
printf '%s' "${CONF_CONTENT}" > "${tmp}"
chmod 644 "${tmp}"
mv -f "${tmp}" "${CONF_FILE}"

put_back() {
  if [[ -n "${previous}" ]]; then cp -p "${previous}" "${CONF_FILE}"; else rm -f -- "${CONF_FILE}"; fi
}

if ! checked=$(nginx -t 2>&1); then
  put_back
  echo "proxy: nginx refused the new configuration, the previous one is back: ${checked//$'\n'/ }" >&2
  exit 9
fi
if ! systemctl reload "${NGINX_UNIT}"; then
  put_back
  systemctl reload "${NGINX_UNIT}" || true
  echo "proxy: systemctl reload ${NGINX_UNIT} failed (is nginx running?); the previous configuration is back" >&2
  exit 9
fi
echo "proxy: ${CONF_FILE} written, nginx reloaded"
