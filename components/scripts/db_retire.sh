#!/usr/bin/env bash
# Retire a database (platform:retired.databases): stop its container (the Quadlet unit's stop
# removes the container, never a volume), remove its unit, its secret (file and Podman secret)
# and the markers of the ports it held. Its data directory stays unless the retired entry says
# purge: true. Safe to run again: with nothing left to remove it says so.
# Parameters: NAME, UNIT_FILE, SECRET_FILE, DATA_DIR, STATE_DIR, PURGE.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

changes=0
if systemctl is-active --quiet "$NAME.service"; then
  systemctl stop "$NAME.service"
  changes=$((changes + 1))
fi
if [ -e "$UNIT_FILE" ]; then
  rm -f "$UNIT_FILE"
  systemctl daemon-reload  # the generated $NAME.service goes with its .container file
  changes=$((changes + 1))
fi
if podman secret inspect "$NAME" >/dev/null 2>&1; then
  podman secret rm "$NAME" >/dev/null
  changes=$((changes + 1))
fi
doomed=("$SECRET_FILE")
# A port marker names the workload that holds the port (db_container.sh wrote it).
for marker in "$STATE_DIR"/ports/*; do
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$NAME" ]; then doomed+=("$marker"); fi
done
if [ "$PURGE" = 1 ]; then doomed+=("$DATA_DIR"); fi
for path in "${doomed[@]}"; do
  if [ -e "$path" ]; then
    rm -rf -- "$path"
    changes=$((changes + 1))
  fi
done

if [ "$changes" = 0 ]; then
  echo "$NAME: unchanged (already retired)"
elif [ "$PURGE" = 1 ]; then
  echo "$NAME: retired, data purged"
else
  echo "$NAME: retired, data kept in $DATA_DIR"
fi
