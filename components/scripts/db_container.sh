#!/usr/bin/env bash
# One database container as a Quadlet unit: its secret file (from stdin, 0600), its unit, and a
# restart only when one of them changed. The data directory is bind-mounted and never removed
# here, so an update keeps the data.
# Parameters: NAME, IMAGE, UNIT_FILE, UNIT_CONTENT, SECRET_FILE, DATA_DIR, PORTS, STATE_DIR,
# HEALTH_TIMEOUT.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail
umask 077

changed=0

# Install $2 at $1 (mode $3) unless it is already there byte for byte.
install_if_changed() {
  if cmp -s "$2" "$1"; then
    rm -f "$2"
  else
    chmod "$3" "$2"
    mv -f "$2" "$1"
    changed=1
  fi
}

mkdir -p "$(dirname "$SECRET_FILE")" "$(dirname "$UNIT_FILE")" "$DATA_DIR" "$STATE_DIR/ports"

secret_tmp=$(mktemp "$SECRET_FILE.XXXXXX")
cat > "$secret_tmp"  # the secret arrives on stdin only
install_if_changed "$SECRET_FILE" "$secret_tmp" 600

unit_tmp=$(mktemp "$UNIT_FILE.XXXXXX")
printf '%s' "$UNIT_CONTENT" > "$unit_tmp"
install_if_changed "$UNIT_FILE" "$unit_tmp" 644

for port in $PORTS; do touch "$STATE_DIR/ports/$port"; done

if [ "$changed" = 1 ]; then
  systemctl daemon-reload
  systemctl restart "$NAME.service"
  action=updated
elif ! systemctl is-active --quiet "$NAME.service"; then
  systemctl start "$NAME.service"
  action=started
else
  action=unchanged
fi

# Bounded wait for the engine's own health check.
deadline=$(( $(date +%s) + HEALTH_TIMEOUT ))
until podman healthcheck run "$NAME" >/dev/null 2>&1; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "$NAME: not healthy after ${HEALTH_TIMEOUT}s ($IMAGE)" >&2
    exit 5
  fi
  sleep 2
done
echo "$NAME: $action, healthy"
