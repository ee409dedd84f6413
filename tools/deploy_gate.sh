#!/usr/bin/env bash
# The deploy's own gate: what `pulumi up` would do to the state the last successful deploy of STACK
# left, from `python -m preflight STACK --from <that revision>`, checked before `up` runs.
#
#   deploy_gate.sh check STACK    exit 0: no hazard (or hazards acknowledged); 1: refused
#   deploy_gate.sh record STACK   after a successful `up`: remember this revision as deployed
#
# pulumi/actions runs `up` with --skip-preview, so a hazard the pull request's gate showed would
# otherwise be executed step by step until a protected resource stops it half-way. The deployed
# revision is a stack tag (TAG), set by `record`; until the first recorded deploy, the revision
# before this push (BEFORE) or HEAD's parent stands in, and the summary says which.
#
# Environment: ACKNOWLEDGED ("true" lets a hazard through: the workflow_dispatch input), BEFORE
# (the push's previous head, optional), GITHUB_SHA, GITHUB_STEP_SUMMARY and GITHUB_OUTPUT (optional
# outside Actions), PYTHON (default .venv/bin/python).
set -euo pipefail

TAG=platform:deployed-revision
action=${1:?usage: deploy_gate.sh check|record STACK}
stack=${2:?usage: deploy_gate.sh check|record STACK}
python=${PYTHON:-.venv/bin/python}
summary=${GITHUB_STEP_SUMMARY:-/dev/null}
outputs=${GITHUB_OUTPUT:-/dev/null}

if [[ "${action}" == record ]]; then
  pulumi stack tag set "${TAG}" "${GITHUB_SHA:?GITHUB_SHA is the revision just deployed}" --stack "${stack}"
  echo "${stack}: ${TAG} = ${GITHUB_SHA}"
  exit 0
fi
if [[ "${action}" != check ]]; then
  echo "deploy_gate.sh: unknown action ${action}; use check or record" >&2
  exit 2
fi

# The revision the stack's state came from.
how="the revision recorded by its last successful deploy (stack tag ${TAG})"
if ! deployed=$(pulumi stack tag get "${TAG}" --stack "${stack}" 2>/dev/null) || [[ -z "${deployed}" ]]; then
  if [[ -n "${BEFORE:-}" && ! "${BEFORE}" =~ ^0+$ ]]; then
    deployed=${BEFORE}
    how="the revision before this push (no deploy of this stack is recorded yet)"
  else
    deployed=$(git rev-parse HEAD^)
    how="HEAD's parent (no deploy of this stack is recorded yet)"
  fi
fi

report=$(mktemp)
failure=$(mktemp)
trap 'rm -f "${report}" "${failure}"' EXIT
set +e
"${python}" -m preflight "${stack}" --from "${deployed}" --format markdown >"${report}" 2>"${failure}"
status=$?
set -e
{
  echo "## What \`pulumi up\` does to \`${stack}\`: from ${deployed} (${how})"
  echo
  cat "${report}"
  if [[ -s "${failure}" ]]; then
    echo
    echo "- cannot compare:"
    cat "${failure}"
  fi
} >>"${summary}"

case "${status}" in
  0)
    echo "hazards=0" >>"${outputs}"
    echo "${stack}: no hazard from ${deployed}"
    exit 0
    ;;
  1) what="preflight --from ${deployed} reports a hazard: \`pulumi up\` would stop, replace or orphan something" ;;
  *) what="preflight --from ${deployed} could not compare (exit ${status}), so what \`pulumi up\` does is not known" ;;
esac
echo "hazards=1" >>"${outputs}"
if [[ "${ACKNOWLEDGED:-false}" == true ]]; then
  echo "::warning::${stack}: ${what}; deploying anyway: the run was started with acknowledge_hazards (the job summary lists it)"
  exit 0
fi
echo "::error::${stack}: ${what}. See the job summary; to deploy anyway, run the deploy workflow by hand with acknowledge_hazards"
exit 1
