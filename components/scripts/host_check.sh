#!/usr/bin/env bash
# Host check: check the real host against the plan before anything changes. A mismatch
# stops the step with one line on stderr (exit 3) and nothing on the host changed.
# Parameters (rendered above): HOST_MEMORY_MIB, MIN_FREE_DISK_MIB, OS_FAMILIES, PLAN_PORTS,
# EXISTING_PORTS, DECLARED_TCP_PORTS, ALLOW_UNDECLARED, STATE_DIR, and the root of what the
# following steps install (DATA_ROOT or SERVICES_ROOT).
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

check_fail() {
  echo "host check: $*" >&2
  exit 3
}

# OS family: ID or ID_LIKE from os-release must be one the plan supports.
os_release=/etc/os-release
[[ -r "${os_release}" ]] || check_fail "cannot read ${os_release}; supported OS families: ${OS_FAMILIES}"
# shellcheck source=/dev/null  # os-release is the host's, not ours
os_ids=$( . "${os_release}"; echo "${ID:-}" "${ID_LIKE:-}" )
# Lists are split by read, which does no pathname expansion: a "*" stays a word.
read -ra ids < <(printf '%s\n' "${os_ids}")
os_ids="${ids[*]}"
read -ra families < <(printf '%s\n' "${OS_FAMILIES}")
os_ok=0
for family in "${families[@]}"; do
  for id in "${ids[@]}"; do
    if [[ "${id}" = "${family}" ]]; then os_ok=1; fi
  done
done
[[ "${os_ok}" = 1 ]] || check_fail "OS '${os_ids:-unknown}' is not one of the supported families" \
  "(platform:host.osFamilies): ${OS_FAMILIES}"

# Memory actually present must cover what the plan budgets for this host.
mem_total_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
mem_total_mib=$(( mem_total_kib / 1024 ))
if [[ "${mem_total_mib}" -lt "${HOST_MEMORY_MIB}" ]]; then
  check_fail "host has ${mem_total_mib} MiB of memory, the plan budgets ${HOST_MEMORY_MIB} MiB" \
    "(platform:host.memoryMib): lower it to at most ${mem_total_mib}"
fi

# Free disk where the platform installs its data and releases (the nearest existing parent).
install_root="${DATA_ROOT:-${SERVICES_ROOT:-/}}"
probe="${install_root}"
while [[ ! -d "${probe}" ]]; do probe=$(dirname "${probe}"); done
free_mib=$(df -Pm "${probe}" | awk 'NR == 2 {print $4}')
if [[ "${free_mib}" -lt "${MIN_FREE_DISK_MIB}" ]]; then
  check_fail "only ${free_mib} MiB free under ${probe}, the plan needs ${MIN_FREE_DISK_MIB} MiB (platform:host.minFreeDiskMib)"
fi

# A port the plan will use may already be listening only if the plan owns it: an existing
# workload, or a workload this platform installed (it left a marker in STATE_DIR/ports).
command -v ss >/dev/null 2>&1 || check_fail "ss (iproute2) is required to check the plan's ports"
listening=$(ss -Hltun | awk '{print $1 " " $5}' | sed -E 's/^(tcp|udp) .*:([0-9]+)$/\2\/\1/')
read -ra specs < <(printf '%s\n' "${PLAN_PORTS}")
for spec in "${specs[@]}"; do
  case " ${EXISTING_PORTS} " in *" ${spec} "*) continue ;; *) ;; esac
  if printf '%s\n' "${listening}" | grep -qx "${spec}" && [[ ! -e "${STATE_DIR}/ports/${spec%/*}" ]]; then
    check_fail "port ${spec} is already taken by a process the plan does not declare;" \
      "free it or declare it under platform:existing"
  fi
done
# Every TCP socket listening beyond loopback must be one the plan declares (a workload, an
# existing one, SSH): the security group becomes the plan's, which would cut anything else off
# without anyone having decided so. (UDP is left out: DHCP and NTP clients hold such sockets.)
undeclared=()
listeners=$(ss -Hltnp | awk '{print $4, $6}')
while read -r local_address process; do
  [[ -n "${local_address}" ]] || continue
  port=${local_address##*:}
  address=${local_address%:*}
  address=${address#[}
  address=${address%]}
  case "${address%%%*}" in
    127.* | ::1 | ::ffff:127.*) continue ;;
    *) ;;
  esac
  case " ${DECLARED_TCP_PORTS} " in *" ${port} "*) continue ;; *) ;; esac
  name=$(sed -nE 's/^users:\(\("([^"]+)".*/\1/p' <<< "${process}")
  entry="${port}/tcp on ${address} (${name:-process not shown})"
  case " ${undeclared[*]} " in *" ${entry} "*) ;; *) undeclared+=("${entry}") ;; esac
done <<< "${listeners}"
if [[ "${#undeclared[@]}" -gt 0 ]]; then
  listed=$(printf '%s, ' "${undeclared[@]}")
  if [[ "${ALLOW_UNDECLARED}" != 1 ]]; then
    check_fail "${#undeclared[@]} TCP listener(s) beyond loopback that the plan does not declare (its firewall would" \
      "cut them off): ${listed%, }; declare each under platform:existing, or set platform:host.allowUndeclared: true"
  fi
  echo "host check: left running, not declared (platform:host.allowUndeclared): ${listed%, }"
fi
echo "host check: ok (${mem_total_mib} MiB memory, ${free_mib} MiB free disk, OS ${os_ids})"
