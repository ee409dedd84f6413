#!/usr/bin/env bash
# The TLS files of each replication source (Alibaba host): the program's CA, the source's server
# certificate and its key, in TLS_ROOT/<name>/ (ca.crt, server.crt, server.key), which the
# source's container mounts read-only (components/engines/base.py: TLS_MOUNT). Runs before the
# containers start; when a file changes under a running engine, the engine reloads its TLS
# (MySQL ALTER INSTANCE RELOAD TLS, MariaDB FLUSH SSL, PostgreSQL pg_reload_conf(), Redis CONFIG
# SET of its tls-* files), so a renewed certificate needs no restart. Unchanged files are not
# written and nothing is reloaded ("unchanged").
#
# stdin (components/replication.py: tls_stdin): sections "== ca", "== cert <name>", "== key <name>",
# each followed by its PEM. The key is a secret: it reaches its file through a pipe only.
# Owner: the certificate and CA are root's, 0644; the key is 0600 and owned by the engine's user,
# which PostgreSQL insists on: the owner of the source's data directory once the image's entrypoint
# has chowned it, else IMAGE_ENGINE_OWNER (the official images' uid 999).
# Parameters: TLS_ROOT, SOURCE_NAMES, SOURCE_KINDS, SOURCE_DATA_DIRS, SOURCE_SECRET_FILES,
# IMAGE_ENGINE_OWNER, PG_SUPERUSER, TLS_VERIFY, CA_FILE (each source's CA, relative to its directory).
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
# shellcheck disable=SC2312  # substitutions quote a value or read output that the next line checks
set -euo pipefail
umask 077
NAME=replication-tls

declare -A pem=()
section=""
while IFS= read -r line || [[ -n "${line}" ]]; do
  if [[ "${line}" == "== "* ]]; then
    section=${line#== }
    pem[${section}]=""
  elif [[ -n "${section}" ]]; then
    pem[${section}]+="${line}"$'\n'
  elif [[ -n "${line}" ]]; then
    fail "stdin: PEM before the first section header (== ca, == cert <name>, == key <name>)" 2
  fi
done
[[ -n "${pem[ca]:-}" ]] || fail "stdin: no CA (== ca)" 2

read -ra names < <(printf '%s\n' "${SOURCE_NAMES}")
read -ra kinds < <(printf '%s\n' "${SOURCE_KINDS}")
read -ra data_dirs < <(printf '%s\n' "${SOURCE_DATA_DIRS}")
read -ra secret_files < <(printf '%s\n' "${SOURCE_SECRET_FILES}")

# Check everything before writing anything: each certificate is signed by the CA and matches its key.
ca=${pem[ca]}
printf '%s' "${ca}" | openssl x509 -noout 2>/dev/null || fail "stdin: the CA is not a PEM certificate" 2
for name in "${names[@]}"; do
  cert=${pem["cert ${name}"]:-} key=${pem["key ${name}"]:-}
  [[ -n "${cert}" && -n "${key}" ]] || fail "stdin: no certificate or key for ${name}" 2
  verified=$(openssl verify -CAfile <(printf '%s' "${ca}") <(printf '%s' "${cert}") 2>&1) \
    || fail "the certificate of ${name} is not signed by the CA: ${verified##*: }" 2
  cert_public=$(printf '%s' "${cert}" | openssl x509 -noout -pubkey)
  key_public=$(printf '%s' "${key}" | openssl pkey -pubout 2>/dev/null) || fail "stdin: the key of ${name} is not a PEM key" 2
  [[ "${cert_public}" == "${key_public}" ]] || fail "the key of ${name} does not belong to its certificate" 2
done

changed=0
# Install content $2 at $1 with mode $3 and owner $4 through a file beside it; 0 when it changed.
put_file() {  # path content mode owner
  local tmp
  if [[ -f "$1" ]] && cmp -s "$1" <(printf '%s' "$2"); then
    if [[ "$(stat -c '%a %u:%g' "$1")" == "$3 $4" ]]; then return 1; fi
    chown "$4" "$1"
    chmod "$3" "$1"
    return 0
  fi
  tmp=$(mktemp "$1.XXXXXX")
  printf '%s' "$2" > "${tmp}"
  chown "$4" "${tmp}"
  chmod "$3" "${tmp}"
  mv -f "${tmp}" "$1"
}

# The engine reloads its TLS files, if it runs (podman exec answers 125 for a container that does
# not, or not yet: it reads the files when it starts).
reload() {  # kind
  local out status=0
  case "$1" in
    mysql)
      [[ -f "${SECRET_FILE}" ]] || { echo "${NAME}: not started yet"; return 0; }
      out=$(echo 'SELECT VERSION();' | container_mysql 2>&1) || status=$?
      if [[ "${status}" == 0 ]]; then
        if [[ "${out}" == *MariaDB* ]]; then
          out=$(echo 'FLUSH SSL;' | container_mysql 2>&1) || status=$?
        else
          out=$(echo 'ALTER INSTANCE RELOAD TLS;' | container_mysql 2>&1) || status=$?
        fi
      fi
      ;;
    postgres)
      out=$(echo 'SELECT pg_reload_conf();' | container_psql postgres 2>&1) || status=$?
      ;;
    redis)
      [[ -f "${SECRET_FILE}" ]] || { echo "${NAME}: not started yet"; return 0; }
      # Setting the files to the paths it already reads makes Redis load them again.
      out=$(printf 'CONFIG GET tls-*-file\n' | container_redis 2>&1) || status=$?
      if [[ "${status}" == 0 ]]; then
        local -a fields=() set_args=()
        mapfile -t fields <<< "${out}"
        local i
        for ((i = 0; i < ${#fields[@]}; i++)); do
          case "${fields[i]}" in
            tls-cert-file | tls-key-file | tls-ca-cert-file) set_args+=("${fields[i]}" "$(redis_word "${fields[i + 1]}")") ;;
            *) ;;
          esac
        done
        out=$(printf 'CONFIG SET %s\n' "${set_args[*]}" | container_redis 2>&1) || status=$?
        [[ "${status}" != 0 || "${out}" == *OK* ]] || status=1
      fi
      ;;
    *) fail "unknown kind $1" 2 ;;
  esac
  if [[ "${status}" == 125 ]]; then
    echo "${NAME}: not running; reads the new files when it starts"
  elif [[ "${status}" != 0 ]]; then
    fail "could not reload TLS: ${out}" 5
  else
    echo "${NAME}: reloaded TLS"
  fi
}

tls_dir_mode=755
if [[ ! -d "${TLS_ROOT}" ]]; then
  mkdir -p "${TLS_ROOT}"
  chmod 700 "${TLS_ROOT}"
fi
for index in "${!names[@]}"; do
  NAME=${names[index]}
  SECRET_FILE=${secret_files[index]}
  dir="${TLS_ROOT}/${NAME}"
  owner=${IMAGE_ENGINE_OWNER}
  if [[ -d "${data_dirs[index]}" ]]; then
    data_owner=$(stat -c %u:%g "${data_dirs[index]}")
    [[ "${data_owner}" == 0:* ]] || owner=${data_owner}
  fi
  source_changed=0
  if [[ ! -d "${dir}" ]]; then
    mkdir -m "${tls_dir_mode}" "${dir}"
    source_changed=1
  elif [[ "$(stat -c %a "${dir}")" != "${tls_dir_mode}" ]]; then
    chmod "${tls_dir_mode}" "${dir}"
  fi
  # shellcheck disable=SC2310  # put_file answers with its status
  if put_file "${dir}/${CA_FILE}" "${ca}" 644 0:0; then source_changed=1; fi
  # shellcheck disable=SC2310
  if put_file "${dir}/server.crt" "${pem["cert ${NAME}"]}" 644 0:0; then source_changed=1; fi
  # shellcheck disable=SC2310
  if put_file "${dir}/server.key" "${pem["key ${NAME}"]}" 600 "${owner}"; then source_changed=1; fi
  if [[ "${source_changed}" == 1 ]]; then
    changed=$((changed + 1))
    echo "${NAME}: wrote its TLS files (${TLS_VERIFY} by its replicas)"
    reload "${kinds[index]}"
  else
    echo "${NAME}: TLS unchanged"
  fi
done
NAME=replication-tls
if [[ "${changed}" == 0 ]]; then
  echo "${NAME}: unchanged"
else
  echo "${NAME}: ${changed} source(s) updated"
fi
