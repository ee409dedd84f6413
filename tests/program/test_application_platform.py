"""The Tencent stack as an application platform, under the mock engine: uploads, runtimes,
credentials, database endpoints from the Alibaba stack (a StackReference) and the TLS proxy.

Each bad input gets one line: a missing local release, an output the Alibaba stack does not
have, a secret written in plain text; a service port open to the Internet is the
``services-behind-tls`` policy's (tests/policies/test_services_behind_tls.py).
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from pulumi import RunError

from components.services import nginx_config
from components.uploads import tree_digest
from plan import PlanError, load_plan
from policies.facts import COPY_TO_REMOTE
from preflight.engine import StackOutputs, run_stack, unwrap
from tests.stacks import (
    ROOT,
    SOURCE_STACK,
    as_deployed,
    config_for,
    evaluate,
    inputs,
    preflight_cli,
    stack_folder,
    step_parameters,
    with_clients,
    without_replicas,
)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _tarball(path: Path, files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"./{name}")
            member.size, member.mtime = len(data), 1_700_000_000
            archive.addfile(member, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


# The release the module's checkout holds (``run``), relative to it as a stack file names it.
RELEASE = "artifacts/looma.tar.gz"
# The Alibaba stack makes LoomaCRM a user on the databases it lists.
CLIENTS = with_clients(production_postgres=["looma-crm"], production_redis=["looma-crm"])


def _services(upload: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "looma-crm",
            "port": 8700,
            "family": "looma-crm",
            "memoryMib": 250,
            "runtime": "python",
            "release": {"version": "2.1.0", "upload": upload},
            "startCommand": ".venv/bin/python -m app",
            "environment": {"LOG_LEVEL": "info"},
            "secrets": ["JWT_SECRET"],
            "databases": ["production-postgres", "production-redis"],
        }
    ]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout whose Tencent stack deploys LoomaCRM from a release CI built into artifacts/."""
    root = tmp_path_factory.mktemp("project")
    changes = {
        "services": _services("artifacts/looma-crm-2.1.0.tar.gz"),
        "batches": [["looma-crm"]],
        "databaseStack": SOURCE_STACK,
        "existing": without_replicas(),  # the services' databases alone: no replica reads the stack here
    }
    stack_folder(root, "alibaba", **CLIENTS)
    stack_folder(root, "tencent", **changes)
    (root / "artifacts").mkdir()
    _tarball(root / "artifacts/looma-crm-2.1.0.tar.gz", {"app.py": "print('hi')\n", "requirements.lock": ""})
    return root


def _changes() -> dict[str, Any]:
    return {
        "services": _services("artifacts/none.tar.gz"),  # no such release in this checkout
        "batches": [["looma-crm"]],
        "databaseStack": SOURCE_STACK,
        "existing": without_replicas(),  # the services' databases alone: no replica reads the stack here
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    checkout = tmp_path_factory.mktemp("checkout")
    (checkout / "artifacts").mkdir()
    digest = _tarball(checkout / RELEASE, {"app.py": "print('hi')\n", "requirements.lock": ""})
    changes = {**_changes(), "services": _services(RELEASE)}
    return evaluate("tencent", checkout=checkout, source=CLIENTS, **changes), digest, checkout


def test_the_release_is_uploaded_over_the_pinned_connection_and_checked_by_its_digest(run):
    stack, digest, _ = run
    upload = stack.named("tencent-svc-looma-crm-upload")
    assert upload.type == COPY_TO_REMOTE
    copy = inputs(upload)
    assert copy["remotePath"] == "/var/lib/platform-uploads/looma-crm/2.1.0"
    assert copy["connection"]["hostKey"].startswith("ssh-ed25519 ")
    assert "triggers" not in copy  # no forced replace: a changed release is an update
    assert upload.retain_on_delete
    assert not upload.protect
    deploy = stack.named("tencent-svc-looma-crm")
    params = step_parameters(stack, "tencent-svc-looma-crm")
    assert params["ARTIFACT"] == "/var/lib/platform-uploads/looma-crm/2.1.0"
    assert params["ARTIFACT_SHA256"] == digest
    assert params["RUNTIME"] == "python"
    assert params["LOCK_FILE"] == "requirements.lock"
    assert upload.urn in deploy.dependencies


def test_the_unit_carries_settings_and_endpoints_never_a_secret(run):
    stack, _, _ = run
    deploy = inputs(stack.named("tencent-svc-looma-crm"))
    unit = step_parameters(stack, "tencent-svc-looma-crm")["UNIT_CONTENT"]
    for line in (
        "Environment=HOST=127.0.0.1",
        "Environment=LOG_LEVEL=info",
        "Environment=DB_PRODUCTION_POSTGRES_HOST=47.115.168.107",  # the Alibaba stack's publicIp output
        "Environment=DB_PRODUCTION_POSTGRES_PORT=5432",
        "Environment=DB_PRODUCTION_POSTGRES_USER=looma-crm",  # its own user, not the superuser
        "Environment=DB_PRODUCTION_POSTGRES_NAME=looma_crm",  # and its own database
        "Environment=DB_PRODUCTION_POSTGRES_TLS=true",
        "Environment=DB_PRODUCTION_REDIS_USER=looma-crm",
        "Environment=DB_PRODUCTION_REDIS_KEY_PREFIX=looma-crm:",
        "Environment=DB_PRODUCTION_REDIS_TLS=true",
        "Environment=DB_PRODUCTION_POSTGRES_PASSWORD_FILE=%d/DB_PRODUCTION_POSTGRES_PASSWORD",
        "Environment=DB_PRODUCTION_POSTGRES_CA_FILE=%d/DB_PRODUCTION_POSTGRES_CA",
        "Environment=HF_HOME=%C/platform/looma-crm/huggingface",
        "StateDirectory=platform/looma-crm",
        "CacheDirectory=platform/looma-crm",
        "LoadCredential=JWT_SECRET:/etc/platform/secrets/services/looma-crm/JWT_SECRET",
        "LoadCredential=DB_PRODUCTION_REDIS_PASSWORD:/etc/platform/secrets/services/looma-crm/DB_PRODUCTION_REDIS_PASSWORD",
    ):
        assert line in unit.splitlines(), line
    # The values travel on stdin, a secret, and the command logs nothing.
    stdin = stack.named("tencent-svc-looma-crm").inputs["stdin"]
    assert stdin["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    lines = dict(line.split(" ") for line in unwrap(stdin).splitlines())
    assert set(lines) == {
        "JWT_SECRET",
        "DB_PRODUCTION_POSTGRES_PASSWORD",
        "DB_PRODUCTION_POSTGRES_CA",
        "DB_PRODUCTION_REDIS_PASSWORD",
        "DB_PRODUCTION_REDIS_CA",
    }
    secret_value = base64.b64decode(lines["JWT_SECRET"]).decode()
    assert secret_value not in deploy["create"]
    assert deploy["logging"] == "none"
    # The CA the Alibaba stack's engines' certificates chain to, and the client's own password.
    assert base64.b64decode(lines["DB_PRODUCTION_POSTGRES_CA"]).decode().startswith("-----BEGIN CERTIFICATE-----")
    postgres_password = base64.b64decode(lines["DB_PRODUCTION_POSTGRES_PASSWORD"]).decode()
    assert postgres_password != base64.b64decode(lines["DB_PRODUCTION_REDIS_PASSWORD"]).decode()
    assert postgres_password not in unit


def test_the_proxy_renders_a_route_per_service_behind_https(run):
    stack, _, _ = run
    proxy = step_parameters(stack, "tencent-svc-proxy")
    conf = proxy["CONF_CONTENT"]
    assert proxy["CONF_FILE"] == "/etc/nginx/conf.d/platform-services.conf"
    assert "return 301 https://$host$request_uri;" in conf
    assert "listen 443 ssl;" in conf
    assert "location /looma-crm/ {" in conf
    assert "proxy_pass http://127.0.0.1:8700/;" in conf
    assert stack.named("tencent-svc-looma-crm").urn in stack.named("tencent-svc-proxy").dependencies


@pytest.mark.skipif(not Path(NGINX).exists(), reason="needs nginx (Debian's nginx package; .ci/run installs it)")
def test_nginx_accepts_the_rendered_configuration(tmp_path: Path):
    """`nginx -t` of Debian's nginx on the configuration the committed Tencent stack renders."""
    committed = config_for("tencent")
    plan = load_plan(committed.config, committed.secret_keys)
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-subj", "/CN=api.example.com", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    assert plan.proxy is not None
    proxy = plan.proxy.model_copy(
        update={"certificate": str(certificate), "certificate_key": str(key), "http_port": 18080,
                "https_port": 18443, "listen": "127.0.0.1"}
    )  # fmt: skip
    conf = nginx_config(proxy, plan.services)
    (tmp_path / "platform.conf").write_text(conf)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path};\n include {tmp_path}/platform.conf;\n}}\n"
    )
    checked = subprocess.run(
        [NGINX, "-t", "-c", str(main), "-e", str(tmp_path / "error.log")], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


@pytest.mark.usefixtures("fresh_pulumi_runtime")
@pytest.mark.parametrize("offline", [True, False], ids=["offline-gate", "as-the-cli-runs-it"])
def test_a_missing_local_release_is_one_line_at_preview(offline: bool):
    real = {key: value for key, value in as_deployed("tencent").items() if key != "services"}
    config = config_for("tencent", **{**real, **_changes()})
    with pytest.raises(RunError) as raised:
        run_stack(config.project, "tencent", config.config, set(config.secret_keys), offline=offline)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("platform:services[looma-crm].release.upload: ")
    assert "does not exist on this machine" in message


def test_the_offline_gate_fails_where_the_real_run_fails_with_the_same_line(folder: Path):
    """No stand-in for a release that is not there: `python -m preflight` stops as `pulumi preview` would."""
    (folder / "artifacts/looma-crm-2.1.0.tar.gz").rename(folder / "artifacts/elsewhere.tar.gz")
    try:
        result = preflight_cli("tencent", root=folder)
    finally:
        (folder / "artifacts/elsewhere.tar.gz").rename(folder / "artifacts/looma-crm-2.1.0.tar.gz")
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "error: stack tencent: platform:services[looma-crm].release.upload: 'artifacts/looma-crm-2.1.0.tar.gz' "
        "does not exist on this machine"
    )


@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_a_pinned_sha256_that_the_local_release_does_not_have_is_one_line(run):
    _, digest, checkout = run
    services = _services(RELEASE)
    services[0]["release"]["sha256"] = "0" * 64
    config = config_for("tencent", **{**_changes(), "services": services})
    with pytest.raises(
        RunError,
        match=rf"^platform:services\[looma-crm\]\.release\.upload: .* has sha256 {digest}, the plan pins 0{{64}}",
    ):
        run_stack(config.project, "tencent", config.config, set(config.secret_keys), checkout=checkout)


@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_a_database_the_alibaba_stack_does_not_export_is_one_line(run):
    _, _, checkout = run
    services = _services(RELEASE)
    services[0]["databases"] = ["production-cassandra"]
    config = config_for("tencent", **{**_changes(), "services": services})
    references = {
        SOURCE_STACK: StackOutputs(outputs={"databases": {"production-mysql": {}}, "databaseClientPasswords": {}})
    }
    with pytest.raises(RunError) as raised:
        run_stack(
            config.project, "tencent", config.config, set(config.secret_keys), references=references, checkout=checkout
        )
    assert str(raised.value) == (
        "platform:services: looma-crm lists database 'production-cassandra', which the stack "
        "'organization/platform/alibaba' does not export (its databases: production-mysql); fix the name or run "
        "`pulumi up` on that stack first"
    )


@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_a_database_that_makes_no_user_for_the_service_is_one_line(run):
    """The committed Alibaba stack serves no clients: LoomaCRM's databases would be reached as
    nobody, so the preview stops where the real run would, naming the key that lets it in."""
    _, _, checkout = run
    with pytest.raises(RunError) as raised:
        evaluate("tencent", checkout=checkout, **{**_changes(), "services": _services(RELEASE)})
    assert str(raised.value) == (
        "platform:services: looma-crm lists database 'production-postgres', but the stack "
        "'organization/platform/alibaba' makes no user for it there: add looma-crm to "
        "platform:databases[production-postgres].clients in that stack's file and run `pulumi up` on it first "
        "(a service reaches a database of the other host only as its own user, over verified TLS)"
    )


@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_an_alibaba_stack_without_the_databases_output_is_one_line(run):
    _, _, checkout = run
    config = config_for("tencent", **{**_changes(), "services": _services(RELEASE)})
    references = {SOURCE_STACK: StackOutputs(outputs={"publicIp": "47.115.168.107"})}
    with pytest.raises(
        RunError, match=r"^platform:databaseStack 'organization/platform/alibaba': the stack has no output 'databases'"
    ):
        run_stack(
            config.project, "tencent", config.config, set(config.secret_keys), references=references, checkout=checkout
        )


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        (
            {"environment": {"JWT_SECRET": "abc"}},
            (
                "platform:services[looma-crm]",
                "environment.JWT_SECRET looks like a secret",
                "--secret --path platform:serviceSecrets.JWT_SECRET",
            ),
        ),
        ({"environment": {"PORT": "1"}}, ("platform:services[looma-crm]", "PORT is set by the platform")),
        ({"runtime": "go", "python": {"version": "3.11"}}, ("python settings apply to runtime python only",)),
        ({"databases": ["production-mysql"], "secrets": []}, ("platform:databaseStack: required",)),
        ({"release": {"version": "1", "artifact": "/srv2/a.tgz", "upload": "a.tgz"}}, ("exactly one of artifact",)),
        ({"release": {"version": "1", "upload": "x/./a.tgz"}}, ("not normalized",)),
        ({"release": {"version": "1", "upload": "/proc/self/environ"}}, ("must be a path inside the project",)),
        ({"release": {"version": "1", "upload": "../../home/ci/.ssh"}}, ("must be a path inside the project",)),
        ({"release": {"version": "1", "upload": ".git"}}, ("names the hidden '.git'",)),
        ({"release": {"version": "1", "upload": "build/.env"}}, ("names the hidden '.env'",)),
    ],
    ids=[
        "secret-in-environment",
        "reserved-variable",
        "python-settings-on-go",
        "databases-without-stack",
        "two-sources",
        "unnormalized-upload",
        "upload-absolute",
        "upload-leaves-project",
        "upload-git",
        "upload-hidden",
    ],
)  # fmt: skip
def test_bad_service_settings_are_one_line(changes: dict[str, Any], fragments: tuple[str, ...]):
    service = {**_services("artifacts/x.tar.gz")[0], **changes}
    stack: dict[str, Any] = {"databaseStack": None} if "databases" in changes else {}
    with pytest.raises(PlanError) as raised:  # the plan is loaded as the program loads it
        config_for("tencent", services=[service], batches=[["looma-crm"]], **stack)
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.usefixtures("fresh_pulumi_runtime")
def test_an_upload_that_is_a_symbolic_link_out_of_the_project_is_one_line(tmp_path: Path):
    """The path is inside the project, but the file it names is not: resolved, it leaves."""
    (tmp_path / "artifacts").mkdir()
    (tmp_path / RELEASE).symlink_to("/etc/hostname")
    config = config_for("tencent", **{**_changes(), "services": _services(RELEASE)})
    with pytest.raises(RunError) as raised:
        run_stack(config.project, "tencent", config.config, set(config.secret_keys), checkout=tmp_path)
    assert str(raised.value) == (
        f"platform:services[looma-crm].release.upload: {RELEASE!r} leads out of the project through a symbolic "
        "link; copy the release into the project instead"
    )


def test_service_secrets_in_plain_text_are_refused():
    config = config_for("tencent", **{**_changes(), "services": _services(RELEASE)})
    values = {**config.config, "platform:serviceSecrets": '{"JWT_SECRET": "x"}'}
    with pytest.raises(PlanError, match=r"^platform:serviceSecrets is stored in plain text"):
        load_plan(values, config.secret_keys - {"platform:serviceSecrets"})


def test_a_directory_release_is_digested_as_the_host_digests_it(tmp_path: Path):
    release = tmp_path / "release"
    (release / "bin").mkdir(parents=True)
    (release / "bin/zervigo").write_bytes(b"\x7fELF...")
    (release / "VERSION").write_text("1.2.0\n")
    # The deploy script's own function, run by bash as on the host.
    deploy = (ROOT / "components/scripts/svc_deploy.sh").read_text()
    function = deploy[deploy.index("tree_digest() {") : deploy.index("\n}\n", deploy.index("tree_digest() {")) + 3]
    on_host = subprocess.run(
        ["bash", "-c", f'{function}\ntree_digest "$1"', "digest", str(release)],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    assert tree_digest(release) == on_host


def test_a_new_release_updates_its_upload_and_deploy_and_a_dropped_service_s_upload_is_kept(run, tmp_path: Path):
    """The next `up`: a bumped release is an update of the upload (the provider copies the new file;
    no triggers, so nothing is replaced) and of the deploy; a service that leaves the plan leaves its
    upload forgotten, not deleted (retainOnDelete), and preflight calls the unretired service a hazard."""
    from preflight import diff

    before, _, _ = run
    (tmp_path / "artifacts").mkdir()
    _tarball(tmp_path / "artifacts/looma-2.2.0.tar.gz", {"app.py": "print('2.2')\n", "requirements.lock": ""})
    services = _services("artifacts/looma-2.2.0.tar.gz")
    services[0]["release"]["version"] = "2.2.0"
    after = evaluate("tencent", checkout=tmp_path, source=CLIENTS, **{**_changes(), "services": services})
    found = {s.name: s for s in diff.steps(before, after).changes()}
    assert found["tencent-svc-looma-crm-upload"].op == "update"
    assert set(found["tencent-svc-looma-crm-upload"].changed) == {"remotePath", "source"}
    assert found["tencent-svc-looma-crm"].op == "update"
    assert {s.op for s in found.values()} == {"update"}

    dropped = evaluate("tencent", source=CLIENTS, **{**_changes(), "services": [], "batches": []})
    steps = diff.steps(before, dropped)
    upload = next(s for s in steps.changes() if s.name == "tencent-svc-looma-crm-upload")
    assert (upload.op, upload.notes, upload.runs) == ("delete", ("retained: nothing runs",), ())
    assert upload.old is not None
    assert upload.old.replace_on_changes == ["triggers[*]"]  # forced by the SDK, and never triggered: no triggers
    assert any("looma-crm" in hazard for hazard in steps.hazards)
