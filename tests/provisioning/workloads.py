"""Workloads for the test host's plans: the sample service, and the seeds' databases on free ports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pulumi

from components import databases as databases_component
from components.engines import secret_content
from components.provisioning import Step
from plan import DEFAULT_DATABASES, Database, Plan
from tests.provisioning.harness import free_port, password_for


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nothing listens on, from this worker's band (harness.free_port)."""
    return [free_port() for _ in range(count)]


def service(name: str, port: int, release: dict[str, str], **fields: Any) -> dict[str, Any]:
    """The sample service as a plan entry (``platform:services``)."""
    return {
        "name": name,
        "description": "sample service",
        "port": port,
        "family": "test",
        "memoryMib": 64,
        "release": release,
        "startCommand": "./start",
        "healthTimeoutS": 5,
        **fields,
    }


def databases(*names: str, **changes: Any) -> list[dict[str, Any]]:
    """The seeds' databases (all, or those named), each port moved to a free high port."""
    chosen = [dict(db) for db in DEFAULT_DATABASES if not names or db["name"] in names]
    ports = iter(free_ports(sum(len(db["ports"]) for db in chosen)))
    for db in chosen:
        db["ports"] = [{**spec, "port": next(ports)} for spec in db["ports"]]
        db.update(changes)
    return chosen


class _Passwords(dict[str, str]):
    """Stands in for the secret Output of passwords. Its ``apply`` runs at once, with no engine
    and no event loop (an Output made outside a Pulumi run would leave tasks behind for the
    next run to trip over); every database's password is the session's placeholder."""

    def __missing__(self, name: str) -> str:
        return password_for(name)

    def apply(self, func: Callable[[dict[str, str]], str]) -> str:
        return func(self)


def database_step(plan: Plan, db: Database, prefix: str = "db") -> tuple[Step, str]:
    """A database's container step and the stdin its remote.Command would send (the secret).

    The component turns the passwords Output into stdin; here the stdin text is built directly
    from the session's placeholder password with the same ``secret_content``.
    """
    passwords = cast("pulumi.Output[dict[str, str]]", _Passwords())
    step = databases_component.container_step(prefix, plan.layout, db, passwords)
    return step, secret_content(db, password_for(db.name))
