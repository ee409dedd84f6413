#!/usr/bin/env bash
# The metrics tunnel's login on the scraped host (components/metrics_tunnel.py): the system user
# LOGIN_USER, whose only key (AUTHORIZED, one authorized_keys line) may open TCP forwards to the
# exporters on loopback and nothing else. Its home and keys belong to root, so the user cannot
# change them. Its sessions run under its user slice (pam_systemd), which a drop-in limits to
# MEMORY_MAX. A changed key ends the sessions of the old one (the tunnel reconnects with the new).
# AUTHORIZED empty: the key is removed and the user's sessions end; the user stays, with no key.
# Before anything changes, the host's sshd must let that user forward TCP from PEER_ADDRESS
# (`sshd -T` with SSHD_CONFIG): a server configured against it is one line here, not a tunnel that
# never comes up on the other host.
# Parameters: LOGIN_USER, HOME_DIR, AUTHORIZED, UNIT_DIR, MEMORY_MAX, PEER_ADDRESS, SSHD_CONFIG.
# Stops: the sessions of ${LOGIN_USER}
# Removes: ${HOME_DIR}/.ssh/authorized_keys, ${UNIT_DIR}/*
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail
umask 022

keys="${HOME_DIR}/.ssh/authorized_keys"

end_sessions() {
  if pkill -u "${LOGIN_USER}" 2>/dev/null; then echo "metrics login: the sessions of ${LOGIN_USER} ended"; fi
}

if [[ -z "${AUTHORIZED}" ]]; then
  if [[ -f "${keys}" ]]; then
    rm -f -- "${keys}"
    end_sessions
    echo "metrics login: ${LOGIN_USER}'s key removed (no peer scrapes this host)"
  else
    echo "metrics login: unchanged (no login)"
  fi
  exit 0
fi

sshd=$(PATH="${PATH}:/usr/sbin:/sbin" command -v sshd) || {
  echo "metrics login: no sshd on this host" >&2
  exit 4
}
effective=$("${sshd}" -T -f "${SSHD_CONFIG}" -C "user=${LOGIN_USER},host=${PEER_ADDRESS},addr=${PEER_ADDRESS}" 2>&1) || {
  echo "metrics login: sshd -T could not read ${SSHD_CONFIG}: ${effective##*$'\n'}" >&2
  exit 4
}
forwarding=$(awk '$1 == "allowtcpforwarding" { print $2 }' <<< "${effective}")
disabled=$(awk '$1 == "disableforwarding" { print $2 }' <<< "${effective}")
if [[ "${disabled}" == yes || ( "${forwarding}" != yes && "${forwarding}" != local ) ]]; then
  echo "metrics login: ${SSHD_CONFIG} does not let ${LOGIN_USER} forward TCP from ${PEER_ADDRESS}" \
    "(AllowTcpForwarding ${forwarding:-?}, DisableForwarding ${disabled:-?}): allow it for that user, e.g." \
    "'Match User ${LOGIN_USER}' with 'AllowTcpForwarding local', and run again" >&2
  exit 4
fi

changed=0
if ! id -u "${LOGIN_USER}" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir "${HOME_DIR}" --shell /usr/sbin/nologin "${LOGIN_USER}"
  echo "metrics login: user ${LOGIN_USER} created"
  changed=1
fi
# useradd leaves the account locked ('!'), and sshd without PAM refuses a locked account even its
# key; '*' matches no password and is no lock.
password=$(getent shadow "${LOGIN_USER}" | cut -d: -f2)
if [[ "${password}" == '!'* ]]; then
  usermod -p '*' "${LOGIN_USER}"
  changed=1
fi
install -d -m 0755 -o root -g root "${HOME_DIR}" "${HOME_DIR}/.ssh"
if ! { [[ -f "${keys}" ]] && cmp -s "${keys}" <(printf '%s' "${AUTHORIZED}"); }; then
  tmp=$(mktemp "${keys}.XXXXXX")
  printf '%s' "${AUTHORIZED}" > "${tmp}"
  chmod 0644 "${tmp}"
  mv -f "${tmp}" "${keys}"
  echo "metrics login: the tunnel's key authorized"
  end_sessions
  changed=1
fi

uid=$(id -u "${LOGIN_USER}")
dropin="${UNIT_DIR}/user-${uid}.slice.d/platform-metrics.conf"
limits=$(printf '[Slice]\nMemoryMax=%s\nMemorySwapMax=0\nTasksMax=16\n' "${MEMORY_MAX}")
if ! { [[ -f "${dropin}" ]] && cmp -s "${dropin}" <(printf '%s\n' "${limits}"); }; then
  [[ -d "${dropin%/*}" ]] || mkdir -p "${dropin%/*}"
  printf '%s\n' "${limits}" > "${dropin}"
  systemctl daemon-reload
  echo "metrics login: the sessions of ${LOGIN_USER} limited to ${MEMORY_MAX}"
  changed=1
fi
[[ "${changed}" == 1 ]] || echo "metrics login: unchanged"
