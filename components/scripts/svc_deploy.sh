#!/usr/bin/env bash
# Deploy one release of a native service behind its health check.
#
#   SERVICE_DIR/releases/<version>/   one directory per release
#   SERVICE_DIR/current  -> releases/<version>   what the unit runs
#   SERVICE_DIR/previous -> releases/<version>   what a failed deploy rolls back to
#
# A release that does not answer HEALTH_URL within HEALTH_TIMEOUT seconds is rolled back
# (the previous release and unit are restored and restarted) and the command fails with the
# health output, which stops the later batches. Running it again with nothing changed
# rewrites nothing and restarts nothing.
# Parameters: NAME, PORT, VERSION, ARTIFACT, ARTIFACT_SHA256, SERVICE_DIR, UNIT_FILE, UNIT_NAME,
# UNIT_CONTENT, HEALTH_URL, HEALTH_TIMEOUT, KEEP_RELEASES, STATE_DIR.
# shellcheck disable=SC2154  # parameters are rendered above this body by components/provisioning.py
set -euo pipefail

releases="$SERVICE_DIR/releases"
release="$releases/$VERSION"
current="$SERVICE_DIR/current"
health_log="$SERVICE_DIR/health.log"

healthy_within() {  # seconds
  local deadline=$(( $(date +%s) + $1 ))
  while true; do
    if curl -fsS --max-time 5 "$HEALTH_URL" > "$health_log" 2>&1; then
      return 0
    fi
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 1
  done
}

mkdir -p "$releases" "$STATE_DIR/ports"

unit_tmp=$(mktemp "$UNIT_FILE.XXXXXX")
printf '%s' "$UNIT_CONTENT" > "$unit_tmp"
chmod 644 "$unit_tmp"

if [ "$(readlink "$current" 2>/dev/null)" = "$release" ] && cmp -s "$unit_tmp" "$UNIT_FILE" \
  && systemctl is-active --quiet "$UNIT_NAME" && healthy_within 0; then
  rm -f "$unit_tmp"
  echo "$NAME: $VERSION unchanged, healthy"
  exit 0
fi

# Fetch and unpack the release once; a half-unpacked release never becomes current.
if [ ! -d "$release" ]; then
  staging=$(mktemp -d "$releases/.staging.XXXXXX")
  trap 'rm -rf "$staging" "$unit_tmp"' EXIT
  case "$ARTIFACT" in
    https://*) curl -fsSL --max-time 300 -o "$staging/artifact.tar.gz" "$ARTIFACT" ;;
    *) cp "$ARTIFACT" "$staging/artifact.tar.gz" ;;
  esac
  if [ -n "$ARTIFACT_SHA256" ]; then
    echo "$ARTIFACT_SHA256  $staging/artifact.tar.gz" | sha256sum -c --quiet - \
      || { echo "$NAME: $ARTIFACT does not match its sha256" >&2; exit 6; }
  fi
  mkdir "$staging/release"
  tar -xzf "$staging/artifact.tar.gz" -C "$staging/release"
  mv "$staging/release" "$release"
  echo "$NAME: unpacked $VERSION"
fi

previous_target=$(readlink "$current" 2>/dev/null || true)
unit_backup=""
if [ -f "$UNIT_FILE" ]; then
  unit_backup=$(mktemp "$UNIT_FILE.previous.XXXXXX")
  cp -p "$UNIT_FILE" "$unit_backup"
fi

mv -f "$unit_tmp" "$UNIT_FILE"
ln -sfn "$release" "$current.new" && mv -Tf "$current.new" "$current"
systemctl daemon-reload
systemctl enable --quiet "$UNIT_NAME"
systemctl restart "$UNIT_NAME"
touch "$STATE_DIR/ports/$PORT"

if healthy_within "$HEALTH_TIMEOUT"; then
  if [ -n "$previous_target" ] && [ "$previous_target" != "$release" ]; then
    ln -sfn "$previous_target" "$SERVICE_DIR/previous.new" && mv -Tf "$SERVICE_DIR/previous.new" "$SERVICE_DIR/previous"
  fi
  [ -z "$unit_backup" ] || rm -f "$unit_backup"
  # Keep the newest KEEP_RELEASES releases, and always current and previous.
  keep_previous=$(readlink "$SERVICE_DIR/previous" 2>/dev/null || true)
  find "$releases" -mindepth 1 -maxdepth 1 -type d ! -name '.staging.*' -printf '%T@ %p\n' \
    | sort -rn | tail -n +"$(( KEEP_RELEASES + 1 ))" | cut -d' ' -f2- \
    | while read -r old; do
        if [ "$old" != "$release" ] && [ "$old" != "$keep_previous" ]; then
          rm -rf "$old"
          echo "$NAME: pruned $(basename "$old")"
        fi
      done
  echo "$NAME: $VERSION deployed, healthy"
  exit 0
fi

echo "$NAME: $VERSION failed $HEALTH_URL within ${HEALTH_TIMEOUT}s:" >&2
cat "$health_log" >&2 || true
if [ -n "$unit_backup" ]; then
  mv -f "$unit_backup" "$UNIT_FILE"
fi
if [ -n "$previous_target" ] && [ "$previous_target" != "$release" ]; then
  ln -sfn "$previous_target" "$current.new" && mv -Tf "$current.new" "$current"
  systemctl daemon-reload
  systemctl restart "$UNIT_NAME"
  echo "$NAME: rolled back to $(basename "$previous_target")" >&2
else
  systemctl stop "$UNIT_NAME" || true
  echo "$NAME: no earlier release to roll back to; stopped" >&2
fi
exit 7
