#!/usr/bin/env bash
# One database container as a Quadlet unit: its secret (from stdin, kept in a 0600 file and
# made into the Podman secret the unit refers to), its unit, and a restart only when one
# of them changed. The data directory is bind-mounted and never removed
# here, so an update keeps the data. Running it again with nothing changed writes nothing (not
# even a temporary file), restarts nothing and says "unchanged".
# Parameters: NAME, IMAGE, UNIT_FILE, UNIT_CONTENT, SECRET_FILE, DATA_DIR, PORTS, STATE_DIR,
# HEALTH_TIMEOUT.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail
umask 077

# The secret arrives on stdin only. It stays in this shell's memory (a variable that is never
# exported, never an argument of a command) until it is written to its 0600 file.
secret=""
IFS= read -r -d '' secret || true
if [ -z "$secret" ]; then
  echo "$NAME: no secret on stdin; refusing to install an empty $SECRET_FILE" >&2
  exit 2
fi

changed=0

# Install content $2 at $1 with mode $3 unless the file already holds exactly that; the
# comparison reads the content through a pipe, so an unchanged file costs no temporary file.
install_content() {
  local tmp
  if [ -f "$1" ] && cmp -s "$1" <(printf '%s' "$2"); then
    if [ "$(stat -c %a "$1")" != "$3" ]; then
      chmod "$3" "$1"
      changed=1
    fi
    return 0
  fi
  tmp=$(mktemp "$1.XXXXXX")
  printf '%s' "$2" > "$tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$1"
  changed=1
}

for dir in "$(dirname "$SECRET_FILE")" "$(dirname "$UNIT_FILE")" "$DATA_DIR" "$STATE_DIR/ports"; do
  [ -d "$dir" ] || mkdir -p "$dir"
done
install_content "$SECRET_FILE" "$secret" 600
secret_changed=$changed
# The unit as it was, kept in memory: an update that fails its health check goes back to it.
previous_unit=""
if [ -f "$UNIT_FILE" ]; then
  previous_unit=$(cat "$UNIT_FILE"; printf x)  # the x keeps trailing newlines through $(...)
  previous_unit=${previous_unit%x}
fi
install_content "$UNIT_FILE" "$UNIT_CONTENT" 644
unit_changed=0
if [ -n "$previous_unit" ] && [ "$previous_unit" != "$UNIT_CONTENT" ]; then
  unit_changed=1
fi

# The Podman secret is made from the file (its path is the argument, never the value). A new
# password replaces it while the container is stopped; it is restarted below.
if [ "$secret_changed" = 1 ] || ! podman secret inspect "$NAME" >/dev/null 2>&1; then
  if systemctl is-active --quiet "$NAME.service"; then
    systemctl stop "$NAME.service"
  fi
  podman secret rm "$NAME" >/dev/null 2>&1 || true
  podman secret create "$NAME" "$SECRET_FILE" >/dev/null
  changed=1
fi
# The plan owns these ports from now on: a later host check must not take them for a stranger's.
# Each marker names its workload, so retiring it (db_retire.sh) removes exactly its own; a
# port this database no longer publishes is released.
for marker in "$STATE_DIR"/ports/*; do
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$NAME" ] && [[ " $PORTS " != *" ${marker##*/} "* ]]; then
    rm -f "$marker"
  fi
done
for port in $PORTS; do
  [ "$(cat "$STATE_DIR/ports/$port" 2>/dev/null)" = "$NAME" ] || printf '%s\n' "$NAME" > "$STATE_DIR/ports/$port"
done
if [ "$changed" = 1 ]; then
  # Quadlet generates $NAME.service from the .container file on daemon-reload.
  systemctl daemon-reload
  systemctl restart "$NAME.service"
  action=updated
elif ! systemctl is-active --quiet "$NAME.service"; then
  systemctl start "$NAME.service"
  action=started
else
  action=unchanged
fi

# Bounded wait for the engine's own health check: at least HEALTH_TIMEOUT seconds (SECONDS
# counts whole seconds, hence "greater than"). Leaves the last check's output in $health.
healthy_within() {  # seconds
  local deadline=$(( SECONDS + $1 ))
  until health=$(podman healthcheck run "$NAME" 2>&1); do
    [ "$SECONDS" -le "$deadline" ] || return 1
    sleep 2
  done
}

if healthy_within "$HEALTH_TIMEOUT"; then
  echo "$NAME: $action, healthy"
  exit 0
fi
echo "$NAME: not healthy after ${HEALTH_TIMEOUT}s ($IMAGE): ${health:-no output}" >&2
# An update (a new image, limit or setting) that breaks the engine goes back to the unit that
# worked; the data directory was never touched. A new password cannot be taken back here.
if [ "$unit_changed" = 1 ]; then
  install_content "$UNIT_FILE" "$previous_unit" 644
  systemctl daemon-reload
  systemctl restart "$NAME.service"
  if healthy_within "$HEALTH_TIMEOUT"; then
    echo "$NAME: rolled back to the previous unit, healthy" >&2
  else
    echo "$NAME: rolled back to the previous unit, still not healthy: ${health:-no output}" >&2
  fi
fi
exit 5
