#!/usr/bin/env bash
# MySQL (and MariaDB) in the backup programs:
# backup_mysql for platform-backup; verify_mysql and drill_mysql for platform-restore-drill.
# components/backups.py renders every engine's file between lib/backup_common.sh and each
# program's body; the program calls the function for the database's KIND.
# shellcheck disable=SC2034,SC2154,SC2312,SC2329  # the programs set pipefail and inherit_errexit, hold the
# variables and configuration (read_config) these functions use, and call them
ENGINES+=(mysql)
BACKUP_EXT[mysql]=sql.gz

# In the container: the MySQL tool $1 (MariaDB images name them mariadb-*); MySQL's mysqldump
# leaves the source's GTID state out (--set-gtid-purged=OFF), so the dump restores anywhere.
# shellcheck disable=SC2016  # expanded by the container's sh
MYSQL_TOOL='tool=$1; shift
case $tool in mysqldump) alt=mariadb-dump ;; mysqladmin) alt=mariadb-admin ;; *) alt=mariadb ;; esac
command -v "$tool" > /dev/null 2>&1 || tool=$alt
first=$1; shift
if [ "$tool" = mysqldump ]; then
  case $(mysqldump --version) in *MariaDB*) ;; *) set -- --set-gtid-purged=OFF "$@" ;; esac
fi
exec "$tool" "$first" "$@"'

# The engines' own schemas are left out of the check figures (tables of the applications only).
SYSTEM_SCHEMAS="'mysql', 'information_schema', 'performance_schema', 'sys'"

mysql_credentials() {
  local password
  password=$(< "${SECRET_FILE}")
  password=${password//\\/\\\\}
  password=${password//\"/\\\"}
  printf '[client]\nuser=%s\npassword="%s"\n' "${DB_USER}" "${password}"
}

# The tool with the credentials as its option file on stdin.
mysql_tool() {  # tool args...
  mysql_credentials | podman exec -i "${NAME}" sh -c "${MYSQL_TOOL}" sh "$@"
}

backup_mysql() {
  local figures
  tool=$(podman exec "${NAME}" sh -c "${MYSQL_TOOL}" sh mysqldump --version)
  # Every database, the accounts (mysql) included; the server's help tables are its own, not data.
  mysql_tool mysqldump --defaults-extra-file=/dev/stdin --single-transaction --quick --routines --events --triggers \
    --hex-blob --flush-privileges --default-character-set=utf8mb4 --ignore-table=mysql.help_topic \
    --ignore-table=mysql.help_category --ignore-table=mysql.help_relation --ignore-table=mysql.help_keyword \
    --all-databases | gzip -c > "${tmp}"
  figures=$(mysql_tool mysql --defaults-extra-file=/dev/stdin -N -B -e "SELECT
    (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name NOT IN (${SYSTEM_SCHEMAS})),
    (SELECT COUNT(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE'
      AND table_schema NOT IN (${SYSTEM_SCHEMAS}))")
  read -r "checks[databases]" "checks[tables]" <<< "${figures}"
}

drill_mysql() {
  local out buffer=$((DRILL_MEMORY_MIB / 4 > 8 ? DRILL_MEMORY_MIB / 4 : 8))
  start_scratch -e MYSQL_ALLOW_EMPTY_PASSWORD=yes "${IMAGE}" "--innodb-buffer-pool-size=${buffer}M" \
    --performance-schema=OFF --max-connections=10 --skip-name-resolve
  # Over TCP: the image's entrypoint first runs a temporary server on the socket only.
  wait_ready "MySQL server" podman exec "${container}" sh -c "${MYSQL_TOOL}" sh mysqladmin --protocol=tcp \
    -h 127.0.0.1 ping
  # One session restores and checks: the dump restores the backup's own accounts, so a new
  # session would need the production password.
  out=$({
    gzip -dc -- "${file}"
    cat << SQL
SET SESSION group_concat_max_len = 4194304;
SELECT 'platform-check',
  (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name NOT IN (${SYSTEM_SCHEMAS})),
  (SELECT COUNT(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE'
    AND table_schema NOT IN (${SYSTEM_SCHEMAS}));
SELECT COALESCE(CONCAT('SELECT ''platform-rows'', ', GROUP_CONCAT(CONCAT('(SELECT COUNT(*) FROM \`',
    REPLACE(table_schema, '\`', '\`\`'), '\`.\`', REPLACE(table_name, '\`', '\`\`'), '\`)') SEPARATOR ' + ')),
    'SELECT ''platform-rows'', 0') INTO @platform_rows
  FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN (${SYSTEM_SCHEMAS});
PREPARE platform_rows FROM @platform_rows;
EXECUTE platform_rows;
DEALLOCATE PREPARE platform_rows;
SQL
  } | podman exec -i "${container}" sh -c "${MYSQL_TOOL}" sh mysql -uroot -N -B --binary-mode) \
    || fail "the restore into the scratch MySQL failed"
  read -r _ "found[databases]" "found[tables]" <<< "$(grep '^platform-check' <<< "${out}" || true)"
  read -r _ "found[rows]" <<< "$(grep '^platform-rows' <<< "${out}" || true)"
  same databases
  same tables
  [[ "${found[rows]:-}" =~ ^[0-9]+$ ]] || fail "the row count query answered nothing"
  figures+=", rows ${found[rows]}"
}

# The drill's check of a dump it does not restore.
verify_mysql() {  # why it is not restored
  # A dump mysqldump finished ends with its "Dump completed" comment.
  gzip -dc -- "${file}" | tail -n 1 | grep -q '^-- Dump completed' || fail "the dump is cut short or unreadable"
  figures="dump verified (gzip intact, complete); not restored: $1"
}
