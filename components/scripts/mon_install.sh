#!/usr/bin/env bash
# The monitoring programs of this host under the platform's own units: node exporter and, on the
# Prometheus host, Prometheus, Alertmanager and the blackbox exporter, with the configuration the
# plan renders (CONFIG_DIR) and, from stdin, the webhook URL (first line: WEBHOOK_FILE) and a
# DingTalk robot's signing secret (second line, may be empty: SIGNING_FILE), 0600 root, handed to
# Alertmanager or the DingTalk relay by LoadCredential=, and the metrics tunnel's private key (third
# line, base64: TUNNEL_KEY_FILE, 0600 root, handed to the tunnel's unit) when WANTS_TUNNEL is 1. A program missing on a Debian or Ubuntu
# host is installed from its package and the package's own unit stopped and disabled (the
# platform runs it with its limit and address); elsewhere the step refuses with what to install. A unit whose unit file,
# configuration or credential changed is restarted; each program must then answer its health URL
# within HEALTH_TIMEOUT seconds. A platform-mon-* unit of a program the plan no longer lists is
# stopped and removed. Running it again with nothing changed restarts nothing.
# Parameters: PROGRAMS, and per program P (upper case, '-' as '_'): BINARY_P, PACKAGE_P,
# PACKAGED_UNIT_P, UNIT_NAME_P, UNIT_P, HEALTH_P, FILES_P, PORT_P; FILES, and per file F: FILE_F;
# CONFIG_DIR, UNIT_DIR, METRICS_DIR, STATE_DIR, WEBHOOK_FILE, SIGNING_FILE, WANTS_WEBHOOK, TUNNEL_KEY_FILE,
# WANTS_TUNNEL, GENERATED (secret files made here when missing), HEALTH_TIMEOUT. PORT_P may list several
# ports (the tunnel's forwards).
# Stops: each program's packaged unit (PACKAGED_UNIT_<P>), platform-mon-*.service units the plan no longer lists
# Removes: ${UNIT_DIR}/*, ${STATE_DIR}/ports/*, ${TUNNEL_KEY_FILE}
# shellcheck disable=SC2154,SC2310  # parameters are rendered above this body; holds answers with its status
set -euo pipefail

key() { local name=${1^^}; printf '%s' "${name//[-.\/]/_}"; }
value() { local name; name="$1_$(key "$2")"; printf '%s' "${!name}"; }

holds() { [[ -f "$1" ]] && cmp -s "$1" <(printf '%s' "$2"); }

write_file() {  # path content mode: through a temporary file beside it
  local tmp
  tmp=$(mktemp "$1.XXXXXX") && printf '%s' "$2" > "${tmp}" && chmod "$3" "${tmp}" && mv -f "${tmp}" "$1"
}

read -ra program_list <<< "${PROGRAMS}"
read -ra file_list <<< "${FILES}"

# The programs themselves.
missing=()
for program in "${program_list[@]}"; do
  binary=$(value BINARY "${program}")
  [[ -x "${binary}" ]] || missing+=("$(value PACKAGE "${program}")")
done
if [[ "${#missing[@]}" -gt 0 ]]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "monitoring: ${missing[*]} not installed and this host has no apt-get: install them (or their" \
      "upstream releases at the same paths) and run again" >&2
    exit 4
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "monitoring: could not install ${missing[*]} (grafana comes from Grafana's APT repository," \
      "apt.grafana.com: add it on the host first)" >&2
    exit 4
  fi
  echo "monitoring: installed ${missing[*]}"
fi
for program in "${program_list[@]}"; do
  packaged=$(value PACKAGED_UNIT "${program}")
  # shellcheck disable=SC2310  # is-enabled answers with its status
  if systemctl is-enabled --quiet "${packaged}" 2>/dev/null; then
    systemctl disable --quiet "${packaged}"
    systemctl stop "${packaged}" || true
    echo "monitoring: stopped the package's own ${packaged} (the platform runs ${program})"
  fi
done

# Configuration, the webhook and the units; what changed decides what restarts.
changed=" "
[[ -d "${CONFIG_DIR}" ]] || mkdir -p "${CONFIG_DIR}"
[[ -d "${METRICS_DIR}" ]] || mkdir -p "${METRICS_DIR}"
for file in "${file_list[@]}"; do
  content=$(value FILE "${file}"; printf x)
  content=${content%x}
  # A name may hold a directory below CONFIG_DIR (Grafana's provisioning tree).
  [[ -d "${CONFIG_DIR}/${file%/*}" || "${file}" != */* ]] || mkdir -p "${CONFIG_DIR}/${file%/*}"
  if ! holds "${CONFIG_DIR}/${file}" "${content}"; then
    write_file "${CONFIG_DIR}/${file}" "${content}" 644
    changed+="${file} "
    echo "monitoring: ${CONFIG_DIR}/${file} written"
  fi
done
if [[ "${WANTS_WEBHOOK}" == 1 ]]; then
  url="" signing=""
  IFS= read -r url || true
  IFS= read -r signing || true
  (umask 077 && mkdir -p "${WEBHOOK_FILE%/*}")
  if ! holds "${WEBHOOK_FILE}" "${url}"; then
    (umask 077 && write_file "${WEBHOOK_FILE}" "${url}" 600)
    changed+="webhook "
    echo "monitoring: webhook URL written"
  fi
  # Empty when the robot does not sign (and for Slack): the relay then posts unsigned.
  if ! holds "${SIGNING_FILE}" "${signing}"; then
    (umask 077 && write_file "${SIGNING_FILE}" "${signing}" 600)
    changed+="webhook "
    echo "monitoring: signing secret written"
  fi
  tunnel_key=""
  IFS= read -r tunnel_key || true
  if [[ "${WANTS_TUNNEL}" == 1 ]]; then
    if [[ -z "${tunnel_key}" ]]; then
      echo "monitoring: the metrics tunnel's key is missing from the step's input" >&2
      exit 2
    fi
    key=$(printf '%s' "${tunnel_key}" | base64 -d; printf x)
    key=${key%x}
    if ! holds "${TUNNEL_KEY_FILE}" "${key}"; then
      (umask 077 && write_file "${TUNNEL_KEY_FILE}" "${key}" 600)
      changed+="tunnel-key "
      echo "monitoring: the metrics tunnel's key written"
    fi
  fi
fi
if [[ "${WANTS_TUNNEL}" != 1 && -f "${TUNNEL_KEY_FILE}" ]]; then
  rm -f -- "${TUNNEL_KEY_FILE}"
  echo "monitoring: the metrics tunnel's key removed (no tunnel in the plan)"
fi
# Generated here once and kept: Grafana's first admin password (read it on the host).
read -ra generated_files <<< "${GENERATED}"
for secret in "${generated_files[@]}"; do
  if [[ ! -s "${secret}" ]]; then
    (umask 077 && mkdir -p "${secret%/*}" && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "${secret}")
    echo "monitoring: generated ${secret}"
  fi
done
reload=0
for program in "${program_list[@]}"; do
  unit_file="${UNIT_DIR}/$(value UNIT_NAME "${program}")"
  content=$(value UNIT "${program}"; printf x)
  content=${content%x}
  if ! holds "${unit_file}" "${content}"; then
    write_file "${unit_file}" "${content}" 644
    changed+="unit:${program} "
    reload=1
  fi
done
# A monitoring program the plan no longer lists (monitoring.enabled false, the receiver or
# Grafana switched off): stopped and its unit removed, so the memory the plan stopped counting is
# free. Its data (StateDirectory=) stays.
for unit_file in "${UNIT_DIR}"/platform-mon-*.service; do
  [[ -f "${unit_file}" ]] || continue
  unit=${unit_file##*/}
  wanted=0
  for program in "${program_list[@]}"; do
    planned=$(value UNIT_NAME "${program}")
    [[ "${planned}" != "${unit}" ]] || wanted=1
  done
  [[ "${wanted}" == 0 ]] || continue
  systemctl stop "${unit}" || true
  systemctl disable --quiet "${unit}" || true
  rm -f "${unit_file}"
  reload=1
  changed+="retired:${unit} "
  echo "monitoring: ${unit} stopped and removed (no longer in the plan)"
done
[[ "${reload}" == 0 ]] || systemctl daemon-reload

# The plan owns these ports from now on: a later host check must not take them for a stranger's.
# Each marker names its program's unit; a port no program of the plan holds any more is released.
[[ -d "${STATE_DIR}/ports" ]] || mkdir -p "${STATE_DIR}/ports"
owned=" "
for program in "${program_list[@]}"; do
  unit=$(value UNIT_NAME "${program}")
  ports_of=$(value PORT "${program}")
  read -ra program_ports <<< "${ports_of}"
  for port in "${program_ports[@]}"; do
    owned+="${port}:${unit} "
    owner=$(cat "${STATE_DIR}/ports/${port}" 2>/dev/null || true)
    [[ "${owner}" == "${unit}" ]] || printf '%s\n' "${unit}" > "${STATE_DIR}/ports/${port}"
  done
done
for marker in "${STATE_DIR}"/ports/*; do
  [[ -f "${marker}" ]] || continue
  owner=$(< "${marker}")
  if [[ "${owner}" == platform-mon-* && "${owned}" != *" ${marker##*/}:${owner} "* ]]; then rm -f -- "${marker}"; fi
done

failed=()
for program in "${program_list[@]}"; do
  unit=$(value UNIT_NAME "${program}")
  systemctl enable --quiet "${unit}"
  restart=0
  [[ "${changed}" != *" unit:${program} "* ]] || restart=1
  depends_on=$(value FILES "${program}")
  read -ra depends <<< "${depends_on}"
  for file in "${depends[@]}"; do
    [[ "${changed}" != *" ${file} "* ]] || restart=1
  done
  # shellcheck disable=SC2310  # is-active answers with its status
  if [[ "${restart}" == 1 ]]; then
    systemctl restart "${unit}"
    echo "monitoring: ${program} (re)started"
  elif ! systemctl is-active --quiet "${unit}"; then
    systemctl start "${unit}"
    echo "monitoring: ${program} started"
  fi
done
for program in "${program_list[@]}"; do
  url=$(value HEALTH "${program}")
  deadline=$((SECONDS + HEALTH_TIMEOUT))
  until curl -fsS --max-time 5 -o /dev/null "${url}" 2>/dev/null; do
    if [[ "${SECONDS}" -gt "${deadline}" ]]; then
      failed+=("${program} (${url})")
      break
    fi
    sleep 0.5
  done
done
if [[ "${#failed[@]}" -gt 0 ]]; then
  echo "monitoring: not answering within ${HEALTH_TIMEOUT}s: ${failed[*]}" >&2
  exit 7
fi
[[ "${changed}" != " " ]] || echo "monitoring: unchanged"
