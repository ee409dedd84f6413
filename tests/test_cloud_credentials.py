"""`tools/cloud_credentials.py`, run: the OIDC exchange at each cloud's STS and the static-key
fallback, as a workflow step runs them.

GitHub's token service and the clouds' STS cannot exist here: one HTTP server on 127.0.0.1 (an
ephemeral port) stands in for them, answering in the shapes the clouds' SDKs read (Alibaba:
credentials-nodejs' OIDC provider; Tencent: tencentcloud-sdk-go's sts/v20180813) and recording what
it was sent. Every process and wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.loopback import serving
from tests.test_ci import clean_env

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "cloud_credentials.py"
PROCESS_TIMEOUT = 30
GITHUB_TOKEN = "GITHUB-OIDC-TOKEN-eyJhbGciOi"  # what a leak of the job's token would show
REQUEST_BEARER = "RUNNER-REQUEST-TOKEN-123"
TEMPORARY = ("STS.TMP-ID-1", "TMP-SECRET-2", "TMP-SECURITY-TOKEN-3")
ROLE = {"alibaba": "acs:ram::1234567890:role/platform-deploy", "tencent": "qcs::cam::uin/100000000001:roleName/deploy"}
PROVIDER = {"alibaba": "acs:ram::1234567890:oidc-provider/github", "tencent": "github"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Cloud:
    """The stand-in's address, what it answers and what it was sent."""

    url: str = ""
    sts_status: int = 200
    sts_answer: dict[str, object] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def sts_requests(self) -> list[Seen]:
        return [request for request in self.seen if request.method == "POST"]


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    state = Cloud()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status: int, document: object) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # GitHub's token service
            state.seen.append(Seen("GET", self.path, {key.lower(): value for key, value in self.headers.items()}, b""))
            if self.headers.get("Authorization") != f"Bearer {REQUEST_BEARER}":
                self.answer(401, {"message": "bad bearer"})
                return
            self.answer(200, {"value": GITHUB_TOKEN})

        def do_POST(self) -> None:  # the cloud's STS
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.seen.append(
                Seen("POST", self.path, {key.lower(): value for key, value in self.headers.items()}, body)
            )
            self.answer(state.sts_status, state.sts_answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as port:
        state.url = f"http://127.0.0.1:{port}"
        yield state


def run(
    cloud_name: str, tmp_path: Path, *, sts: str | None = None, **env: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """The script as a workflow step runs it; its result and what it wrote to $GITHUB_ENV."""
    github_env = tmp_path / "github_env"
    github_env.write_text("EARLIER=1\n")
    base = {
        key: value
        for key, value in clean_env().items()
        if not key.startswith(("CLOUD_", "ACTIONS_ID_TOKEN_", "GITHUB_", "ALICLOUD_", "TENCENTCLOUD_"))
    }
    result = subprocess.run(
        [sys.executable, str(SCRIPT), cloud_name, *(["--sts-endpoint", sts] if sts else [])],
        capture_output=True,
        text=True,
        env={**base, "GITHUB_ENV": str(github_env), "GITHUB_RUN_ID": "42", **env},
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert "Traceback" not in result.stderr
    return result, github_env.read_text()


def oidc_env(cloud: Cloud, cloud_name: str) -> dict[str, str]:
    return {
        "CLOUD_ROLE_ARN": ROLE[cloud_name],
        "CLOUD_OIDC_PROVIDER": PROVIDER[cloud_name],
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{cloud.url}/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_BEARER,
    }


def assert_nothing_secret_printed(result: subprocess.CompletedProcess[str]) -> None:
    shown = result.stdout + result.stderr
    assert GITHUB_TOKEN not in shown
    assert REQUEST_BEARER not in shown


def test_alibaba_exchanges_the_jobs_token_for_temporary_keys_at_sts(cloud: Cloud, tmp_path: Path):
    cloud.sts_answer = {
        "RequestId": "r-1",
        "Credentials": dict(zip(("AccessKeyId", "AccessKeySecret", "SecurityToken"), TEMPORARY, strict=True))
        | {"Expiration": "2026-12-07T17:00:00Z"},
    }
    result, written = run("alibaba", tmp_path, sts=cloud.url, **oidc_env(cloud, "alibaba"))
    assert result.returncode == 0, result.stderr
    # GitHub's token service: the audience Alibaba's OIDC provider is registered with.
    (token_request,) = [request for request in cloud.seen if request.method == "GET"]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(token_request.path).query)["audience"] == ["sts.aliyuncs.com"]
    # STS: AssumeRoleWithOIDC, its parameters in the form body, no signature.
    (sts,) = cloud.sts_requests()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(sts.path).query)
    assert {key: query[key] for key in ("Action", "Version", "Format")} == {
        "Action": ["AssumeRoleWithOIDC"],
        "Version": ["2015-04-01"],
        "Format": ["JSON"],
    }
    assert sts.headers["content-type"] == "application/x-www-form-urlencoded"
    form = urllib.parse.parse_qs(sts.body.decode())
    assert form == {
        "RoleArn": [ROLE["alibaba"]],
        "OIDCProviderArn": [PROVIDER["alibaba"]],
        "OIDCToken": [GITHUB_TOKEN],
        "RoleSessionName": ["github-42-1"],
        "DurationSeconds": ["3600"],
    }
    # The provider's names, each value masked before anything else is printed.
    assert written.splitlines() == [
        "EARLIER=1",
        f"ALICLOUD_ACCESS_KEY={TEMPORARY[0]}",
        f"ALICLOUD_SECRET_KEY={TEMPORARY[1]}",
        f"ALICLOUD_SECURITY_TOKEN={TEMPORARY[2]}",
    ]
    lines = result.stdout.splitlines()
    assert lines[:3] == [f"::add-mask::{value}" for value in TEMPORARY]
    assert lines[3:] == [
        f"cloud_credentials.py: alibaba: temporary keys for {ROLE['alibaba']} through OIDC, valid 3600 s"
    ]
    assert_nothing_secret_printed(result)


def test_tencent_exchanges_the_jobs_token_for_temporary_keys_at_sts(cloud: Cloud, tmp_path: Path):
    cloud.sts_answer = {
        "Response": {
            "Credentials": dict(zip(("TmpSecretId", "TmpSecretKey", "Token"), TEMPORARY, strict=True)),
            "ExpiredTime": 1796662800,
            "Expiration": "2026-12-07T17:00:00Z",
            "RequestId": "r-2",
        }
    }
    result, written = run(
        "tencent", tmp_path, sts=cloud.url, CLOUD_OIDC_AUDIENCE="my-client-id", **oidc_env(cloud, "tencent")
    )
    assert result.returncode == 0, result.stderr
    (token_request,) = [request for request in cloud.seen if request.method == "GET"]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(token_request.path).query)["audience"] == ["my-client-id"]
    (sts,) = cloud.sts_requests()
    assert {key: sts.headers[key] for key in ("authorization", "x-tc-action", "x-tc-version", "content-type")} == {
        "authorization": "SKIP",
        "x-tc-action": "AssumeRoleWithWebIdentity",
        "x-tc-version": "2018-08-13",
        "content-type": "application/json",
    }
    assert sts.headers["x-tc-region"]
    assert sts.headers["x-tc-timestamp"].isdigit()
    assert json.loads(sts.body) == {
        "ProviderId": PROVIDER["tencent"],
        "WebIdentityToken": GITHUB_TOKEN,
        "RoleArn": ROLE["tencent"],
        "RoleSessionName": "github-42-1",
        "DurationSeconds": 3600,
    }
    assert written.splitlines()[1:] == [
        f"TENCENTCLOUD_SECRET_ID={TEMPORARY[0]}",
        f"TENCENTCLOUD_SECRET_KEY={TEMPORARY[1]}",
        f"TENCENTCLOUD_SECURITY_TOKEN={TEMPORARY[2]}",
    ]
    assert result.stdout.splitlines()[:3] == [f"::add-mask::{value}" for value in TEMPORARY]
    assert_nothing_secret_printed(result)


@pytest.mark.parametrize(
    ("cloud_name", "status", "answer", "line"),
    [
        (
            "alibaba",
            400,
            {"RequestId": "r", "Code": "AuthenticationFail.OIDCToken.Invalid", "Message": "the token\nis not valid"},
            "cloud_credentials.py: Alibaba Cloud STS answered HTTP 400: AuthenticationFail.OIDCToken.Invalid: "
            "the token is not valid",
        ),
        (
            "tencent",
            200,
            {"Response": {"Error": {"Code": "InvalidParameter.WebIdentityTokenError", "Message": "sub mismatch"}}},
            "cloud_credentials.py: Tencent Cloud STS refused the OIDC token: InvalidParameter.WebIdentityTokenError: "
            "sub mismatch",
        ),
        (
            "tencent",
            200,
            {"Response": {"RequestId": "r"}},
            "cloud_credentials.py: Tencent Cloud STS answered without Credentials",
        ),
    ],
)
def test_a_refused_exchange_is_one_line_and_hands_nothing_over(
    cloud: Cloud, tmp_path: Path, cloud_name: str, status: int, answer: dict[str, object], line: str
):
    cloud.sts_status, cloud.sts_answer = status, answer
    result, written = run(cloud_name, tmp_path, sts=cloud.url, **oidc_env(cloud, cloud_name))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [line]
    assert written == "EARLIER=1\n"
    assert "::add-mask::" not in result.stdout
    assert_nothing_secret_printed(result)


def test_an_unreachable_sts_is_one_line(cloud: Cloud, tmp_path: Path):
    import socket

    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"
    result, written = run("alibaba", tmp_path, sts=closed, **oidc_env(cloud, "alibaba"))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("cloud_credentials.py: could not reach Alibaba Cloud STS: ")
    assert written == "EARLIER=1\n"


def test_a_role_without_the_id_token_permission_says_which_permission(cloud: Cloud, tmp_path: Path):
    env = {key: value for key, value in oidc_env(cloud, "tencent").items() if not key.startswith("ACTIONS_")}
    result, written = run("tencent", tmp_path, sts=cloud.url, **env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "cloud_credentials.py: CLOUD_ROLE_ARN is set but this job cannot request a GitHub OIDC token: give the job "
        "`permissions: id-token: write`"
    ]
    assert cloud.seen == []
    assert written == "EARLIER=1\n"


def test_a_role_without_its_identity_provider_is_one_line(cloud: Cloud, tmp_path: Path):
    result, _ = run("alibaba", tmp_path, sts=cloud.url, **(oidc_env(cloud, "alibaba") | {"CLOUD_OIDC_PROVIDER": ""}))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "cloud_credentials.py: CLOUD_ROLE_ARN is set but CLOUD_OIDC_PROVIDER is not: set the environment's "
        "variable to the RAM OIDC provider's ARN"
    ]
    assert cloud.seen == []


@pytest.mark.parametrize(
    ("cloud_name", "names"),
    [
        ("alibaba", ("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY")),
        ("tencent", ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY")),
    ],
)
def test_static_keys_are_the_fallback_under_the_providers_names(
    tmp_path: Path, cloud_name: str, names: tuple[str, str]
):
    result, written = run(
        cloud_name, tmp_path, CLOUD_ACCESS_KEY_ID="STATIC-ID-9", CLOUD_ACCESS_KEY_SECRET="STATIC-SECRET-9"
    )
    assert result.returncode == 0, result.stderr
    assert written.splitlines()[1:] == [f"{names[0]}=STATIC-ID-9", f"{names[1]}=STATIC-SECRET-9"]
    assert "STATIC-SECRET-9" not in result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"cloud_credentials.py: {cloud_name}: the environment's static keys (set CLOUD_ROLE_ARN to use OIDC instead)"
    ]


def test_an_environment_without_credentials_names_both_ways_to_set_them(tmp_path: Path):
    result, written = run("tencent", tmp_path, CLOUD_ACCESS_KEY_ID="only-the-id")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "CLOUD_ROLE_ARN and CLOUD_OIDC_PROVIDER (OIDC)" in line
    assert "CLOUD_ACCESS_KEY_ID and CLOUD_ACCESS_KEY_SECRET" in line
    assert written == "EARLIER=1\n"


def test_a_key_with_a_line_break_cannot_add_variables_of_its_own(tmp_path: Path):
    result, written = run(
        "alibaba", tmp_path, CLOUD_ACCESS_KEY_ID="id", CLOUD_ACCESS_KEY_SECRET="secret\nLD_PRELOAD=/tmp/x.so"
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "cloud_credentials.py: a credential holds a line break; refusing to write it to $GITHUB_ENV"
    ]
    assert written == "EARLIER=1\n"
    assert "LD_PRELOAD" not in result.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["azure"], "cloud_credentials.py: unknown cloud 'azure'; valid clouds: alibaba, tencent"),
        (
            ["alibaba", "--duration", "60"],
            "cloud_credentials.py: --duration 60: the clouds' STS take 900 to 43200 seconds",
        ),
        (
            ["alibaba", "--sts-endpoint", "http://sts.example.com"],
            "cloud_credentials.py: --sts-endpoint 'http://sts.example.com': not an https address",
        ),
    ],
)
def test_bad_arguments_are_one_line(tmp_path: Path, args: list[str], line: str):
    github_env = tmp_path / "github_env"
    github_env.write_text("")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**clean_env(), "GITHUB_ENV": str(github_env), "CLOUD_ACCESS_KEY_ID": "i", "CLOUD_ACCESS_KEY_SECRET": "s"},
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [line]
    assert github_env.read_text() == ""
