"""secret-hygiene: commands keep secrets out of logs, state and command lines; SSH uses keys.

What a validator can see, and what it cannot:
- ``logging``, ``addPreviousOutputInEnv`` and the command texts are inputs: checked.
- ``additionalSecretOutputs`` is a resource option the engine hands analyzers with the inputs
  (``args.opts.additional_secret_outputs``): checked for ``stdout`` and ``stderr``.
- Whether ``stdin`` is *secret* is not visible: pulumi-policy strips the secret marker before
  a validator runs. A command that has stdin or environment is taken to carry secrets (this
  program sends passwords on stdin and nothing else there); the offline preview shows stdin
  as ``[secret]``, and tests/components/test_databases.py asserts it is secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)

from ._scan import secret_literals
from .facts import COMMANDS

_TEXTS = ("create", "update", "delete")


def check(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in COMMANDS:
        return
    props = args.props
    for key in _TEXTS:
        text = props.get(key)
        if isinstance(text, str):
            for finding in secret_literals(text):
                report_violation(f"{key}: {finding}; pass secrets on stdin from `pulumi config --secret`", None)
    if props.get("stdin") or props.get("environment"):
        _check_secret_channel(args, report_violation)
    connection = props.get("connection")
    if connection is not None:
        _check_connection(connection, report_violation)


def _check_secret_channel(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = args.props
    # pulumi-command logs stdout and stderr unless told otherwise.
    logging = props.get("logging") or "stdoutAndStderr"
    if logging != "none":
        report_violation(f"carries secrets on stdin/environment but logging is {logging!r}; set logging: none", None)
    missing = sorted({"stdout", "stderr"} - set(args.opts.additional_secret_outputs or []))
    if missing:
        report_violation(
            f"carries secrets but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in "
            "additionalSecretOutputs, so whatever it prints lands in state in plain text",
            None,
        )
    # The default (true) puts the previous run's stdout/stderr in the next run's environment.
    if props.get("addPreviousOutputInEnv", True) is not False:
        report_violation("carries secrets but addPreviousOutputInEnv is not false", None)


def _check_connection(connection: Mapping[str, Any], report_violation: ReportViolation) -> None:
    if connection.get("password"):
        report_violation("connection authenticates with a password; use privateKey (a secret config value)", None)
    if not connection.get("privateKey") and not connection.get("agentSocketPath"):
        report_violation("connection has no privateKey: SSH must authenticate with the admins' key", None)
    if not connection.get("hostKey"):
        report_violation(
            "connection has no hostKey, so it trusts whatever host answers at that address; pin the host key", None
        )


secret_hygiene = ResourceValidationPolicy(
    name="secret-hygiene",
    description="Commands that handle secrets log nothing and keep stdout/stderr secret; no password or key is "
    "written in a command; SSH connections use a private key and a pinned host key.",
    validate=check,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.CRITICAL,
    remediation_steps="Send secrets on stdin (pulumi.Output.secret), set logging: none and "
    "additional_secret_outputs=['stdout', 'stderr'], and connect with private_key and host_key.",
)
