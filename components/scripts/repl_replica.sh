#!/usr/bin/env bash
# A native engine on the Tencent host becomes a replica of its Alibaba source, over TLS that
# verifies the source's certificate against the program's CA (TLS_VERIFY, CA_FILE):
#   mysql     GTID replication on the default connection: MariaDB CHANGE MASTER TO ...
#             MASTER_USE_GTID=slave_pos, MASTER_SSL=1, MASTER_SSL_VERIFY_SERVER_CERT=1; MySQL 8.0.23+
#             CHANGE REPLICATION SOURCE TO ... SOURCE_AUTO_POSITION=1, SOURCE_SSL=1,
#             SOURCE_SSL_VERIFY_SERVER_CERT=1 (chosen from VERSION()). Its other databases stay.
#   postgres  a subscription SUBSCRIPTION to the source's publication in DATABASE (made if missing),
#             with sslmode=verify-full; on first setup the schema comes from the source
#             (pg_dump --schema-only) when the database has no tables yet. Later DDL is applied on
#             both sides by hand (logical replication carries rows, not DDL).
#   redis     REPLICAOF with masteruser/masterauth and tls-replication; its own dataset is replaced
#             by the source's on the first sync. Persisted with CONFIG REWRITE.
# The engine is reached locally: MySQL as root on its unix socket, PostgreSQL as its OS user on its
# socket, Redis on 127.0.0.1:PORT; an admin password, if the engine needs one, is read from
# LOCAL_SECRET_FILE (optional, 0600). Before anything changes, the source is probed with the same
# TLS settings and credentials, so a wrong CA, name or password fails here, not in the engine.
# Then it waits (bounded: SYNC_TIMEOUT) for the first sync. Running again with everything in place
# restarts nothing and says "unchanged".
#
# Before the engine first follows its source (it does not yet), what it holds is dumped below
# DUMP_DIR (a directory per attempt, named by its UTC time, with manifest.json: what it held, each
# file's size and sha256). An engine that holds data of its own (Redis: any key, which REPLICAOF
# replaces; MySQL: any database beside the system ones, which the source's binlog would be applied
# beside or into; PostgreSQL: DATABASE's tables holding rows, or schemas and tables the source lacks)
# is refused there, before anything changes, unless DISCARD is 1. Then that data is cleared once the
# source has been verified (Redis: by the first sync; MySQL: its databases dropped; PostgreSQL: its
# tables truncated, those the source lacks dropped), and the dump stays.
#
# stdin (components/replication.py: replica_stdin): the replication password, a newline, the CA (PEM).
# The password reaches the engine in the statement that configures replication (on a pipe); the
# engine keeps it where replication needs it (MySQL's connection metadata, PostgreSQL's
# pg_subscription, Redis's config file). PASS_FILE (0600) keeps it for pg_dump and the health check.
# Parameters: NAME, KIND, PORT, SOURCE_NAME, SOURCE_HOST, SOURCE_PORT, SOURCE_USER, SOURCE_SERVER_ID,
# DATABASE, PUBLICATION, SUBSCRIPTION, CA_FILE, REPLICA_DIR, PASS_FILE, LOCAL_SECRET_FILE, STATE_DIR,
# SYNC_TIMEOUT, TLS_VERIFY, DUMP_DIR, DISCARD.
# Removes: ${CA_FILE}.new
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
# shellcheck disable=SC2312  # substitutions quote a value or read output that the next line checks
set -euo pipefail
umask 077

input=""
IFS= read -r -d '' input || true
password=${input%%$'\n'*}
ca=${input#"${password}"}
ca=${ca#$'\n'}
check_password "replication password" "${password}"
if [[ "${ca}" != "-----BEGIN CERTIFICATE-----"* ]] || ! printf '%s' "${ca}" | openssl x509 -noout 2>/dev/null; then
  fail "stdin: no CA certificate (PEM) after the password line" 2
fi
changes=()
# shellcheck disable=SC2034  # read by replica_<kind> (components/engines/<kind>/replica.sh)
marker="${STATE_DIR}/replication/${NAME}.replica"
# shellcheck disable=SC2034  # read by replica_<kind> (components/engines/<kind>/replica.sh)
applied="${SOURCE_HOST}:${SOURCE_PORT}:${SOURCE_USER}"$'\n'"${password}"
deadline=$((SECONDS + SYNC_TIMEOUT))

note() { echo "${NAME}: $*"; }

# The CA where the engine's own user can read it (REPLICA_DIR is 0755; the CA is public). A new
# CA is staged beside the file and used by the probe first: the file changes only once the source
# has been verified with it, so a wrong CA never replaces one that works.
ca_probe=${CA_FILE}
ca_changed=0
stage_ca() {
  # Created world-traversable, parents included: the engine's own user reads the CA below it.
  [[ -d "${REPLICA_DIR}" ]] || (umask 022 && mkdir -p "${REPLICA_DIR}")
  if [[ -f "${CA_FILE}" ]] && cmp -s "${CA_FILE}" <(printf '%s' "${ca}"); then
    [[ "$(stat -c %a "${CA_FILE}")" == 644 ]] || chmod 644 "${CA_FILE}"
    return 0
  fi
  printf '%s' "${ca}" > "${CA_FILE}.new"
  chmod 644 "${CA_FILE}.new"
  # shellcheck disable=SC2034  # read by replica_<kind> (components/engines/<kind>/replica.sh)
  ca_probe="${CA_FILE}.new" ca_changed=1
}
commit_ca() {
  [[ "${ca_changed}" == 1 ]] || return 0
  mv -f "${CA_FILE}.new" "${CA_FILE}"
  # shellcheck disable=SC2034  # read by replica_<kind> (components/engines/<kind>/replica.sh)
  ca_probe=${CA_FILE}
  changes+=("CA written to ${CA_FILE}")
}
# The source refuses the replication user over TLS verified with the staged CA: stop here.
refused() {  # the probe's message
  rm -f "${CA_FILE}.new"
  # No connection at all is a network matter (a security group, the source down), not TLS's.
  case "$1" in
    *"timeout expired"* | *"timed out"* | *"Connection refused"* | *"No route to host"* | *"Can't connect"* | *"Could not connect"*)
      fail "${SOURCE_NAME} at ${SOURCE_HOST}:${SOURCE_PORT} cannot be reached from this host (is it running, and do both security groups admit this host's connection to it?): $1" 6
      ;;
    *) ;;
  esac
  fail "${SOURCE_NAME} at ${SOURCE_HOST}:${SOURCE_PORT} refuses ${SOURCE_USER} over TLS verified with the program's CA: $1" 6
}

# Whether the deadline has passed (SECONDS counts whole seconds, hence "greater").
past_deadline() { [[ "${SECONDS}" -gt "${deadline}" ]]; }

# What the engine holds before it first follows its source: dumped, and refused unless DISCARD.
discard_pending=0
write_manifest() {  # directory, what the engine held
  local file entries=() size sum
  for file in "$1"/*; do
    [[ -f "${file}" && "${file##*/}" != manifest.json ]] || continue
    size=$(stat -c %s "${file}")
    sum=$(sha256sum "${file}")
    entries+=("{\"file\": \"${file##*/}\", \"bytes\": ${size}, \"sha256\": \"${sum%% *}\"}")
  done
  local joined
  joined=$(IFS=,; printf '%s' "${entries[*]}")
  printf '{"name": "%s", "kind": "%s", "source": "%s", "held": "%s", "discard": %s, "files": [%s]}\n' \
    "${NAME}" "${KIND}" "${SOURCE_NAME}" "${2//[\"\\]/_}" "$([[ "${DISCARD}" == 1 ]] && echo true || echo false)" \
    "${joined}" > "$1/manifest.json"
}
guard_first_replica() {
  local held dir
  held=$("holds_${KIND}")
  dir="${DUMP_DIR}/$(date -u +%Y%m%dT%H%M%SZ)"
  [[ -d "${DUMP_DIR}" ]] || (umask 077 && mkdir -p "${DUMP_DIR}")
  (umask 077 && mkdir -p "${dir}")
  [[ -z "${held}" ]] || "dump_${KIND}" "${dir}"
  write_manifest "${dir}" "${held}"
  if [[ -z "${held}" ]]; then
    changes+=("held no data of its own before it became a replica (manifest: ${dir}/manifest.json)")
    return 0
  fi
  if [[ "${DISCARD}" != 1 ]]; then
    fail "holds ${held}, which becoming a replica of ${SOURCE_NAME} would replace or mix with the source's; its \
dump is kept in ${dir}. Move that data to ${SOURCE_NAME} first, or set replicaOf.discard: true for ${NAME} to \
replace it with the source's data" 8
  fi
  discard_pending=1 discarded="${held} (its dump is kept in ${dir})"
}
# Called by replica_<kind> once the source has been verified, before it is configured.
discard_if_pending() {
  [[ "${discard_pending}" == 1 ]] || return 0
  "discard_${KIND}"
  discard_pending=0
  changes+=("its own data discarded: ${discarded}")
}

# The engine's own part (components/engines/<kind>/replica.sh, rendered above this body).
declare -F "replica_${KIND}" > /dev/null || fail "${KIND} cannot replicate across clouds" 2
# shellcheck disable=SC2310  # following_<kind> answers with its status
if ! "following_${KIND}"; then guard_first_replica; fi
"replica_${KIND}"
for change in "${changes[@]}"; do note "${change}"; done
if [[ "${#changes[@]}" == 0 ]]; then
  note "unchanged (replica of ${SOURCE_NAME} at ${SOURCE_HOST}:${SOURCE_PORT}, TLS ${TLS_VERIFY})"
else
  note "updated"
fi
