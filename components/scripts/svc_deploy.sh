#!/usr/bin/env bash
# Deploy one release of a native service behind its health check.
#
#   SERVICE_DIR/releases/<version>/              one directory per release
#   SERVICE_DIR/sha256/<version>                 the sha256 of the artifact it was unpacked from
#   SERVICE_DIR/current  -> releases/<version>   what the unit runs
#   SERVICE_DIR/healthy                          the release that last passed its health check
#                                                (first line) and the unit it passed with (the
#                                                rest): what a failed deploy goes back to
#   SERVICE_DIR/previous -> releases/<version>   the healthy release before it (kept by pruning)
#   CREDENTIALS_DIR/<NAME>                       each credential (stdin: "NAME BASE64" lines), 0600
#                                                root, read by systemd's LoadCredential= only
#
# The artifact is a tarball or (uploaded from a directory) a directory; its sha256 (a directory's:
# sha256sum of every file by path, then of that list) is checked before anything is unpacked.
# The release is made ready in its staging directory before it gets its version's name: a Python
# release gets its virtualenv (RUNTIME python: uv, from the release's LOCK_FILE; offline from the
# release's wheels/ when it ships them), a Go release's START_BINARY must be an executable for this
# host's architecture. So a rollback or a redeploy of a release on the host installs nothing.
#
# Any failure once the switch has begun (writing the unit, moving current, daemon-reload, enable,
# restart, or no 2xx from HEALTH_URL within HEALTH_TIMEOUT seconds) rolls back: the healthy
# release and its unit are restored and running, and the command fails with what went wrong,
# which stops the later batches. A run cut short is completed by the next: a release counts as
# deployed only once it passed its health check. Running it again with nothing changed writes
# nothing (not even a temporary file) and restarts nothing. A version already unpacked from
# another artifact is refused: a changed artifact needs a new version.
# Parameters: NAME, PORT, VERSION, ARTIFACT, ARTIFACT_SHA256, UPLOADS_DIR, RUNTIME, START_BINARY, UV,
# PYTHON_VERSION, LOCK_FILE, CREDENTIALS, CREDENTIALS_DIR, SERVICES_ROOT, SERVICE_DIR, UNIT_FILE,
# UNIT_NAME, UNIT_CONTENT, HEALTH_URL, HEALTH_TIMEOUT, KEEP_RELEASES, STATE_DIR.
# Stops: ${UNIT_NAME} (a first deploy that fails its health check)
# Removes: ${SERVICE_DIR}/*, ${UPLOADS_DIR}/*, ${CREDENTIALS_DIR}/*, ${UNIT_FILE}, ${STATE_DIR}/ports/*
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

releases="${SERVICE_DIR}/releases"
release="${releases}/${VERSION}"
digests="${SERVICE_DIR}/sha256"
current="${SERVICE_DIR}/current"
healthy="${SERVICE_DIR}/healthy"
previous="${SERVICE_DIR}/previous"
health_output="no answer yet"
download=""
staging=""
failure=""
restarted=0
credentials_changed=0

assert_under "${SERVICES_ROOT}" "${SERVICE_DIR}"  # releases are pruned below it

# shellcheck disable=SC2329  # run by the EXIT trap below
cleanup() {  # what this run fetched or half-unpacked
  [[ -z "${download}" ]] || rm -rf -- "${download}"
  if [[ -n "${staging}" && -d "${staging}" ]]; then
    assert_under "${SERVICES_ROOT}" "${staging}"
    rm -rf -- "${staging}"
  fi
}
trap 'cleanup' EXIT

# One GET of HEALTH_URL; true on a 2xx. The answer (or curl's error) is kept in memory for the
# failure message: a health check writes nothing to disk.
health_once() {
  local answer code
  # The status code travels in a marker (a -w format starting with "@" would name a file).
  answer=$(curl -sS --max-time 5 -w '##%{http_code}##' "${HEALTH_URL}" 2>&1) || true
  code=000
  if [[ "${answer}" =~ \#\#([0-9]{3})\#\# ]]; then code=${BASH_REMATCH[1]}; fi
  answer=${answer//"##${code}##"/}
  answer=${answer//$'\n'/ }
  health_output="HTTP ${code}: ${answer:0:500}"  # the start of the answer is enough to read
  [[ "${code}" == 2?? ]]
}

# Poll until healthy, for at least $1 seconds (SECONDS counts whole seconds, hence -le).
healthy_within() {
  local deadline=$((SECONDS + $1))
  # shellcheck disable=SC2310  # health_once answers with its status; nothing in it should exit
  until health_once; do
    [[ "${SECONDS}" -le "${deadline}" ]] || return 1
    sleep 0.5
  done
}

# Whether file $1 holds exactly $2 (compared through a pipe: no temporary file).
holds() {
  [[ -f "$1" ]] && cmp -s "$1" <(printf '%s' "$2")
}

# Write $2 to $1 with mode $3 through a temporary file beside it: a reader sees the old or the
# new content, never half. Chained, so that a failure is returned where set -e does not apply.
write_file() {  # path content mode
  local tmp
  tmp=$(mktemp "$1.XXXXXX") && printf '%s' "$2" > "${tmp}" && chmod "$3" "${tmp}" && mv -f "${tmp}" "$1"
}

point() {  # link target: switch a symlink atomically
  ln -sfn "$2" "$1.new" && mv -Tf "$1.new" "$1"
}

# The digest of a directory: sha256sum of every file by path (as components/uploads.py computes it).
tree_digest() {
  local listing
  listing=$(cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
  [[ -z "${listing}" ]] || listing+=$'\n'
  printf '%s' "${listing}" | sha256sum | cut -d' ' -f1
}

# Download (or copy) the artifact into TMPDIR and check it: a bad one leaves the host as it was.
fetch() {
  if [[ -d "${ARTIFACT}" ]]; then  # an uploaded directory: copied, then its copy checked
    download=$(mktemp -d)
    cp -R "${ARTIFACT}/." "${download}/"
    fetched=$(tree_digest "${download}")
  else
    download=$(mktemp)
    case "${ARTIFACT}" in
      https://*) curl -fsSL --proto =https --proto-redir =https --max-time 300 -o "${download}" "${ARTIFACT}" ;;
      *) cp "${ARTIFACT}" "${download}" ;;
    esac
    fetched=$(sha256sum "${download}")
    fetched=${fetched%% *}
  fi
  if [[ -n "${ARTIFACT_SHA256}" && "${fetched}" != "${ARTIFACT_SHA256}" ]]; then
    echo "${NAME}: ${ARTIFACT} does not match its sha256 ${ARTIFACT_SHA256}; nothing changed" >&2
    exit 6
  fi
}

# The machine name of an ELF file's e_machine for this host's architecture (uname -m).
elf_machine() {
  case "$(uname -m)" in
    x86_64) echo 3e00 ;;
    aarch64 | arm64) echo b700 ;;
    i?86) echo 0300 ;;
    armv7l | armv6l) echo 2800 ;;
    riscv64) echo f300 ;;
    *) echo unknown ;;
  esac
}

# Make the release in $1 runnable before it is named: a Go binary checked, a Python virtualenv built.
prepare_runtime() {
  local dir=$1 binary header want arch
  case "${RUNTIME}" in
    go)
      binary="${dir}/${START_BINARY#./}"
      if [[ ! -f "${binary}" || ! -x "${binary}" ]]; then
        echo "${NAME}: ${VERSION} has no executable ${START_BINARY}; nothing changed" >&2
        exit 10
      fi
      header=$(od -An -tx1 -N20 "${binary}" | tr -d ' \n')
      want=$(elf_machine)
      arch=$(uname -m)
      if [[ "${header:0:8}" != 7f454c46 ]]; then
        echo "${NAME}: ${START_BINARY} in ${VERSION} is not an ELF executable (a Go build for linux is); nothing changed" >&2
        exit 10
      fi
      if [[ "${header:36:4}" != "${want}" ]]; then
        echo "${NAME}: ${START_BINARY} in ${VERSION} is built for another architecture (ELF machine" \
          "0x${header:38:2}${header:36:2}), this host is ${arch}: build it with the matching GOARCH;" \
          "nothing changed" >&2
        exit 10
      fi
      ;;
    python)
      if [[ ! -f "${dir}/${LOCK_FILE}" ]]; then
        echo "${NAME}: ${VERSION} has no ${LOCK_FILE} to build its virtualenv from; nothing changed" >&2
        exit 10
      fi
      [[ -x "${UV}" ]] || { echo "${NAME}: ${UV} is missing: the bootstrap installs it" >&2; exit 10; }
      local -a offline=()
      if [[ -d "${dir}/wheels" ]]; then offline=(--offline --no-index --find-links "${dir}/wheels"); fi
      # uv's cache and interpreters stay under the platform's root, never in root's home.
      export UV_CACHE_DIR="${SERVICES_ROOT}/.runtime/cache" UV_PYTHON_INSTALL_DIR="${SERVICES_ROOT}/.runtime/python"
      export UV_NO_CONFIG=1
      # shellcheck disable=SC2310  # the status is the failure this reports
      if ! "${UV}" venv --quiet --relocatable --python "${PYTHON_VERSION}" "${dir}/.venv" \
        || ! "${UV}" pip sync --quiet --python "${dir}/.venv/bin/python" "${offline[@]}" "${dir}/${LOCK_FILE}"; then
        echo "${NAME}: ${VERSION}: building its virtualenv from ${LOCK_FILE} failed; nothing changed" >&2
        exit 10
      fi
      echo "${NAME}: built the virtualenv of ${VERSION} from ${LOCK_FILE}"
      ;;
    *) ;;
  esac
}

# The credentials from stdin ("NAME BASE64" per line) into CREDENTIALS_DIR, 0600 root; a file that
# changed marks the service for a restart (the unit text does not change with a secret).
store_credentials() {
  local credential value wanted=" ${CREDENTIALS} " file
  [[ -n "${CREDENTIALS}" || -d "${CREDENTIALS_DIR}" ]] || return 0
  (umask 077 && mkdir -p "${CREDENTIALS_DIR}")
  chmod 700 "${CREDENTIALS_DIR}"
  if [[ -n "${CREDENTIALS}" ]]; then
    while IFS=' ' read -r credential value; do
      [[ -n "${credential}" ]] || continue
      if [[ "${wanted}" != *" ${credential} "* ]]; then
        echo "${NAME}: unexpected credential ${credential} on stdin" >&2
        exit 11
      fi
      file="${CREDENTIALS_DIR}/${credential}"
      (umask 077 && printf '%s' "${value}" | base64 -d > "${file}.new")
      if cmp -s "${file}" "${file}.new"; then
        rm -f -- "${file}.new"
      else
        mv -f "${file}.new" "${file}"
        credentials_changed=1
        echo "${NAME}: credential ${credential} written"
      fi
    done
  fi
  for file in "${CREDENTIALS_DIR}"/*; do
    [[ -f "${file}" ]] || continue
    credential=${file##*/}
    if [[ "${wanted}" != *" ${credential} "* ]]; then
      rm -f -- "${file}"
      credentials_changed=1
      echo "${NAME}: credential ${credential} removed"
    fi
  done
  read -ra listed <<< "${CREDENTIALS}"
  for credential in "${listed[@]}"; do
    if [[ ! -f "${CREDENTIALS_DIR}/${credential}" ]]; then
      echo "${NAME}: credential ${credential} missing on stdin" >&2
      exit 11
    fi
  done
}

# The release: unpacked once, in a staging directory, so a half-unpacked release never exists
# under its version; the digest of its artifact is kept beside it.
if [[ ! -d "${release}" ]]; then
  fetch
  [[ -d "${digests}" ]] || mkdir -p "${digests}"
  [[ -d "${releases}" ]] || mkdir -p "${releases}"
  staging=$(mktemp -d "${releases}/.staging.XXXXXX")
  if [[ -d "${download}" ]]; then
    cp -R "${download}/." "${staging}/"
    chown -R 0:0 "${staging}"
  else
    tar -xzf "${download}" -C "${staging}" --no-same-owner
  fi
  chmod 755 "${staging}"  # mktemp made it 0700; the unit's (dynamic) user must enter it
  prepare_runtime "${staging}"
  printf '%s\n' "${fetched}" > "${digests}/${VERSION}"
  mv "${staging}" "${release}"
  staging=""
  echo "${NAME}: unpacked ${VERSION}"
elif [[ ! -f "${digests}/${VERSION}" ]]; then
  # Unpacked by an earlier version of this script, which kept no digest: its artifact's, now.
  fetch
  [[ -d "${digests}" ]] || mkdir -p "${digests}"
  printf '%s\n' "${fetched}" > "${digests}/${VERSION}"
  echo "${NAME}: recorded the sha256 of ${VERSION}"
fi
unpacked_from=$(< "${digests}/${VERSION}")
if [[ -n "${ARTIFACT_SHA256}" && "${unpacked_from}" != "${ARTIFACT_SHA256}" ]]; then
  echo "${NAME}: ${VERSION} is already unpacked from an artifact with sha256 ${unpacked_from}, the plan" \
    "now gives ${ARTIFACT_SHA256}: a changed artifact needs a new version; nothing changed" >&2
  exit 6
fi

# A host deployed before the healthy record was kept: the release serving now is the healthy one.
# shellcheck disable=SC2310  # health_once answers with its status; nothing in it should exit
if [[ ! -f "${healthy}" && -L "${current}" && -f "${UNIT_FILE}" ]] \
  && systemctl is-active --quiet "${UNIT_NAME}" && health_once; then
  serving=$(readlink "${current}")
  unit=$(cat "${UNIT_FILE}"; printf x)  # the x keeps trailing newlines through $(...)
  write_file "${healthy}" "${serving}"$'\n'"${unit%x}" 644
  echo "${NAME}: recorded ${serving##*/} as its healthy release"
fi

store_credentials

live=$(readlink "${current}" 2>/dev/null || true)
known=""
[[ ! -f "${healthy}" ]] || IFS= read -r known < "${healthy}"
# shellcheck disable=SC2310  # holds and health_once answer with their status
if [[ "${live}" == "${release}" && "${credentials_changed}" == 0 ]] \
  && holds "${healthy}" "${release}"$'\n'"${UNIT_CONTENT}" && holds "${UNIT_FILE}" "${UNIT_CONTENT}" \
  && systemctl is-active --quiet "${UNIT_NAME}" && health_once; then
  echo "${NAME}: ${VERSION} unchanged, healthy"
  exit 0
fi

[[ -d "${STATE_DIR}/ports" ]] || mkdir -p "${STATE_DIR}/ports"
# The plan owns this port from now on: a later host check must not take it for a stranger's. The
# marker names the service, so retiring it (svc_retire.sh) removes exactly its own.
for marker in "${STATE_DIR}"/ports/*; do
  [[ -f "${marker}" ]] || continue
  owner=$(< "${marker}")
  if [[ "${owner}" == "${NAME}" && "${marker##*/}" != "${PORT}" ]]; then rm -f -- "${marker}"; fi
done
owner=$(cat "${STATE_DIR}/ports/${PORT}" 2>/dev/null || true)
[[ "${owner}" == "${NAME}" ]] || printf '%s\n' "${NAME}" > "${STATE_DIR}/ports/${PORT}"

# The switch, step by step. Each step returns its failure rather than exiting (set -e does not
# apply in a function called as a condition), so that any failure rolls back, not only the health
# gate's.
# shellcheck disable=SC2310  # every step's status is taken here, none is left to set -e
go_live() {
  if ! holds "${UNIT_FILE}" "${UNIT_CONTENT}"; then
    write_file "${UNIT_FILE}" "${UNIT_CONTENT}" 644 || { failure="failed: writing ${UNIT_FILE}"; return 1; }
  fi
  point "${current}" "${release}" || { failure="failed: pointing ${current} at it"; return 1; }
  systemctl daemon-reload || { failure="failed: systemctl daemon-reload"; return 1; }
  systemctl enable --quiet "${UNIT_NAME}" || { failure="failed: systemctl enable ${UNIT_NAME}"; return 1; }
  restarted=1
  systemctl restart "${UNIT_NAME}" || { failure="failed: systemctl restart ${UNIT_NAME}"; return 1; }
  if ! healthy_within "${HEALTH_TIMEOUT}"; then
    failure="failed ${HEALTH_URL} within ${HEALTH_TIMEOUT}s (${health_output};"
    failure+=" unit $(systemctl is-active "${UNIT_NAME}" || true))"
    return 1
  fi
}

# Keep KEEP_RELEASES releases: current and previous always, then the most recently live.
prune() {
  local kept room old listing
  kept=$(readlink "${previous}" 2>/dev/null || true)
  listing=$(find "${releases}" -mindepth 1 -maxdepth 1 -type d ! -name '.staging.*' -printf '%T@ %p\n')
  listing=$(sort -rn <<< "${listing}")
  room=$((KEEP_RELEASES - 1))
  [[ -z "${kept}" ]] || room=$((room - 1))
  while read -r _ old; do
    if [[ "${old}" == "${release}" || "${old}" == "${kept}" ]]; then continue; fi
    if [[ "${room}" -gt 0 ]]; then
      room=$((room - 1))
      continue
    fi
    assert_under "${SERVICES_ROOT}" "${old}"
    rm -rf -- "${old}" "${digests:?}/${old##*/}"
    echo "${NAME}: pruned ${old##*/}"
  done <<< "${listing}"
}

# Uploads of this service other than the live version's: unpacked already, no longer needed.
drop_old_uploads() {
  local old
  [[ -d "${UPLOADS_DIR}" ]] || return 0
  for old in "${UPLOADS_DIR}"/*; do
    [[ -e "${old}" && "${old##*/}" != "${VERSION}" ]] || continue
    assert_under "${UPLOADS_DIR}" "${old}"
    rm -rf -- "${old}"
  done
}

# Back to the healthy release and its unit, running; a first deploy leaves nothing behind instead.
# shellcheck disable=SC2310  # holds and healthy_within answer with their status
roll_back() {
  if [[ -n "${known}" && -d "${known}" ]]; then
    local unit
    unit=$(tail -n +2 "${healthy}"; printf x)
    holds "${UNIT_FILE}" "${unit%x}" || write_file "${UNIT_FILE}" "${unit%x}" 644
    point "${current}" "${known}"
    systemctl daemon-reload || true
    # A failure before the restart left the healthy release running: no need to stop it.
    if [[ "${restarted}" == 1 ]] || ! systemctl is-active --quiet "${UNIT_NAME}"; then
      systemctl restart "${UNIT_NAME}" || true
    fi
    if healthy_within "${HEALTH_TIMEOUT}"; then
      echo "${NAME}: rolled back to ${known##*/}, healthy" >&2
    else
      echo "${NAME}: rolled back to ${known##*/}, which is not healthy either (${health_output})" >&2
    fi
  else
    systemctl stop "${UNIT_NAME}" || true
    systemctl disable --quiet "${UNIT_NAME}" 2>/dev/null || true
    rm -f -- "${UNIT_FILE}" "${current}"
    systemctl daemon-reload
    echo "${NAME}: no earlier release to roll back to; stopped and removed its unit" >&2
  fi
}

# shellcheck disable=SC2310  # go_live returns each step's failure, for the rollback below
if go_live; then
  # This release and its unit are now what a later failure goes back to.
  if [[ -n "${known}" && "${known}" != "${release}" ]]; then point "${previous}" "${known}"; fi
  write_file "${healthy}" "${release}"$'\n'"${UNIT_CONTENT}" 644
  touch "${release}"  # its mtime is when it last went live: the order the pruning keeps
  prune
  drop_old_uploads
  echo "${NAME}: ${VERSION} deployed, healthy"
  exit 0
fi
echo "${NAME}: ${VERSION} ${failure}" >&2
roll_back
exit 7
