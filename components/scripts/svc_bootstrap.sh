#!/usr/bin/env bash
# Application host bootstrap: the tools the deploys use and the directories they install into.
# Parameters: SERVICES_ROOT, UNIT_DIR, STATE_DIR, UPLOADS_DIR, UPLOADS_OWNER, UPLOAD_SERVICES, UV,
# UV_VERSION.
#   UPLOADS_DIR    where releases arrive over SFTP, as the SSH user (UPLOADS_OWNER): owned by it,
#                  0700, with a directory per service that uploads (UPLOAD_SERVICES)
#   UV, UV_VERSION the pinned uv that builds the Python services' virtualenvs (empty: none needed);
#                  installed from PyPI into a throwaway virtualenv, and only its static binary kept
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

read -ra uploading <<< "${UPLOAD_SERVICES}"
for dir in "${UPLOADS_DIR}" "${uploading[@]/#/${UPLOADS_DIR}/}"; do
  [[ -d "${dir}" ]] || mkdir -p "${dir}"
  owner=$(stat -c '%U %a' "${dir}")
  if [[ "${owner}" != "${UPLOADS_OWNER} 700" ]]; then
    chown "${UPLOADS_OWNER}" "${dir}"
    chmod 700 "${dir}"
    echo "bootstrap: ${dir} is ${UPLOADS_OWNER}'s, mode 700"
    changes=$((changes + 1))
  fi
done

if [[ -n "${UV_VERSION}" ]]; then
  have=$("${UV}" --version 2>/dev/null || true)
  if [[ "${have}" != "uv ${UV_VERSION}" && "${have}" != "uv ${UV_VERSION} "* ]]; then
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
      echo "bootstrap: installing uv ${UV_VERSION} needs python3 with its venv module (Debian/Ubuntu:" \
        "apt-get install python3-venv), or put uv ${UV_VERSION} at ${UV} yourself" >&2
      exit 4
    fi
    workdir=$(mktemp -d)
    # shellcheck disable=SC2064  # the directory is fixed now
    trap "rm -rf -- '${workdir}'" EXIT
    python3 -m venv "${workdir}/venv"
    "${workdir}/venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "uv==${UV_VERSION}"
    mkdir -p "${UV%/*}"
    install -m 755 "${workdir}/venv/bin/uv" "${UV}.new"
    mv -f "${UV}.new" "${UV}"
    echo "bootstrap: installed uv ${UV_VERSION}"
    changes=$((changes + 1))
  fi
fi

if [[ "${changes}" = 0 ]]; then
  echo "bootstrap: unchanged"
else
  echo "bootstrap: ${changes} change(s)"
fi
