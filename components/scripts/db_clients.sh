#!/usr/bin/env bash
# The other host's services as users of one database on the Alibaba host, made inside its container
# (podman exec, as the replication and exporter users are), each with rights on what it owns only
# and reachable from the peer only, over TLS (the engine's certificate comes from repl_tls.sh; the
# services verify it against the program's CA):
#   mysql     CLIENT@PEER, REQUIRE SSL, with PRIVILEGES on its own database (CLIENT, '-' as '_'),
#             which is made when missing. The user is made with sql_log_bin=0 (the replicas do not
#             need it); the database is logged, so the replicas have it before its tables arrive.
#   postgres  login role CLIENT (no other attribute), owner of its database (made when missing),
#             which PUBLIC may not connect to; in pg_hba.conf a managed block: hostssl for CLIENT to
#             its database from PEER/32 (scram), the role refused on any other connection.
# A client that leaves CLIENTS loses its login (MySQL: the user is dropped; PostgreSQL: NOLOGIN and
# its pg_hba lines go); its database stays, with its data. STATE_DIR/clients/NAME.list holds the
# clients (CLIENT@PEER) a run applied, so a changed PEER drops the old account too.
# Runs again without changing anything when all is so ("unchanged").
#
# stdin: one line per client, "CLIENT PASSWORD" (components/clients.py: clients_stdin).
# Parameters: NAME, KIND, PEER, CLIENTS, PRIVILEGES, SECRET_FILE, PG_SUPERUSER, STATE_DIR.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
# shellcheck disable=SC2312  # substitutions quote a value or read output that the next line checks
set -euo pipefail
umask 077

declare -A passwords=()
client="" password=""
while IFS=' ' read -r client password; do
  [[ -n "${client}" ]] || continue
  check_password "password of client ${client}" "${password}"
  passwords[${client}]=${password}
done
for client in ${CLIENTS}; do
  [[ -n "${passwords[${client}]:-}" ]] || fail "no password on stdin for client ${client}" 2
done
password=""
# An engine's error message may quote a statement: run_sql redacts every client's password from it.
# shellcheck disable=SC2034  # read by run_sql (lib/repl.sh)
more_secrets=("${passwords[@]}")
list="${STATE_DIR}/clients/${NAME}.list"
changes=()

# The clients a former run applied (CLIENT@PEER), minus the ones this run keeps.
former=()
if [[ -f "${list}" ]]; then
  while IFS= read -r line; do
    [[ -z "${line}" ]] || [[ " ${CLIENTS} " == *" ${line%@*} "* && "${line#*@}" == "${PEER}" ]] || former+=("${line}")
  done < "${list}"
fi

# The engine's own part (components/engines/<kind>/clients.sh, rendered above this body).
declare -F "clients_${KIND}" > /dev/null || fail "${KIND} has no clients here (mysql and postgres have; redis's are in its auth file)" 2
"clients_${KIND}"

wanted=""
for client in ${CLIENTS}; do wanted+="${client}@${PEER}"$'\n'; done
if [[ ! -f "${list}" || "$(< "${list}")" != "${wanted%$'\n'}" ]]; then
  [[ -d "${list%/*}" ]] || mkdir -p "${list%/*}"
  printf '%s' "${wanted}" > "${list}.tmp"
  mv -f "${list}.tmp" "${list}"
fi

for change in "${changes[@]}"; do echo "${NAME}: ${change}"; done
[[ "${#changes[@]}" != 0 ]] || echo "${NAME}: unchanged (clients: ${CLIENTS:-none})"
