"""The provisioning components follow what the plan lists, not only the cloud (program.py)."""

from __future__ import annotations

from policies.facts import COMMAND, DATABASES, SERVICES
from tests.stacks import default_services, evaluate

DATABASES, SERVICES = DATABASES, SERVICES
CACHE = {
    "kind": "redis",
    "name": "session-cache",
    "image": "docker.io/library/redis:7",
    "ports": [{"port": 6390, "expose": "none"}],
    "memoryMib": 64,
}


def components(run) -> dict[str, str]:
    return {r.name: r.type for r in run.resources if r.type in (DATABASES, SERVICES)}


def test_each_shipped_stack_has_its_hosts_component_only():
    assert components(evaluate("alibaba")) == {"alibaba-db": DATABASES}
    assert components(evaluate("tencent")) == {"tencent-svc": SERVICES}


def test_services_listed_on_the_database_host_are_deployed_there():
    (zervigo, *_) = default_services()
    run = evaluate("alibaba", services=[zervigo], batches=[[zervigo["name"]]])

    assert components(run) == {"alibaba-db": DATABASES, "alibaba-svc": SERVICES}
    names = {r.name for r in run.of_type(COMMAND)}
    assert {"alibaba-svc-bootstrap", "alibaba-svc-zervigo"} <= names
    assert "alibaba-db-production-mysql" in names


def test_a_database_listed_on_the_application_host_is_deployed_there():
    run = evaluate("tencent", databases=[CACHE])

    assert components(run) == {"tencent-db": DATABASES, "tencent-svc": SERVICES}
    names = {r.name for r in run.of_type(COMMAND)}
    assert {"tencent-db-bootstrap", "tencent-db-session-cache", "tencent-svc-zervigo"} <= names
