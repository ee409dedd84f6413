#!/usr/bin/env bash
# Shared by the backup programs (platform-backup, platform-restore-drill): rendered between the
# guards and each program's body (components/backups.py), so manifests are written and judged once.
# shellcheck disable=SC2154  # NAME and the configuration are set by the program that renders this
# shellcheck disable=SC2034  # the variables below are the programs' (this file is rendered before them)

# What components/backups.py writes into each database's configuration (database_config).
DATABASE_KEYS=(NAME KIND IMAGE SERVICE DATA_DIR DATA_PATH SECRET_FILE DB_USER API_PORT MEMORY_MIB HEAP_MIB
  HEALTH_TIMEOUT_S BACKUPS_ROOT BACKUP_DIR STATUS_FILE METRICS_FILE LOCK_FILE LOCK_WAIT_S SAVE_TIMEOUT_S KEEP_DAILY
  KEEP_WEEKLY ES_SNAPSHOT_PATH WEAVIATE_BACKUP_PATH OFF_HOST_URL OFF_HOST_ENDPOINT OFF_HOST_RAM_ROLE OSSUTIL)

# The engines the programs know, in order, and each one's backup file extension: each
# components/engines/<kind>/backup.sh, rendered after this file, adds its own.
ENGINES=()
declare -A BACKUP_EXT=()

# True when components/engines/$1.sh was rendered in.
known_engine() {  # kind
  [[ -n "${BACKUP_EXT[$1]:-}" ]]
}

# "a, b or c": the engines rendered in.
engine_names() {
  local last=${ENGINES[-1]} joined
  joined=$(IFS=,; printf '%s' "${ENGINES[*]:0:${#ENGINES[@]}-1}")
  printf '%s or %s' "${joined//,/, }" "${last}"
}

die() {  # exit code, message
  echo "${NAME:-platform-backup}: $2" >&2
  exit "$1"
}

# Read KEY=value lines of a configuration written by db_backup.sh into variables of those names:
# only the keys listed, each one required (a value is the rest of its line, never evaluated).
read_config() {  # file key...
  local file=$1 key value wanted line
  shift
  [[ -f "${file}" && -r "${file}" ]] || die 2 "no configuration at ${file}"
  local -A allowed=() seen=()
  for key in "$@"; do allowed[${key}]=1; done
  while IFS= read -r line || [[ -n "${line}" ]]; do
    [[ -n "${line}" && "${line}" != \#* ]] || continue
    key=${line%%=*}
    value=${line#*=}
    [[ "${line}" == *=* && -n "${allowed[${key}]:-}" ]] || die 2 "${file}: unexpected line '${key}'"
    printf -v "${key}" '%s' "${value}"
    seen[${key}]=1
  done < "${file}"
  for wanted in "$@"; do
    [[ -n "${seen[${wanted}]:-}" ]] || die 2 "${file}: ${wanted} is missing"
  done
}

# Times are UTC everywhere (names, manifests, reports); printf's %(...)T formats them without a fork.
export TZ=UTC

# $1 := a JSON string literal of $2 (quotes, backslashes and control characters escaped or dropped).
to_json() {  # variable value
  local s=$2
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//[[:cntrl:]]/}
  printf -v "$1" '"%s"' "${s}"
}

# Write content $2 to $1 with mode $3 through a temporary file beside it (readers see the old
# file or the new one, never half of one).
write_atomically() {  # path content mode
  local tmp
  tmp=$(mktemp "${1%/*}/.tmp-${1##*/}.XXXXXX")
  printf '%s' "$2" > "${tmp}"
  chmod "$3" "${tmp}"
  mv -f -- "${tmp}" "$1"
}

# Read a manifest (or status file) this program wrote into the array manifest: one "key": value
# per line, keys unique; string values unquoted. Builtins only: pruning reads many of them.
declare -A manifest=()
read_manifest() {  # file
  local line key
  manifest=()
  [[ -f "$1" ]] || return 0
  while IFS= read -r line || [[ -n "${line}" ]]; do
    line=${line#"${line%%[! ]*}"}
    [[ "${line}" == \"*\":* ]] || continue
    key=${line#\"}
    key=${key%%\"*}
    line=${line#*\":}
    line=${line# }
    line=${line%,}
    line=${line#\"}
    manifest[${key}]=${line%\"}
  done < "$1"
}

sha256_of() {
  local sum
  sum=$(sha256sum < "$1")
  printf '%s' "${sum%% *}"
}

# Whether backup $2 (a base name, <db>-<stamp>) in directory $1 is good: its manifest names this
# database and a file of this backup whose size matches, and (unless $3 is "size") whose sha256
# matches. Says why not in $why.
why=""
backup_good() {  # dir base [size]
  local dir=$1 base=$2 file size sha
  why=""
  if [[ ! -f "${dir}/${base}.json" ]]; then
    why="no manifest"
    return 1
  fi
  read_manifest "${dir}/${base}.json"
  file=${manifest[file]:-}
  if [[ "${manifest[format]:-}" != 1 || "${manifest[database]:-}" != "${NAME}" || "${file}" != "${base}".* \
    || "${file}" == */* ]]; then
    why="manifest does not describe ${base}"
    return 1
  fi
  if [[ ! -f "${dir}/${file}" ]]; then
    why="${file} is missing"
    return 1
  fi
  size=$(stat -c %s -- "${dir}/${file}")
  if [[ "${size}" != "${manifest[size]:-}" ]]; then
    why="${file} is ${size} bytes, its manifest says ${manifest[size]:-nothing}"
    return 1
  fi
  [[ "${3:-}" != size ]] || return 0
  sha=$(sha256_of "${dir}/${file}")
  if [[ "${sha}" != "${manifest[sha256]:-}" ]]; then
    why="${file}: sha256 mismatch (${sha} is not the manifest's)"
    return 1
  fi
}

# The backups of this database in directory $1, newest first: one base name per line. A base is
# <db>-<UTC stamp>; the stamps sort in time order.
backups_in() {  # dir
  local path base
  local -A seen=()
  for path in "$1/${NAME}"-*; do
    [[ -e "${path}" ]] || continue
    base=${path##*/}
    base="${NAME}-$(stamp_of "${base}")"
    [[ "${base}" != "${NAME}-" ]] || continue
    seen[${base}]=1
  done
  [[ "${#seen[@]}" -gt 0 ]] || return 0
  printf '%s\n' "${!seen[@]}" | sort -r
}

# The stamp of a backup's file name (<db>-<stamp>.<ext>), or nothing when it is not one.
stamp_of() {  # file name
  local rest=${1#"${NAME}"-}
  rest=${rest%%.*}
  if [[ "${rest}" =~ ^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$ ]]; then printf '%s' "${rest}"; fi
}

# The newest good backup in $1 (a base name), or nothing.
newest_good() {  # dir
  local base candidates
  candidates=$(backups_in "$1")
  while IFS= read -r base; do
    [[ -n "${base}" ]] || continue
    # shellcheck disable=SC2310  # backup_good answers with its status
    if backup_good "$1" "${base}"; then
      printf '%s' "${base}"
      return 0
    fi
  done <<< "${candidates}"
}

# $1 := epoch seconds $2 as an ISO 8601 UTC time.
iso_time() {  # variable epoch
  printf -v "$1" '%(%Y-%m-%dT%H:%M:%SZ)T' "$2"
}

# Take the host-wide backup lock on fd 8: one backup or drill at a time, so the host carries the
# memory of one job at most (waits at most $LOCK_WAIT_S seconds).
take_lock() {
  exec 8>> "${LOCK_FILE}"
  flock -w "${LOCK_WAIT_S}" 8 || die 3 "another backup or the restore drill still holds ${LOCK_FILE} after ${LOCK_WAIT_S}s"
}
