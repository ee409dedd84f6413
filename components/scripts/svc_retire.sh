#!/usr/bin/env bash
# Retire a service (platform:retired.services): stop and disable its unit, remove the unit, its
# releases and the marker of the port it held. Safe to run again: with nothing left to remove it
# changes nothing and says so.
# Parameters: NAME, SERVICE_DIR, UNIT_FILE, UNIT_NAME, STATE_DIR.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

changes=0
if systemctl is-active --quiet "$UNIT_NAME"; then
  systemctl stop "$UNIT_NAME"
  changes=$((changes + 1))
fi
if systemctl is-enabled --quiet "$UNIT_NAME" 2>/dev/null; then
  systemctl disable --quiet "$UNIT_NAME"
  changes=$((changes + 1))
fi
if [ -e "$UNIT_FILE" ]; then
  rm -f "$UNIT_FILE"
  systemctl daemon-reload
  changes=$((changes + 1))
fi
doomed=("$SERVICE_DIR")
# A port marker names the workload that holds the port (svc_deploy.sh wrote it).
for marker in "$STATE_DIR"/ports/*; do
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$NAME" ]; then doomed+=("$marker"); fi
done
for path in "${doomed[@]}"; do
  if [ -e "$path" ]; then
    rm -rf -- "$path"
    changes=$((changes + 1))
  fi
done
if [ "$changes" = 0 ]; then
  echo "$NAME: unchanged (already retired)"
else
  echo "$NAME: retired (unit stopped and disabled, releases deleted)"
fi
