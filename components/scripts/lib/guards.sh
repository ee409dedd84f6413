#!/usr/bin/env bash
# Shared by every script that deletes a directory: rendered before its body
# (components/provisioning.py: GUARDS), so the check is written once.
# shellcheck disable=SC2154  # NAME is rendered above this body by components/provisioning.py

# Deletions stay inside the plan's own directories: $2 must lie strictly below $1, both plain
# absolute paths (no "//", "." or ".." segment), so no parameter can turn one into / or /etc.
assert_under() {  # root path
  local p
  for p in "$1" "$2"; do
    if [[ "${p}" != /?* || "${p}/" == *//* || "${p}/" == */./* || "${p}/" == */../* ]]; then
      echo "${NAME}: refusing ${2}: ${p} must be an absolute path below / with no //, . or .. segments" >&2
      exit 8
    fi
  done
  if [[ "$2" != "$1"/?* ]]; then
    echo "${NAME}: refusing ${2}: it is not strictly below ${1}" >&2
    exit 8
  fi
}
