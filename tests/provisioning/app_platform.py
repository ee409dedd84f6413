"""What the application-platform tests put on the loopback host: releases as CI builds them (a
Python service with a lock file and its wheels, a Go-style binary), a test CA and certificate,
and nginx started as the host's nginx.service (Debian's nginx, under the systemctl stand-in)."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from components import services as services_component
from components.uploads import host_artifact, remote_path, resolve
from plan import Plan, Service
from tests.provisioning.harness import Run, SshHost

NGINX = "/usr/sbin/nginx"
UV_CANDIDATES = (Path(".make/tools/bin/uv"), Path(shutil.which("uv") or "/nonexistent"))

# The Python service: answers /health, tells what it was given without showing a secret.
PYTHON_APP = """
import hashlib, json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import platform_greeting

VERSION = Path("VERSION").read_text().strip()
HEALTHY = Path("behaviour").read_text().strip() == "healthy"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            status, body = (200, "ok " + VERSION) if HEALTHY else (503, VERSION + ": unhealthy")
        elif self.path == "/facts":
            credential = Path(os.environ["CREDENTIALS_DIRECTORY"], "JWT_SECRET").read_bytes()
            cache = Path(os.environ["HF_HOME"])
            cache.mkdir(parents=True, exist_ok=True)
            (cache / "model.bin").write_text("weights")
            status, body = 200, json.dumps({
                "version": VERSION,
                "greeting": platform_greeting.GREETING,
                "jwtSha256": hashlib.sha256(credential).hexdigest(),
                "hfHome": str(cache),
                "python": os.path.realpath(os.sys.executable),
                "prefix": os.sys.prefix,
            })
        else:
            status, body = 404, "not found"
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
"""

# The Go-style service: an ELF executable (a copy of this machine's Python interpreter) and the
# program it serves.
BINARY_APP = """
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = Path("VERSION").read_text().strip()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        payload = ("ok " + VERSION).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
"""


def host_uv(version: str) -> Path | None:
    """A uv of the version the hosts pin, on this machine (the Makefile installs that one)."""
    for candidate in UV_CANDIDATES:
        if candidate.is_file():
            found = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, check=False)
            if found.stdout.split()[1:2] == [version]:
                return candidate.resolve()
    return None


def seed_uv(host: SshHost, plan: Plan, uv: Path) -> None:
    """What the bootstrap's install leaves: the pinned uv at its path (here copied, not downloaded)."""
    target = Path(services_component.uv_path(plan.paths))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(uv, target)


def wheel(directory: Path) -> tuple[Path, str]:
    """A pure-Python wheel of ``platform_greeting`` (what CI would download into wheels/)."""
    files = {
        "platform_greeting/__init__.py": 'GREETING = "hello from a locked dependency"\n',
        "platform_greeting-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: platform-greeting\nVersion: 1.0\n",
        "platform_greeting-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append("platform_greeting-1.0.dist-info/RECORD,,")
    files["platform_greeting-1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
    path = directory / "platform_greeting-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), text)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def python_release(build: Path, version: str, behaviour: str = "healthy") -> Path:
    """A release tarball as CI builds it: the code, a hash-pinned lock file and the wheels."""
    staging = build / f"python-{version}-{behaviour}"
    (staging / "wheels").mkdir(parents=True)
    _, digest = wheel(staging / "wheels")
    (staging / "app.py").write_text(PYTHON_APP)
    (staging / "VERSION").write_text(f"{version}\n")
    (staging / "behaviour").write_text(f"{behaviour}\n")
    (staging / "requirements.lock").write_text(f"platform-greeting==1.0 \\\n    --hash=sha256:{digest}\n")
    tarball = build / f"pyapp-{version}-{behaviour}.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(staging, arcname=".")
    return tarball


def binary_release(build: Path, version: str, machine: bytes | None = None, crash: bool = False) -> Path:
    """A release directory holding an ELF executable (``machine``: its e_machine patched to another
    architecture's; ``crash``: its program exits on start)."""
    release = build / f"goapp-{version}{'-crash' if crash else ''}" / "release"
    release.mkdir(parents=True)
    binary = release / "goapp"
    shutil.copy2(Path(sys.executable).resolve(), binary)
    if machine is not None:
        data = bytearray(binary.read_bytes())
        data[18:20] = machine
        binary.write_bytes(bytes(data))
    (release / "server.py").write_text("raise SystemExit(3)\n" if crash else BINARY_APP)
    (release / "VERSION").write_text(f"{version}\n")
    return release


def upload_and_deploy(host: SshHost, plan: Plan, service: Service, project: Path, stdin: str = "") -> tuple[Run, Run]:
    """What `pulumi up` runs for the service: its CopyToRemote (over SFTP), then its deploy."""
    local = resolve(plan.services, project)[service.name]
    upload = host.upload(local.path, remote_path(plan.paths, service))
    artifact = services_component.ArtifactSource(host_artifact(plan.paths, service, local), local.sha256)
    return upload, host.step(services_component.deploy_step("app", plan.layout, service, artifact), stdin)


def certificates(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for ``name`` and 127.0.0.1: (ca, certificate, key)."""
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, request, certificate = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "san.ext"
    extensions.write_text(f"subjectAltName=DNS:{name},IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for argv in (
        ["openssl", "req", "-x509", *ec, "-days", "1", "-subj", "/CN=platform test CA", "-keyout", ca_key, "-out", ca],
        ["openssl", "req", *ec, "-subj", f"/CN={name}", "-keyout", key, "-out", request],
        ["openssl", "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
         "-extfile", extensions, "-out", certificate],
    ):  # fmt: skip
        subprocess.run([str(part) for part in argv], check=True, capture_output=True, timeout=30)
    return ca, certificate, key


def start_nginx(host: SshHost, conf_dir: str) -> Run:
    """Debian's nginx as the host's nginx.service: its main configuration includes the plan's
    drop-in directory, and the nginx stand-in on PATH points `nginx -t` at the same file."""
    root = host.standin_state / "nginx"
    (root / "temp").mkdir(parents=True, exist_ok=True)
    Path(conf_dir).mkdir(parents=True, exist_ok=True)
    (root / "nginx.conf").write_text(
        f"pid {root}/nginx.pid;\nerror_log {root}/error.log;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {root}/temp;\n  proxy_temp_path {root}/temp;\n"
        f"  include {conf_dir}/*.conf;\n}}\n"
    )
    flags = f"-c {root}/nginx.conf -e {root}/error.log"
    (host.units / "nginx.service").write_text(
        "[Service]\nType=simple\n"
        f"ExecStart={NGINX} {flags} -g 'daemon off; master_process on;'\n"
        f"ExecReload={NGINX} {flags} -s reload\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )
    return host.run("systemctl daemon-reload && systemctl start nginx.service", label="start nginx")
