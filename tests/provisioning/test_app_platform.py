"""The application platform over SSH on loopback, as `pulumi up` runs it: a release uploaded from
the machine running it (SFTP, as CopyToRemote), its runtime made on the host (a virtualenv from
the lock file; an executable for this architecture), its secret handed over as a systemd
credential, and the service reached through Debian's real nginx over TLS (a test CA)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from components import services as services_component
from components.provisioning import Step
from components.services import HOST_UV_VERSION, credentials_stdin
from plan import Plan
from tests.provisioning import app_platform
from tests.provisioning.harness import SshHost, free_port, password_for, wait_until
from tests.provisioning.workloads import free_ports

JWT = password_for("jwt-secret")  # a placeholder the leak scan looks for everywhere
UV = app_platform.host_uv(HOST_UV_VERSION)
needs_uv = pytest.mark.skipif(UV is None, reason=f"needs uv {HOST_UV_VERSION} on this machine (`make` installs it)")
needs_nginx = pytest.mark.skipif(
    not Path(app_platform.NGINX).exists(), reason="needs nginx (Debian's nginx package; .ci/run installs it)"
)


def python_service(port: int, version: str, upload: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "pyapp",
        "port": port,
        "family": "test",
        "memoryMib": 128,
        "runtime": "python",
        "release": {"version": version, "upload": upload},
        "startCommand": ".venv/bin/python app.py",
        "healthTimeoutS": 10,
        "secrets": ["JWT_SECRET"],
        **fields,
    }


def proxy_tls_dir(host: SshHost) -> Path:
    """Where the proxy's certificate lives: the platform's secrets directory, one of the places a
    plan may name (plan/validation.py: CERTIFICATE_ROOTS, paths.secrets)."""
    directory = host.secrets / "proxy"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def proxy_plan(host: SshHost, service: dict[str, Any], ports: list[int], tls: tuple[Path, Path, Path], keep: int = 3):
    _, certificate, key = tls
    return host.plan(
        "tencent",
        services=[service],
        existing=[
            {
                "name": "nginx",
                "ports": [{"port": ports[0], "expose": "public"}, {"port": ports[1], "expose": "public"}],
                "memoryMib": 64,
            }
        ],
        keep_releases=keep,
        extra={
            "proxy": {
                "serverName": "platform.test",
                "certificate": str(certificate),
                "certificateKey": str(key),
                "httpPort": ports[0],
                "httpsPort": ports[1],
                "listen": "127.0.0.1",
            }
        },
    )


def proxy_step(plan: Plan) -> Step:
    """The proxy's step for a plan that has one."""
    assert plan.proxy is not None
    return services_component.proxy_step("app", plan.layout, plan.proxy, plan.services)


def through_nginx(ca: Path, port: int, path: str) -> tuple[int, str]:
    """GET https://platform.test:<port><path> at 127.0.0.1, the certificate checked against the CA.

    `nginx -s reload` (the unit's ExecReload) only signals the master, which opens a new listener
    a moment later, so the port is awaited first (bounded)."""
    assert wait_until(lambda: _accepts(port), timeout=10), f"nothing listens on 127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(ca))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": "platform.test"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@needs_uv
@needs_nginx
def test_a_python_service_from_a_local_release_serves_through_nginx_over_tls_and_rolls_back_by_symlink(
    host: SshHost, tmp_path: Path
):
    assert UV is not None
    project, build = tmp_path, tmp_path / "artifacts"
    build.mkdir()
    tls = app_platform.certificates(proxy_tls_dir(host), "platform.test")
    ports = [*free_ports(2), free_port()]
    releases = {v: app_platform.python_release(build, v) for v in ("1.0", "2.0")}
    releases["3.0"] = app_platform.python_release(build, "3.0", behaviour="unhealthy")

    def plan_for(version: str):
        upload = str(releases[version].relative_to(project))
        return proxy_plan(host, python_service(ports[2], version, upload), ports, tls)

    plan = plan_for("1.0")
    app_platform.seed_uv(host, plan, UV)
    bootstrap = host.step(services_component.bootstrap_step("app", plan.layout, plan.host_check, plan.services))
    assert bootstrap.code == 0, bootstrap
    uploads = Path(plan.paths.uploads)
    assert oct(uploads.stat().st_mode & 0o777) == "0o700"
    assert (uploads / "pyapp").is_dir()  # the upload's target, made before anything is sent
    assert app_platform.start_nginx(host, plan.paths.nginx).code == 0

    stdin = credentials_stdin(plan.services[0], {"JWT_SECRET": JWT}, {}, {})
    upload, first = app_platform.upload_and_deploy(host, plan, plan.services[0], project, stdin)
    assert upload.code == 0, upload
    assert first.code == 0, first
    assert "pyapp: built the virtualenv of 1.0 from requirements.lock" in first.stdout
    assert "pyapp: credential JWT_SECRET written" in first.stdout
    service_dir = Path(plan.paths.root) / "pyapp"
    venv = service_dir / "releases/1.0/.venv"
    assert (venv / "bin/python").exists()

    # The credential: a 0600 root file, handed to the service by systemd, never in the unit.
    credential = Path(services_component.credentials_dir(plan.paths, plan.services[0])) / "JWT_SECRET"
    assert credential.read_text() == JWT
    assert oct(credential.stat().st_mode & 0o777) == "0o600"
    unit = (host.units / "platform-pyapp.service").read_text()
    assert JWT not in unit
    assert f"LoadCredential=JWT_SECRET:{credential}" in unit

    proxy = host.step(proxy_step(plan))
    assert proxy.code == 0, proxy
    assert proxy.stdout.strip().endswith("nginx reloaded")
    status, body = through_nginx(tls[0], ports[1], "/pyapp/facts")
    assert status == 200, body
    facts = json.loads(body)
    assert facts["version"] == "1.0"
    assert facts["greeting"] == "hello from a locked dependency"  # installed from the lock file's wheel
    assert facts["jwtSha256"] == hashlib.sha256(JWT.encode()).hexdigest()
    assert facts["prefix"].endswith("releases/1.0/.venv")
    assert (Path(facts["hfHome"]) / "model.bin").read_text() == "weights"  # the cache is writable
    # Plain HTTP is redirected to HTTPS; the service itself listens on loopback only.
    plain = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=10)
    plain.request("GET", "/pyapp/health", headers={"Host": "platform.test"})
    redirect = plain.getresponse()
    assert (redirect.status, redirect.getheader("Location")) == (301, f"https://platform.test:{ports[1]}/pyapp/health")
    plain.close()
    assert host.step(proxy_step(plan)).stdout.strip() == "proxy: unchanged"

    # 2.0 gets a virtualenv of its own; the old uploads are dropped once it is live.
    plan2 = plan_for("2.0")
    _, second = app_platform.upload_and_deploy(host, plan2, plan2.services[0], project, stdin)
    assert second.code == 0, second
    assert "built the virtualenv of 2.0" in second.stdout
    assert sorted(p.name for p in (uploads / "pyapp").iterdir()) == ["2.0"]
    assert json.loads(through_nginx(tls[0], ports[1], "/pyapp/facts")[1])["version"] == "2.0"

    # A failing 3.0 rolls back to 2.0 by the symlink: 2.0's virtualenv is used as it is.
    plan3 = plan_for("3.0")
    venv2 = service_dir / "releases/2.0/.venv"
    before = venv2.stat().st_ino, venv2.stat().st_mtime_ns
    _, third = app_platform.upload_and_deploy(host, plan3, plan3.services[0], project, stdin)
    assert third.code == 7, third
    assert "pyapp: rolled back to 2.0, healthy" in third.stderr
    assert "built the virtualenv of 2.0" not in third.stdout + third.stderr
    assert (venv2.stat().st_ino, venv2.stat().st_mtime_ns) == before
    assert json.loads(through_nginx(tls[0], ports[1], "/pyapp/facts")[1])["version"] == "2.0"

    # Back to 1.0 on purpose (the plan's version): a symlink switch, no install.
    _, back = app_platform.upload_and_deploy(host, plan, plan.services[0], project, stdin)
    assert back.code == 0, back
    assert "virtualenv" not in back.stdout
    assert os.readlink(service_dir / "current") == str(service_dir / "releases/1.0")
    assert json.loads(through_nginx(tls[0], ports[1], "/pyapp/facts")[1])["version"] == "1.0"

    # A rotated secret restarts the service with the new value; the release stays.
    rotated = password_for("jwt-secret-rotated")
    stdin2 = credentials_stdin(plan.services[0], {"JWT_SECRET": rotated}, {}, {})
    rotation = host.step(
        services_component.deploy_step("app", plan.layout, plan.services[0], _artifact(plan, project)), stdin2
    )
    assert rotation.code == 0, rotation
    assert "pyapp: credential JWT_SECRET written" in rotation.stdout
    facts = json.loads(through_nginx(tls[0], ports[1], "/pyapp/facts")[1])
    assert facts["jwtSha256"] == hashlib.sha256(rotated.encode()).hexdigest()


def _artifact(plan, project: Path) -> services_component.ArtifactSource:
    from components.uploads import host_artifact, resolve

    local = resolve(plan.services, project)["pyapp"]
    return services_component.ArtifactSource(host_artifact(plan.paths, plan.services[0], local), local.sha256)


@needs_nginx
def test_a_configuration_nginx_refuses_is_taken_back_and_the_proxy_keeps_serving(host: SshHost, tmp_path: Path):
    tls = app_platform.certificates(proxy_tls_dir(host), "platform.test")
    ports = [*free_ports(2), free_port()]
    good = proxy_plan(host, python_service(ports[2], "1.0", "a.tar.gz"), ports, tls)
    assert app_platform.start_nginx(host, good.paths.nginx).code == 0
    assert host.step(proxy_step(good)).code == 0
    conf = Path(good.paths.nginx) / "platform-services.conf"
    served = conf.read_text()
    missing = (tls[0], proxy_tls_dir(host) / "absent.pem", tls[2])
    bad = proxy_plan(host, python_service(ports[2], "1.0", "a.tar.gz"), ports, missing)
    refused = host.step(proxy_step(bad))
    assert refused.code == 9, refused
    assert "proxy: nginx refused the new configuration, the previous one is back:" in refused.stderr
    assert "absent.pem" in refused.stderr
    assert conf.read_text() == served
    assert through_nginx(tls[0], ports[1], "/pyapp/health")[0] == 502  # nginx up; the service is not deployed


def binary_service(port: int, version: str, upload: str) -> dict[str, Any]:
    return {
        "name": "goapp",
        "port": port,
        "family": "test",
        "memoryMib": 64,
        "runtime": "go",
        "release": {"version": version, "upload": upload},
        "startCommand": "./goapp server.py",
        "healthTimeoutS": 10,
    }


def test_a_binary_for_this_architecture_deploys_one_for_another_is_refused_before_the_switch(
    host: SshHost, tmp_path: Path
):
    port = free_port()
    good = app_platform.binary_release(tmp_path, "1.0")
    other = app_platform.binary_release(
        tmp_path, "2.0", machine=b"\xb7\x00" if os.uname().machine != "aarch64" else b"\x3e\x00"
    )
    plan = host.plan("tencent", services=[binary_service(port, "1.0", str(good.relative_to(tmp_path)))])
    assert host.step(services_component.bootstrap_step("app", plan.layout, plan.host_check, plan.services)).code == 0
    upload, first = app_platform.upload_and_deploy(host, plan, plan.services[0], tmp_path)
    assert upload.code == 0, upload
    assert first.code == 0, first
    assert first.stdout.splitlines()[-1] == "goapp: 1.0 deployed, healthy"
    service_dir = Path(plan.paths.root) / "goapp"
    assert (service_dir / "releases/1.0/goapp").stat().st_mode & 0o111

    # A release that crashes on start goes back to 1.0 by the symlink, with nothing to rebuild.
    crashing = app_platform.binary_release(tmp_path, "1.1", crash=True)
    plan11 = host.plan("tencent", services=[binary_service(port, "1.1", str(crashing.relative_to(tmp_path)))])
    _, rolled = app_platform.upload_and_deploy(host, plan11, plan11.services[0], tmp_path)
    assert rolled.code == 7, rolled
    assert "goapp: rolled back to 1.0, healthy" in rolled.stderr
    assert os.readlink(service_dir / "current") == str(service_dir / "releases/1.0")

    plan2 = host.plan("tencent", services=[binary_service(port, "2.0", str(other.relative_to(tmp_path)))])
    _, refused = app_platform.upload_and_deploy(host, plan2, plan2.services[0], tmp_path)
    assert refused.code == 10, refused
    assert "goapp: ./goapp in 2.0 is built for another architecture" in refused.stderr
    assert "nothing changed" in refused.stderr
    assert os.readlink(service_dir / "current") == str(service_dir / "releases/1.0")
    assert not (service_dir / "releases/2.0").exists()


def test_an_uploaded_directory_that_changed_in_transit_is_refused(host: SshHost, tmp_path: Path):
    port = free_port()
    release = app_platform.binary_release(tmp_path, "1.0")
    plan = host.plan("tencent", services=[binary_service(port, "1.0", str(release.relative_to(tmp_path)))])
    assert host.step(services_component.bootstrap_step("app", plan.layout, plan.host_check, plan.services)).code == 0
    from components.uploads import host_artifact, remote_path, resolve

    local = resolve(plan.services, tmp_path)["goapp"]
    assert host.upload(local.path, remote_path(plan.paths, plan.services[0])).code == 0
    target = Path(host_artifact(plan.paths, plan.services[0], local))
    (target / "VERSION").write_text("tampered\n")
    artifact = services_component.ArtifactSource(str(target), local.sha256)
    run = host.step(services_component.deploy_step("app", plan.layout, plan.services[0], artifact))
    assert run.code == 6, run
    assert f"does not match its sha256 {local.sha256}; nothing changed" in run.stderr
    assert not (Path(plan.paths.root) / "goapp/releases").exists() or not any(
        (Path(plan.paths.root) / "goapp/releases").iterdir()
    )
