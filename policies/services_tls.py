"""services-behind-tls: the application services are reached through the TLS proxy only.

From each host's plan (the stack's ``plan`` output, ``plan.Plan.props()``):

- no service (role ``service``) exposes its port as ``public``: a service speaks plain HTTP on
  127.0.0.1, and the host's nginx (``platform:proxy``) is the way in over HTTPS;
- when the plan has a proxy, its HTTP and HTTPS ports are exposed ``public`` by a workload of the
  plan (the host's nginx), and every route leads to a service's port on the host.

What it cannot see: whether nginx really holds the certificate (the proxy step checks the
configuration with ``nginx -t`` before it reloads) and rules outside the plan, which
firewall-matches-plan compares with the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._common import as_int, plain, stack_plans, workloads
from .facts import HOST


def check(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for urn, plan in stack_plans(args.resources, owner=HOST):
        for message in problems(plan):
            report_violation(message, urn)


def problems(plan: Mapping[str, Any]) -> list[str]:
    found = []
    services = {}
    public_ports = set()
    for workload in workloads(plan):
        for spec in workload.get("ports") or []:
            port, expose = as_int(spec.get("port")), str(spec.get("expose"))
            if expose == "public":
                public_ports.add(port)
            if workload.get("role") == "service":
                services[port] = workload.get("name")
                if expose == "public":
                    found.append(
                        f"plan: service {workload.get('name')} exposes port {port} as public in plain HTTP; set "
                        "expose: none and reach it through the TLS proxy (platform:proxy)"
                    )
    proxy = plain(plan.get("proxy"))
    if isinstance(proxy, Mapping):
        for key in ("httpPort", "httpsPort"):
            port = as_int(proxy.get(key))
            if port not in public_ports:
                found.append(f"plan: the proxy's {key} {port} is not exposed public by any workload (the host's nginx)")
        for route, port in (plain(proxy.get("routes")) or {}).items():
            if as_int(port) not in services:
                found.append(f"plan: the proxy route {route} leads to port {port}, which is no service's")
    return found


services_behind_tls = StackValidationPolicy(
    name="services-behind-tls",
    description="No application service is exposed to the Internet in plain HTTP: services listen on the host "
    "and the TLS proxy (nginx, HTTPS) is the way in; the proxy's ports are the public ones.",
    validate=check,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    remediation_steps="Set the service's expose to none and route it through platform:proxy.",
)
