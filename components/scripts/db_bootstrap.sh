#!/usr/bin/env bash
# Database host bootstrap: Podman with Quadlet, the kernel setting Elasticsearch needs, and the
# directories the containers keep their data and secrets in. Safe to run again: it changes
# only what differs and says what it did.
# Parameters: MIN_PODMAN, DATA_ROOT, DATA_DIRS, QUADLET_DIR, SECRETS_DIR, STATE_DIR, SYSCTL_FILE,
# NEEDS_ES_SYSCTL.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

changes=0

if ! command -v podman >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman >/dev/null
  elif command -v dnf >/dev/null 2>&1; then
    dnf install -y -q podman >/dev/null
  else
    echo "bootstrap: podman is missing and no apt-get or dnf to install it" >&2
    exit 4
  fi
  echo "bootstrap: installed podman"
  changes=$((changes + 1))
fi

# Quadlet reads PodmanArgs= (the --memory limit) from Podman 4.5 on.
podman_version=$(podman --version | awk '{print $NF}')
lowest=$(printf '%s\n%s\n' "${MIN_PODMAN}" "${podman_version}" | sort -V | head -n 1)
if [[ "${lowest}" != "${MIN_PODMAN}" ]]; then
  echo "bootstrap: podman ${podman_version} has no Quadlet PodmanArgs= (needs >= ${MIN_PODMAN})." \
    "Ubuntu 22.04 ships 3.4: move to Ubuntu 24.04, Alibaba Cloud Linux 3 or a current RHEL-family release." >&2
  exit 4
fi

# Elasticsearch refuses to start with the default vm.max_map_count.
if [[ "${NEEDS_ES_SYSCTL}" = 1 ]]; then
  wanted="vm.max_map_count = 262144"
  written=$(cat "${SYSCTL_FILE}" 2>/dev/null || true)
  if [[ "${written}" != "${wanted}" ]]; then
    mkdir -p "${SYSCTL_FILE%/*}"
    printf '%s\n' "${wanted}" > "${SYSCTL_FILE}"
    echo "bootstrap: wrote ${SYSCTL_FILE}"
    changes=$((changes + 1))
  fi
  # Applied now (the file only takes effect at boot), and only when the kernel is below it.
  running=$(sysctl -n vm.max_map_count)
  if [[ "${running}" -lt 262144 ]]; then
    sysctl -q -p "${SYSCTL_FILE}"
    echo "bootstrap: applied vm.max_map_count"
    changes=$((changes + 1))
  fi
fi

ensure_dir() {  # path mode
  if [[ ! -d "$1" ]]; then
    # shellcheck disable=SC2174  # -m is meant for the last directory only; parents get the usual 755
    mkdir -p -m "$2" "$1"
    echo "bootstrap: created $1"
    changes=$((changes + 1))
  elif [[ "$(stat -c %a "$1" || true)" != "$2" ]]; then
    chmod "$2" "$1"
    echo "bootstrap: set mode $2 on $1"
    changes=$((changes + 1))
  fi
}

ensure_dir "${DATA_ROOT}" 755
read -ra planned < <(printf '%s\n' "${DATA_DIRS}")  # read splits without pathname expansion
for dir in "${planned[@]}"; do ensure_dir "${dir}" 700; done
ensure_dir "${SECRETS_DIR}" 700
ensure_dir "${QUADLET_DIR}" 755
ensure_dir "${STATE_DIR}/ports" 755

if [[ "${changes}" = 0 ]]; then
  echo "bootstrap: unchanged"
else
  echo "bootstrap: ${changes} change(s)"
fi
