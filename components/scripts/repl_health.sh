#!/usr/bin/env bash
# Replication health of the Tencent host's replicas, one line each and a Prometheus textfile
# (METRICS_FILE, replaced atomically) for the node exporter's textfile collector:
#   platform_replication_healthy, _io_running, _sql_running, _lag_seconds, _lag_bytes (when
#   known), _last_error_info{error="..."} (when there is one), _last_run_timestamp_seconds.
# Per engine: MySQL/MariaDB from SHOW SLAVE/REPLICA STATUS (IO and SQL threads, Seconds_Behind,
# the binary log bytes read but not applied, the last IO/SQL error); PostgreSQL from the
# subscription's apply worker and, on the source over verified TLS as the replication user, its
# walsender's replay lag (seconds and bytes); Redis from INFO replication (the link, seconds
# since the source last spoke; no byte figure: the source's offset is not readable by the
# replication user), and when the link is down a TLS probe of the source names the cause.
# Installed as a script with a systemd timer (repl_health_install.sh); exits 1 when a replica is
# unhealthy, after writing the metrics. Every probe is bounded (timeout).
# Parameters: REPLICA_NAMES, REPLICA_KINDS, REPLICA_PORTS, REPLICA_DATABASES, REPLICA_SECRET_FILES,
# REPLICA_PASS_FILES, SUBSCRIPTION, METRICS_FILE, TLS_VERIFY.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
# shellcheck disable=SC2312  # substitutions quote a value or read output that the next line checks
set -euo pipefail
umask 022

read -ra names < <(printf '%s\n' "${REPLICA_NAMES}")
read -ra kinds < <(printf '%s\n' "${REPLICA_KINDS}")
read -ra ports < <(printf '%s\n' "${REPLICA_PORTS}")
read -ra databases < <(printf '%s\n' "${REPLICA_DATABASES}")
read -ra secret_files < <(printf '%s\n' "${REPLICA_SECRET_FILES}")
read -ra pass_files < <(printf '%s\n' "${REPLICA_PASS_FILES}")

# Each check prints key=value lines (io, sql, lag_seconds, lag_bytes, error); anything else it
# prints (a failure on the way) becomes the error.

check_mysql() {
  local io sql
  find_mysql_socket
  mysql_status
  if [[ -z "${repl_status[Source_Host]:-}" ]]; then
    printf 'io=0\nsql=0\nerror=not a replica (no source configured)\n'
    return 0
  fi
  io=${repl_status[Replica_IO_Running]:-No} sql=${repl_status[Replica_SQL_Running]:-No}
  printf 'io=%s\nsql=%s\n' "$([[ "${io}" == Yes ]] && echo 1 || echo 0)" "$([[ "${sql}" == Yes ]] && echo 1 || echo 0)"
  [[ "${repl_status[Seconds_Behind_Source]:-NULL}" == NULL ]] || printf 'lag_seconds=%s\n' "${repl_status[Seconds_Behind_Source]}"
  if [[ -n "${repl_status[Source_Log_File]:-}" && "${repl_status[Source_Log_File]}" == "${repl_status[Relay_Source_Log_File]:-}" ]]; then
    printf 'lag_bytes=%s\n' "$((repl_status[Read_Source_Log_Pos] - repl_status[Exec_Source_Log_Pos]))"
  fi
  if [[ -n "${repl_status[Last_IO_Error]:-}" ]]; then
    printf 'error=IO: %s\n' "${repl_status[Last_IO_Error]}"
  elif [[ -n "${repl_status[Last_SQL_Error]:-}" ]]; then
    printf 'error=SQL: %s\n' "${repl_status[Last_SQL_Error]}"
  elif [[ "${io}" != Yes ]]; then
    printf 'error=IO thread %s\n' "${io}"
  elif [[ "${sql}" != Yes ]]; then
    printf 'error=SQL thread not running\n'
  fi
}

check_postgres() {
  local sub running conninfo host="" port="" dbname="" user="" ca="" word out errors
  find_postgres
  sub=$(sql_literal "${SUBSCRIPTION}")
  conninfo=$(echo "SELECT subconninfo FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
    WHERE d.datname = current_database() AND s.subname = ${sub};" | local_psql "${DATABASE}")
  if [[ -z "${conninfo}" ]]; then
    printf 'io=0\nsql=0\nerror=no subscription %s in %s\n' "${SUBSCRIPTION}" "${DATABASE}"
    return 0
  fi
  # The plain words this platform wrote; the password (quoted) is not needed: PASS_FILE has it.
  for word in ${conninfo}; do
    case "${word}" in
      host=*) host=${word#host=} ;;
      port=*) port=${word#port=} ;;
      dbname=*) dbname=${word#dbname=} ;;
      user=*) user=${word#user=} ;;
      sslrootcert=*) ca=${word#sslrootcert=} ;;
      *) ;;
    esac
  done
  running=$(echo "SELECT count(*) FROM pg_stat_subscription WHERE subname = ${sub} AND relid IS NULL AND pid IS NOT NULL;" \
    | local_psql "${DATABASE}")
  printf 'io=%s\nsql=%s\n' "${running}" "${running}"
  # shellcheck disable=SC2310  # probe_postgres answers with its status
  if out=$(probe_postgres "${host}" "${port}" "${dbname}" "${user}" "${ca}" "${PASS_FILE}" <<< \
    "SELECT round(COALESCE(EXTRACT(EPOCH FROM replay_lag), 0))::bigint || ' ' || pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
     FROM pg_stat_replication WHERE application_name = ${sub};"); then
    if [[ -n "${out}" ]]; then
      printf 'lag_seconds=%s\nlag_bytes=%s\n' "${out%% *}" "${out##* }"
    elif [[ "${running}" == 1 ]]; then
      printf 'error=the source has no walsender for %s\n' "${SUBSCRIPTION}"
    fi
  else
    printf 'error=source: %s\n' "${out//$'\n'/; }"
    return 0
  fi
  if [[ "${running}" != 1 ]]; then
    errors=$(echo "SELECT apply_error_count || ' apply, ' || sync_error_count || ' copy' FROM pg_stat_subscription_stats
      WHERE subname = ${sub};" | local_psql "${DATABASE}" 2>/dev/null || true)
    printf 'error=apply worker not running (errors so far: %s; see the PostgreSQL log)\n' "${errors:-unknown}"
  fi
}

check_redis() {
  local info link host port user auth ca error
  info=$(printf 'INFO replication\n' | local_redis)
  if [[ "$(info_field "${info}" role)" != slave ]]; then
    printf 'io=0\nsql=0\nerror=not a replica (role %s)\n' "$(info_field "${info}" role)"
    return 0
  fi
  link=$(info_field "${info}" master_link_status)
  if [[ "${link}" == up ]]; then
    printf 'io=1\nsql=1\nlag_seconds=%s\n' "$(info_field "${info}" master_last_io_seconds_ago)"
    return 0
  fi
  printf 'io=0\nsql=0\n'
  host=$(info_field "${info}" master_host) port=$(info_field "${info}" master_port)
  user=$(redis_config masteruser) auth=$(redis_config masterauth) ca=$(redis_config tls-ca-cert-file)
  # shellcheck disable=SC2310  # probe_redis answers with its status
  error=$(probe_redis "${host}" "${port}" "${user}" "${auth}" "${ca}") \
    && error="link down for $(info_field "${info}" master_link_down_since_seconds) s (the source answers a probe)"
  printf 'error=%s\n' "${error}"
}

label() {  # a Prometheus label value
  local value=${1//\\/\\\\}
  value=${value//\"/\\\"}
  printf '%s' "${value//$'\n'/\\n}"
}

metrics=""
lines=()
unhealthy=0
add_metric() {  # name labels value
  metrics+="$1{$2} $3"$'\n'
}
for index in "${!names[@]}"; do
  # shellcheck disable=SC2034  # PORT and LOCAL_SECRET_FILE are read by the library's functions
  NAME=${names[index]} PORT=${ports[index]} DATABASE=${databases[index]}
  # shellcheck disable=SC2034
  LOCAL_SECRET_FILE=${secret_files[index]} PASS_FILE=${pass_files[index]}
  kind=${kinds[index]}
  declare -A found=([io]=0 [sql]=0 [lag_seconds]="" [lag_bytes]="" [error]="")
  other=""
  # A subshell: a check that fails (fail exits) ends there, its message becoming the error. The
  # probes of the source are bounded; the service's TimeoutStartSec bounds the rest.
  out=$("check_${kind}" 2>&1) || true
  while IFS= read -r line; do
    case "${line}" in
      io=* | sql=* | lag_seconds=* | lag_bytes=* | error=*) found[${line%%=*}]=${line#*=} ;;
      "") ;;
      *) other+="${other:+; }${line}" ;;
    esac
  done <<< "${out}"
  error=${found[error]:-${other}}
  healthy=0
  [[ "${found[io]}" != 1 || "${found[sql]}" != 1 || -n "${error}" ]] || healthy=1
  [[ "${healthy}" == 1 ]] || unhealthy=$((unhealthy + 1))
  labels="replica=\"$(label "${NAME}")\",kind=\"${kind}\""
  add_metric platform_replication_healthy "${labels}" "${healthy}"
  add_metric platform_replication_io_running "${labels}" "${found[io]:-0}"
  add_metric platform_replication_sql_running "${labels}" "${found[sql]:-0}"
  [[ -z "${found[lag_seconds]}" ]] || add_metric platform_replication_lag_seconds "${labels}" "${found[lag_seconds]}"
  [[ -z "${found[lag_bytes]}" ]] || add_metric platform_replication_lag_bytes "${labels}" "${found[lag_bytes]}"
  [[ -z "${error}" ]] || add_metric platform_replication_last_error_info "${labels},error=\"$(label "${error}")\"" 1
  lines+=("${NAME} kind=${kind} healthy=${healthy} io=${found[io]:-0} sql=${found[sql]:-0} lag_seconds=${found[lag_seconds]:--} lag_bytes=${found[lag_bytes]:--} error=${error:--}")
  unset found
done

header="# HELP platform_replication_healthy 1 when the replica's link and apply run without error.
# TYPE platform_replication_healthy gauge
# HELP platform_replication_io_running 1 when the replica receives from its source.
# TYPE platform_replication_io_running gauge
# HELP platform_replication_sql_running 1 when the replica applies what it received.
# TYPE platform_replication_sql_running gauge
# HELP platform_replication_lag_seconds How far the replica is behind its source.
# TYPE platform_replication_lag_seconds gauge
# HELP platform_replication_lag_bytes Bytes of the source's log the replica has not applied yet.
# TYPE platform_replication_lag_bytes gauge
# HELP platform_replication_last_error_info The replica's last replication error.
# TYPE platform_replication_last_error_info gauge
# HELP platform_replication_last_run_timestamp_seconds When this check last ran.
# TYPE platform_replication_last_run_timestamp_seconds gauge"
[[ -d "${METRICS_FILE%/*}" ]] || install -d -m 755 "${METRICS_FILE%/*}"
tmp=$(mktemp "${METRICS_FILE}.XXXXXX")
printf '%s\n%splatform_replication_last_run_timestamp_seconds %s\n' "${header}" "${metrics}" "$(date +%s)" > "${tmp}"
chmod 644 "${tmp}"
mv -f "${tmp}" "${METRICS_FILE}"
for line in "${lines[@]}"; do echo "${line}"; done
[[ "${unhealthy}" == 0 ]]
