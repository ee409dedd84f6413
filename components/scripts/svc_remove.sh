#!/usr/bin/env bash
# A service left the plan: stop and disable its unit, remove the unit and its releases.
# Parameters: NAME, PORT, SERVICE_DIR, UNIT_FILE, UNIT_NAME, STATE_DIR.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

if systemctl is-active --quiet "$UNIT_NAME"; then
  systemctl stop "$UNIT_NAME"
fi
systemctl disable --quiet "$UNIT_NAME" 2>/dev/null || true
rm -f "$UNIT_FILE" "$STATE_DIR/ports/$PORT"
systemctl daemon-reload
rm -rf "$SERVICE_DIR"
echo "$NAME: removed"
