#!/usr/bin/env bash
# PostgreSQL in the backup programs:
# backup_postgres for platform-backup; verify_postgres and drill_postgres for platform-restore-drill.
# components/backups.py renders every engine's file between lib/backup_common.sh and each
# program's body; the program calls the function for the database's KIND.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the programs set pipefail and inherit_errexit, hold the
# variables and configuration (read_config) these functions use, and call them
ENGINES+=(postgres)
BACKUP_EXT[postgres]=tar

PG_TABLES="SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'"

psql_in() {  # database sql
  podman exec "${NAME}" psql -X -q -At -v ON_ERROR_STOP=1 -U "${DB_USER}" -d "$1" -c "$2"
}

backup_postgres() {
  local databases database index=0 tables=0 count
  tool=$(podman exec "${NAME}" pg_dump --version)
  databases=$(psql_in postgres "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
  work="${daily}/.tmp-${base}.d"
  mkdir -m 700 "${work}"
  podman exec "${NAME}" pg_dumpall -U "${DB_USER}" --globals-only > "${work}/globals.sql"
  : > "${work}/databases"
  while IFS= read -r database; do
    [[ -n "${database}" ]] || continue
    index=$((index + 1))
    printf '%s\n' "${database}" >> "${work}/databases"
    podman exec "${NAME}" pg_dump -U "${DB_USER}" -Fc -d "${database}" > "${work}/${index}.dump"
    count=$(psql_in "${database}" "${PG_TABLES}")
    tables=$((tables + count))
  done <<< "${databases}"
  [[ "${index}" -gt 0 ]] || fail 5 "no database to dump"
  tar -cf "${tmp}" -C "${work}" .
  checks[databases]=${index}
  checks[tables]=${tables}
}

drill_postgres() {
  local restore="${scratch}/restore" database index=0 tables=0 rows=0 count buffers=$((DRILL_MEMORY_MIB / 4 > 1 ? DRILL_MEMORY_MIB / 4 : 1))
  start_scratch -e POSTGRES_HOST_AUTH_METHOD=trust -e "POSTGRES_USER=${DB_USER}" "${IMAGE}" postgres \
    -c "shared_buffers=${buffers}MB" -c max_connections=10 -c fsync=off -c full_page_writes=off -c work_mem=1MB \
    -c maintenance_work_mem=8MB
  # Over TCP: the image's entrypoint first runs a temporary server on the socket only.
  wait_ready "PostgreSQL server" podman exec "${container}" pg_isready -q -h 127.0.0.1 -U "${DB_USER}" -d postgres
  mkdir -m 700 "${restore}"
  tar -xf "${file}" -C "${restore}"
  [[ -f "${restore}/globals.sql" && -f "${restore}/databases" ]] || fail "the archive lacks globals.sql or databases"
  # Roles first (those the scratch already has are reported as existing and left as they are).
  podman exec -i "${container}" psql -X -q -U "${DB_USER}" -d postgres < "${restore}/globals.sql" > /dev/null 2>&1 \
    || fail "the roles (globals.sql) could not be restored"
  while IFS= read -r database; do
    index=$((index + 1))
    local -a where=(--create -d postgres)
    [[ "${database}" != postgres ]] || where=(-d postgres)
    podman exec -i "${container}" pg_restore -U "${DB_USER}" --clean --if-exists --exit-on-error "${where[@]}" \
      < "${restore}/${index}.dump" || fail "pg_restore of database ${database} failed"
    count=$(podman exec "${container}" psql -X -q -At -U "${DB_USER}" -d "${database}" -c "${PG_TABLES}")
    tables=$((tables + count))
    count=$(podman exec "${container}" psql -X -q -At -U "${DB_USER}" -d "${database}" -c "SELECT coalesce(sum(
      (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname),
        false, true, '')))[1]::text::bigint), 0)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'")
    rows=$((rows + count))
  done < "${restore}/databases"
  found[databases]=${index}
  found[tables]=${tables}
  same databases
  same tables
  figures+=", rows ${rows}"
}

verify_postgres() {  # why it is not restored
  verify_listing '^(\./)?globals\.sql$' "$1"
}
