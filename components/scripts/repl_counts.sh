#!/usr/bin/env bash
# Row counts of what replication carries, for the consistency alert (ReplicaRowsDiffer,
# components/monitoring.py), which compares the two hosts' counts by source and table. SIDE:
#   source   the Alibaba host: each replication source inside its container (podman exec);
#   replica  the Tencent host: each replica through its local socket.
# What is counted: MySQL every base table outside the system schemas ("schema.table");
# PostgreSQL every table outside pg_catalog and information_schema of each database the
# publication covers on the source (all but "postgres" and the templates), of the subscribed one
# on the replica ("database.schema.table"); Redis each logical database's keys ("db0").
# One textfile for node exporter (METRICS_FILE), replaced atomically:
#   platform_replication_rows{source,side,kind,database,table}  the count (source: the source's
#     name; database: MySQL's schema, PostgreSQL's database, Redis's "dbN")
#   platform_replication_counted{source,side,kind}      1 when the counts were taken, else 0
# Exit status 1 when a database could not be counted (after writing the file).
# On the source side the run takes the host's backup lock (LOCK_FILE, when backups are set up),
# without waiting: a backup or the drill running skips this run (their memory slot is this one's).
# Parameters: SIDE, NAMES, SOURCES, KINDS, PORTS, DATABASES, SECRET_FILES, PG_SUPERUSER,
# METRICS_FILE, LOCK_FILE.
# shellcheck disable=SC2153,SC2154  # parameters are rendered above this body by components/provisioning.py
# shellcheck disable=SC2310,SC2312,SC2329  # clients answer with their status; substitutions read output the next line checks; count_<kind> is called by name
set -euo pipefail
umask 022

if [[ -n "${LOCK_FILE}" && -d "${LOCK_FILE%/*}" ]]; then
  exec 9>> "${LOCK_FILE}"
  if ! flock -n 9; then
    echo "replication counts: a backup or the restore drill runs; counted at the next run"
    exit 0
  fi
fi

read -ra names < <(printf '%s\n' "${NAMES}")
read -ra sources < <(printf '%s\n' "${SOURCES}")
read -ra kinds < <(printf '%s\n' "${KINDS}")
read -ra ports < <(printf '%s\n' "${PORTS}")
read -ra databases < <(printf '%s\n' "${DATABASES}")
read -ra secret_files < <(printf '%s\n' "${SECRET_FILES}")

mysql_client() {  # client arguments...; stdin: SQL
  if [[ "${SIDE}" == source ]]; then
    container_mysql "$@"
  else
    find_mysql_socket
    local_mysql "$@"
  fi
}

psql_client() {  # database; stdin: SQL
  if [[ "${SIDE}" == source ]]; then
    container_psql "$1"
  else
    find_postgres
    local_psql "$1"
  fi
}

redis_client() {  # commands on stdin
  if [[ "${SIDE}" == source ]]; then container_redis; else local_redis; fi
}

# Each prints "database<TAB>table<TAB>count" lines, and fails when a client does (errexit is off
# inside `if`).
count_mysql() {
  local query
  # The server writes the counting query: one COUNT(*) per table, identifiers quoted by it.
  query=$(mysql_client -N -B --raw <<'SQL'
SET SESSION group_concat_max_len = 16777216;
SELECT GROUP_CONCAT(CONCAT('SELECT ', QUOTE(table_schema), ', ', QUOTE(CONCAT(table_schema, '.', table_name)),
  ', COUNT(*) FROM `',
  REPLACE(table_schema, '`', '``'), '`.`', REPLACE(table_name, '`', '``'), '`') ORDER BY table_schema, table_name
  SEPARATOR ' UNION ALL ')
FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema');
SQL
  ) || return 1
  [[ -z "${query}" || "${query}" == NULL ]] || printf '%s;\n' "${query}" | mysql_client -N -B --raw
}

# Every table of database $1 but the catalog's, with its count (partitions counted in their parent).
PG_COUNTS="SELECT current_database() || E'\t' || format('%s.%s.%s', current_database(), n.nspname, c.relname) || E'\t' ||
  (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname),
    false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
ORDER BY 1;"

count_postgres() {
  local list database
  if [[ "${SIDE}" == replica ]]; then
    psql_client "${DATABASE}" <<< "${PG_COUNTS}"
    return
  fi
  # The publication is in every database but "postgres" (repl_source.sh).
  list=$(psql_client postgres <<< "SELECT datname FROM pg_database
    WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres' ORDER BY 1;") || return 1
  while IFS= read -r database; do
    [[ -z "${database}" ]] || psql_client "${database}" <<< "${PG_COUNTS}" || return 1
  done <<< "${list}"
}

count_redis() {
  local info line db0=0
  info=$(printf 'INFO keyspace\n' | redis_client) || return 1
  # "db0:keys=3,expires=0,avg_ttl=0"; an empty database has no line, and counts 0.
  while IFS= read -r line; do
    line=${line%$'\r'}
    [[ "${line}" =~ ^(db[0-9]+):keys=([0-9]+), ]] || continue
    if [[ "${BASH_REMATCH[1]}" == db0 ]]; then db0=${BASH_REMATCH[2]}; continue; fi
    printf '%s\t%s\t%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
  done <<< "${info}"
  printf 'db0\tdb0\t%s\n' "${db0}"
}

label() {  # a Prometheus label value
  local value=${1//\\/\\\\}
  value=${value//\"/\\\"}
  printf '%s' "${value//$'\n'/\\n}"
}

metrics="" failed=0
for index in "${!names[@]}"; do
  # shellcheck disable=SC2034  # NAME, PORT, SECRET_FILE and LOCAL_SECRET_FILE are the library's
  NAME=${names[index]} PORT=${ports[index]} DATABASE=${databases[index]}
  # shellcheck disable=SC2034
  SECRET_FILE=${secret_files[index]} LOCAL_SECRET_FILE=${secret_files[index]}
  kind=${kinds[index]}
  labels="source=\"$(label "${sources[index]}")\",side=\"${SIDE}\",kind=\"${kind}\""
  # A subshell: a client that fails (fail exits) ends there, its words on stderr.
  if counts=$("count_${kind}"); then
    tables=0
    while IFS=$'\t' read -r database table count; do
      [[ -n "${table}" && "${count}" =~ ^[0-9]+$ ]] || continue
      where="database=\"$(label "${database}")\",table=\"$(label "${table}")\""
      metrics+="platform_replication_rows{${labels},${where}} ${count}"$'\n'
      tables=$((tables + 1))
    done <<< "${counts}"
    metrics+="platform_replication_counted{${labels}} 1"$'\n'
    echo "${NAME}: ${tables} table(s) counted"
  else
    metrics+="platform_replication_counted{${labels}} 0"$'\n'
    echo "${NAME}: could not be counted (its words above)" >&2
    failed=1
  fi
done

header="# HELP platform_replication_rows Rows of a replicated table (a Redis database's keys), by source and side.
# TYPE platform_replication_rows gauge
# HELP platform_replication_counted 1 when this side's counts of the source were taken at the last run.
# TYPE platform_replication_counted gauge"
[[ -d "${METRICS_FILE%/*}" ]] || install -d -m 755 "${METRICS_FILE%/*}"
tmp=$(mktemp "${METRICS_FILE}.XXXXXX")
printf '%s\n%s' "${header}" "${metrics}" > "${tmp}"
chmod 644 "${tmp}"
mv -f "${tmp}" "${METRICS_FILE}"
exit "${failed}"
