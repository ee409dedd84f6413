#!/usr/bin/env bash
# The certificates the platform uses on this host, read where they are (CERT_FILES: the replication
# CA and server certificates, a replica's copy of the CA, the proxy's certificate) and written as
# textfile metrics for node exporter (METRICS_FILE):
#   platform_certificate_expiry_timestamp_seconds{file="..."}  when the certificate stops being valid
#   platform_certificate_readable{file="..."}                  1, or 0 for a file missing or not X.509
# One line per certificate. Exit status 1 when one is unreadable or expires within WARN_DAYS.
# Parameters: CERT_FILES (space-separated paths), METRICS_FILE, WARN_DAYS.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail
umask 022

now=$(date +%s)
status=0
metrics=$(mktemp "${METRICS_FILE}.XXXXXX")
trap 'rm -f "${metrics}"' EXIT
{
  echo "# HELP platform_certificate_expiry_timestamp_seconds When the certificate's validity ends (notAfter)."
  echo "# TYPE platform_certificate_expiry_timestamp_seconds gauge"
  echo "# HELP platform_certificate_readable Whether the certificate file could be read as X.509."
  echo "# TYPE platform_certificate_readable gauge"
} > "${metrics}"
read -r -a files <<< "${CERT_FILES}"
for file in "${files[@]}"; do
  end=""
  if [[ -r "${file}" ]] && end=$(openssl x509 -noout -enddate -in "${file}" 2>/dev/null); then
    expiry=$(date -d "${end#notAfter=}" +%s)
    days=$(((expiry - now) / 86400))
    printf 'platform_certificate_readable{file="%s"} 1\n' "${file}" >> "${metrics}"
    printf 'platform_certificate_expiry_timestamp_seconds{file="%s"} %s\n' "${file}" "${expiry}" >> "${metrics}"
    if ((days < WARN_DAYS)); then
      echo "${file}: expires in ${days} days (${end#notAfter=})"
      status=1
    else
      echo "${file}: valid for ${days} more days"
    fi
  else
    printf 'platform_certificate_readable{file="%s"} 0\n' "${file}" >> "${metrics}"
    echo "${file}: not readable as a certificate"
    status=1
  fi
done
chmod 644 "${metrics}"
mv -f "${metrics}" "${METRICS_FILE}"
trap - EXIT
exit "${status}"
