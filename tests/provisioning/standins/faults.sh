# shellcheck shell=bash
# Fault injection for the stand-ins (sourced, not run). A test writes lines to
# $STANDIN_STATE/faults/<tool>, each "ACTION TIMES PATTERN": the next TIMES calls of <tool> whose
# arguments, joined by single spaces, match the glob PATTERN do nothing but
#   fail   print an error and exit 1, as a failed systemctl or podman call does
#   kill   SIGKILL the shell that made the call (the provisioning script, for a call not made
#          inside $(...)), as a dropped SSH session or a killed pulumi would cut a run short
# Each stand-in calls inject_fault after it has logged the call and taken its lock.

inject_fault() {  # tool, then the call's arguments
  local tool=$1 file action times pattern hit="" lines=""
  shift
  file="${STANDIN_STATE:?set by the test host}/faults/${tool}"
  [[ -f "${file}" ]] || return 0
  while read -r action times pattern; do
    # shellcheck disable=SC2053  # PATTERN is a glob on purpose
    if [[ -z "${hit}" && "${times}" -gt 0 && "$*" == ${pattern} ]]; then
      hit=${action}
      times=$((times - 1))
    fi
    lines+="${action} ${times} ${pattern}"$'\n'
  done < "${file}"
  [[ -n "${hit}" ]] || return 0
  printf '%s' "${lines}" > "${file}"
  if [[ "${hit}" == kill ]]; then
    kill -KILL "${PPID}"
    exit 137
  fi
  echo "${tool} stand-in: injected fault: ${tool} $*" >&2
  exit 1
}
