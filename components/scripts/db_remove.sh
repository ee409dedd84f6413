#!/usr/bin/env bash
# A database left the plan: stop its container and remove its unit and secret. Its data stays
# unless the plan said purge: true for it.
# Parameters: NAME, UNIT_FILE, SECRET_FILE, DATA_DIR, PORTS, STATE_DIR, PURGE.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

if systemctl is-active --quiet "$NAME.service"; then
  systemctl stop "$NAME.service"
fi
rm -f "$UNIT_FILE" "$SECRET_FILE"
systemctl daemon-reload
for port in $PORTS; do rm -f "$STATE_DIR/ports/$port"; done

if [ "$PURGE" = 1 ]; then
  rm -rf "$DATA_DIR"
  echo "$NAME: removed, data purged"
else
  echo "$NAME: removed, data kept in $DATA_DIR"
fi
