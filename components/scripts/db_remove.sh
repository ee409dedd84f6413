#!/usr/bin/env bash
# A database left the plan: stop its container (the Quadlet unit's stop removes the container,
# never a volume) and remove its unit and its secret (file and Podman secret). Its data directory stays unless the plan said
# purge: true for it. Safe to run again: with nothing left to remove it says so.
# Parameters: NAME, UNIT_FILE, SECRET_FILE, DATA_DIR, PORTS, STATE_DIR, PURGE.
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
for port in $PORTS; do doomed+=("$STATE_DIR/ports/$port"); done
if [ "$PURGE" = 1 ]; then doomed+=("$DATA_DIR"); fi
for path in "${doomed[@]}"; do
  if [ -e "$path" ]; then
    rm -rf -- "$path"
    changes=$((changes + 1))
  fi
done

if [ "$changes" = 0 ]; then
  echo "$NAME: unchanged (already removed)"
elif [ "$PURGE" = 1 ]; then
  echo "$NAME: removed, data purged"
else
  echo "$NAME: removed, data kept in $DATA_DIR"
fi
