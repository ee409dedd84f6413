"""Deletions stay inside the plan's own directories, whatever a parameter says.

Each script that deletes a directory checks first (``assert_under ROOT PATH``) that the target lies
strictly below the plan's root for it: a purged data directory below DATA_ROOT, a retired or
pruned service's directory below SERVICES_ROOT. Here the real scripts are rendered with one
parameter doctored, as a bad plan or a hand-edited command would give them, and run over SSH:
each is refused before anything on the host changes. Every doctored path resolves inside the
test's own directory, so a guard that let one through could only harm the test host.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from components import databases, services
from components.engines import data_dir, secret_file
from components.provisioning import ENGINE_SCRIPTS, GUARDS, SCRIPTS, Step, render
from plan import RetiredDatabase, RetiredService
from tests.provisioning.harness import SshHost, free_port
from tests.provisioning.workloads import database_step, service
from tests.provisioning.workloads import databases as seed_databases

NOT_PLAIN = "must be an absolute path below / with no //, . or .. segments"
ASSERT_UNDER = re.compile(r"^assert_under\(\) \{.*?^\}$", re.MULTILINE | re.DOTALL)


def doctored_cases(root: str, name: str, outside: Path) -> list[tuple[str, str]]:
    """Targets that must be refused, each with the reason the script gives."""
    return [
        (str(outside), f"it is not strictly below {root}"),
        (root, f"it is not strictly below {root}"),
        (f"{root}-old/{name}", f"it is not strictly below {root}"),
        (f"{root}/../{outside.name}", f"{root}/../{outside.name} {NOT_PLAIN}"),
        (f"{root}//{name}", f"{root}//{name} {NOT_PLAIN}"),
        (f"{root}/./{name}", f"{root}/./{name} {NOT_PLAIN}"),
        (name, f"{name} {NOT_PLAIN}"),
    ]


def with_parameter(step: Step, key: str, value: str) -> Step:
    """``step`` with one parameter set to ``value``."""
    assert key in step.params
    return replace(step, params={**step.params, key: value})


def test_the_scripts_that_delete_share_one_guard() -> None:
    defined = {
        path.relative_to(SCRIPTS).as_posix(): ASSERT_UNDER.findall(path.read_text()) for path in SCRIPTS.rglob("*.sh")
    }
    assert sorted(name for name, found in defined.items() if found) == [GUARDS]
    scripts = [*SCRIPTS.glob("*.sh"), *ENGINE_SCRIPTS.glob("*/*.sh")]
    callers = sorted(
        path.relative_to(path.parents[1]).as_posix() for path in scripts if "assert_under " in path.read_text()
    )
    assert callers == [
        "scripts/backup_run.sh",
        "scripts/db_retire.sh",
        "scripts/restore_drill.sh",
        "scripts/svc_deploy.sh",
        "scripts/svc_retire.sh",
        "weaviate/backup.sh",  # its backup module's copy, once archived
    ]
    assert not any(ASSERT_UNDER.findall(path.read_text()) for path in ENGINE_SCRIPTS.glob("*/*.sh"))


def test_a_purge_of_a_data_dir_outside_data_root_is_refused_before_anything_changes(host: SshHost) -> None:
    plan = host.plan("alibaba", databases=seed_databases("production-redis"))
    db = plan.databases[0]
    assert host.step(databases.bootstrap_step("db", plan.layout, plan.host_check, plan.databases)).code == 0
    step, stdin = database_step(plan, db)
    assert host.step(step, stdin).code == 0
    outside = host.root / "var/lib/mysql"  # the host's own MySQL, beside the plan's data root
    outside.mkdir()
    (outside / "ibdata1").write_bytes(b"the existing MySQL's rows")
    params = {
        "NAME": db.name,
        "UNIT_FILE": f"{plan.paths.quadlet}/{db.name}.container",
        "SECRET_FILE": secret_file(db.name, plan.paths),
        "DATA_ROOT": plan.paths.data,
        "DATA_DIR": data_dir(db.name, plan.paths),
        "STATE_DIR": plan.paths.state,
        "PURGE": 1,
    }
    real = databases.retire_step("db", plan.layout, RetiredDatabase(name=db.name, purge=True))
    assert render([GUARDS, "db_retire.sh"], params) == real.script  # the same script, but for DATA_DIR
    before, container, calls = host.snapshot(), host.container(db.name), len(host.systemctl_calls())

    for target, reason in doctored_cases(plan.paths.data, db.name, outside):
        run = host.step(with_parameter(real, "DATA_DIR", target))
        assert run.code == 8, run
        assert run.stderr == f"{db.name}: refusing {target}: {reason}\n"
        assert run.stdout == ""

    assert host.snapshot() == before
    assert host.container(db.name) == container
    assert host.podman_secret(db.name) is not None
    assert host.systemctl_calls()[calls:] == []


def test_a_service_dir_outside_services_root_is_refused_by_retire_and_deploy(host: SshHost) -> None:
    port = free_port()
    plan = host.plan("tencent", services=[service("alpha", port, host.release("1.0.0"))])
    assert host.step(services.bootstrap_step("app", plan.layout, plan.host_check, plan.services)).code == 0
    deploy = services.deploy_step("app", plan.layout, plan.services[0])
    assert host.step(deploy).code == 0
    outside = host.root / "srv"
    outside.mkdir()
    retire = services.retire_step("app", plan.layout, RetiredService(name="alpha"))
    params = {
        "NAME": "alpha",
        "SERVICES_ROOT": plan.paths.root,
        "SERVICE_DIR": f"{plan.paths.root}/alpha",
        "UNIT_FILE": f"{plan.paths.units}/platform-alpha.service",
        "UNIT_NAME": "platform-alpha.service",
        "STATE_DIR": plan.paths.state,
        "SECRETS_ROOT": plan.paths.secrets,
        "CREDENTIALS_DIR": f"{plan.paths.secrets}/services/alpha",
        "UPLOADS_ROOT": plan.paths.uploads,
        "UPLOADS_DIR": f"{plan.paths.uploads}/alpha",
    }
    assert render([GUARDS, "svc_retire.sh"], params) == retire.script
    pids, before, calls = host.service_pids(), host.snapshot(), len(host.systemctl_calls())

    for target, reason in doctored_cases(plan.paths.root, "alpha", outside):
        run = host.step(with_parameter(retire, "SERVICE_DIR", target))
        assert (run.code, run.stderr) == (8, f"alpha: refusing {target}: {reason}\n"), run
    # The deploy prunes below its SERVICE_DIR: the same guard, before it fetches anything.
    wrong = f"{plan.paths.root}/../{outside.name}"
    run = host.step(with_parameter(deploy, "SERVICE_DIR", wrong))
    assert (run.code, run.stderr) == (8, f"alpha: refusing {wrong}: {wrong} {NOT_PLAIN}\n"), run

    assert host.snapshot() == before
    assert host.service_pids() == pids
    assert host.systemctl_calls()[calls:] == []
