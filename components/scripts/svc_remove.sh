#!/usr/bin/env bash
# A service left the plan: stop and disable its unit, remove the unit and its releases.
# Safe to run again: with nothing left to remove it changes nothing and says so.
# Parameters: NAME, PORT, SERVICE_DIR, UNIT_FILE, UNIT_NAME, STATE_DIR.
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
for path in "$SERVICE_DIR" "$STATE_DIR/ports/$PORT"; do
  if [ -e "$path" ]; then
    rm -rf -- "$path"
    changes=$((changes + 1))
  fi
done
if [ "$changes" = 0 ]; then
  echo "$NAME: unchanged (already removed)"
else
  echo "$NAME: removed (unit stopped and disabled, releases deleted)"
fi
