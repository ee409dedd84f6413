#!/usr/bin/env bash
# Deploy one release of a native service behind its health check.
#
#   SERVICE_DIR/releases/<version>/              one directory per release
#   SERVICE_DIR/current  -> releases/<version>   what the unit runs
#   SERVICE_DIR/previous -> releases/<version>   what a failed deploy rolls back to
#
# A release that does not answer HEALTH_URL with a 2xx within HEALTH_TIMEOUT seconds is rolled
# back (the previous release and unit are restored and restarted) and the command fails with
# the health output, which stops the later batches. Running it again with nothing changed
# writes nothing (not even a temporary file) and restarts nothing.
# Parameters: NAME, PORT, VERSION, ARTIFACT, ARTIFACT_SHA256, SERVICE_DIR, UNIT_FILE, UNIT_NAME,
# UNIT_CONTENT, HEALTH_URL, HEALTH_TIMEOUT, KEEP_RELEASES, STATE_DIR.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

releases="$SERVICE_DIR/releases"
release="$releases/$VERSION"
current="$SERVICE_DIR/current"
previous="$SERVICE_DIR/previous"
health_output="no answer yet"

# One GET of HEALTH_URL; true on a 2xx. The answer (or curl's error) is kept in memory for the
# failure message: a health check writes nothing to disk.
health_once() {
  local answer code
  # The status code travels in a marker (a -w format starting with "@" would name a file).
  answer=$(curl -sS --max-time 5 -w '##%{http_code}##' "$HEALTH_URL" 2>&1) || true
  code=000
  if [[ "$answer" =~ \#\#([0-9]{3})\#\# ]]; then code=${BASH_REMATCH[1]}; fi
  answer=${answer//"##${code}##"/}
  answer=${answer//$'\n'/ }
  health_output="HTTP $code: ${answer:0:500}"  # the start of the answer is enough to read
  [[ "$code" == 2?? ]]
}

# Poll until healthy, for at least $1 seconds (SECONDS counts whole seconds, hence -le).
healthy_within() {
  local deadline=$(( SECONDS + $1 ))
  until health_once; do
    [ "$SECONDS" -le "$deadline" ] || return 1
    sleep 0.5
  done
}

# Whether the unit file already holds exactly the plan's unit (compared in memory).
unit_unchanged() {
  [ -f "$UNIT_FILE" ] && cmp -s "$UNIT_FILE" <(printf '%s' "$UNIT_CONTENT")
}

point() {  # link target: switch a symlink atomically
  ln -sfn "$2" "$1.new"
  mv -Tf "$1.new" "$1"
}

if [ "$(readlink "$current" 2>/dev/null)" = "$release" ] && unit_unchanged \
  && systemctl is-active --quiet "$UNIT_NAME" && health_once; then
  echo "$NAME: $VERSION unchanged, healthy"
  exit 0
fi

# Fetch and check the release in TMPDIR first: a bad download leaves the service directory as
# it was. Then unpack it once; a half-unpacked release never becomes current.
if [ ! -d "$release" ]; then
  download=$(mktemp)
  trap 'rm -f "$download"' EXIT
  case "$ARTIFACT" in
    https://*) curl -fsSL --max-time 300 -o "$download" "$ARTIFACT" ;;
    *) cp "$ARTIFACT" "$download" ;;
  esac
  if [ -n "$ARTIFACT_SHA256" ]; then
    echo "$ARTIFACT_SHA256  $download" | sha256sum -c --quiet - >/dev/null 2>&1 \
      || { echo "$NAME: $ARTIFACT does not match its sha256 $ARTIFACT_SHA256; nothing changed" >&2; exit 6; }
  fi
  [ -d "$releases" ] || mkdir -p "$releases"
  staging=$(mktemp -d "$releases/.staging.XXXXXX")
  trap 'rm -rf "$download" "$staging"' EXIT
  tar -xzf "$download" -C "$staging" --no-same-owner
  chmod 755 "$staging"  # mktemp made it 0700; the unit's (dynamic) user must enter it
  mv "$staging" "$release"
  echo "$NAME: unpacked $VERSION"
fi

[ -d "$STATE_DIR/ports" ] || mkdir -p "$STATE_DIR/ports"
# The plan owns this port from now on: a later host check must not take it for a stranger's. The
# marker names the service, so retiring it (svc_retire.sh) removes exactly its own.
for marker in "$STATE_DIR"/ports/*; do
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$NAME" ] && [ "${marker##*/}" != "$PORT" ]; then
    rm -f "$marker"
  fi
done
[ "$(cat "$STATE_DIR/ports/$PORT" 2>/dev/null)" = "$NAME" ] || printf '%s\n' "$NAME" > "$STATE_DIR/ports/$PORT"

previous_target=$(readlink "$current" 2>/dev/null || true)
unit_backup=""
if [ -f "$UNIT_FILE" ] && ! unit_unchanged; then
  # Kept beside the releases, not in the unit directory (systemd reads every file there).
  unit_backup="$SERVICE_DIR/unit.rollback"
  cp -p "$UNIT_FILE" "$unit_backup"
fi
if ! unit_unchanged; then
  unit_tmp=$(mktemp "$UNIT_FILE.XXXXXX")
  printf '%s' "$UNIT_CONTENT" > "$unit_tmp"
  chmod 644 "$unit_tmp"
  mv -f "$unit_tmp" "$UNIT_FILE"
fi
point "$current" "$release"
systemctl daemon-reload
systemctl enable --quiet "$UNIT_NAME"
systemctl restart "$UNIT_NAME"

if healthy_within "$HEALTH_TIMEOUT"; then
  if [ -n "$previous_target" ] && [ "$previous_target" != "$release" ]; then
    point "$previous" "$previous_target"
  fi
  [ -z "$unit_backup" ] || rm -f "$unit_backup"
  touch "$release"  # its mtime is when it last went live: the order the pruning keeps
  # Keep KEEP_RELEASES releases: current and previous always, then the most recently live.
  keep_previous=$(readlink "$previous" 2>/dev/null || true)
  room=$(( KEEP_RELEASES - 1 ))
  [ -z "$keep_previous" ] || room=$(( room - 1 ))
  while IFS= read -r old; do
    if [ "$old" = "$release" ] || [ "$old" = "$keep_previous" ]; then continue; fi
    if [ "$room" -gt 0 ]; then
      room=$(( room - 1 ))
      continue
    fi
    rm -rf -- "$old"
    echo "$NAME: pruned ${old##*/}"
  done < <(find "$releases" -mindepth 1 -maxdepth 1 -type d ! -name '.staging.*' -printf '%T@ %p\n' \
    | sort -rn | cut -d' ' -f2-)
  echo "$NAME: $VERSION deployed, healthy"
  exit 0
fi

echo "$NAME: $VERSION failed $HEALTH_URL within ${HEALTH_TIMEOUT}s ($health_output;" \
  "unit $(systemctl is-active "$UNIT_NAME" || true))" >&2
[ -z "$unit_backup" ] || mv -f "$unit_backup" "$UNIT_FILE"
if [ -n "$previous_target" ] && [ -d "$previous_target" ]; then
  point "$current" "$previous_target"
  systemctl daemon-reload
  systemctl restart "$UNIT_NAME"
  if healthy_within "$HEALTH_TIMEOUT"; then
    echo "$NAME: rolled back to ${previous_target##*/}, healthy" >&2
  else
    echo "$NAME: rolled back to ${previous_target##*/}, which is not healthy either ($health_output)" >&2
  fi
else
  # A first deploy has nothing to return to: leave no unit that would start it at boot.
  systemctl stop "$UNIT_NAME" || true
  systemctl disable --quiet "$UNIT_NAME" 2>/dev/null || true
  rm -f "$UNIT_FILE" "$current"
  systemctl daemon-reload
  echo "$NAME: no earlier release to roll back to; stopped and removed its unit" >&2
fi
exit 7
