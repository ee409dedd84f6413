#!/usr/bin/env bash
# A replication source on the Alibaba host, set up inside its container (podman exec) so that the
# peer, and only the peer, may replicate from it over verified TLS (the server certificate and CA
# come from repl_tls.sh; the replica checks them: TLS_VERIFY):
#   mysql     user REPL_USER@PEER with REPLICATION SLAVE only, REQUIRE SSL; made with sql_log_bin=0,
#             so neither the statement nor the user reaches the binary log and the replicas.
#   postgres  login role REPL_USER with REPLICATION, pg_read_all_data (the subscriber's first copy
#             of each table) and pg_read_all_stats (its lag, for the health check); a publication
#             PUBLICATION FOR ALL TABLES in every database but "postgres"; and at the top of
#             pg_hba.conf a managed block: hostssl for REPL_USER from PEER/32 (scram), the role
#             refused on any other connection, plaintext included.
#   redis     nothing to change here: the replication ACL user is in the engine's auth file, which
#             the container's own step installs (components/engines/redis: secret_content); this
#             checks that the running engine has it with this password and serves TLS only.
# Runs again without changing anything when the engine already is so ("unchanged"); replication
# itself is never restarted here.
#
# stdin: the replication password (components/replication.py: source_stdin).
# A MySQL password is compared through a salted digest in STATE_DIR/replication/NAME.source (the
# engine keeps only a hash it cannot be compared with); a changed one is set again.
# Parameters: NAME, KIND, PEER, REPL_USER, SECRET_FILE, PG_SUPERUSER, PUBLICATION, STATE_DIR,
# TLS_VERIFY, CA_FILE.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
# shellcheck disable=SC2312  # substitutions quote a value or read output that the next line checks
set -euo pipefail
umask 077

password=""
IFS= read -r -d '' password || true
password=${password%$'\n'}
check_password "replication password" "${password}"
[[ -s "${CA_FILE}" ]] || fail "no CA at ${CA_FILE}: the TLS step writes it before the sources are set up" 4
# shellcheck disable=SC2034  # read by source_<kind> (components/engines/<kind>/source.sh)
marker="${STATE_DIR}/replication/${NAME}.source"
changes=()

report() {
  local change
  for change in "${changes[@]}"; do echo "${NAME}: ${change}"; done
}

# The engine's own part (components/engines/<kind>/source.sh, rendered above this body).
declare -F "source_${KIND}" > /dev/null || fail "${KIND} cannot replicate across clouds" 2
"source_${KIND}"
report
if [[ "${#changes[@]}" == 0 ]]; then
  echo "${NAME}: unchanged (replication source for ${PEER} over TLS)"
else
  echo "${NAME}: updated"
fi
