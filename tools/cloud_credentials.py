#!/usr/bin/env python3
"""Hand one cloud's credentials to the next steps of a GitHub Actions job, for the Pulumi provider.

Each job that runs Pulumi runs in one GitHub environment (``alibaba``, ``preview-tencent``, ...),
and each environment holds one cloud's credentials under the same names:

- OIDC (preferred): the variables ``CLOUD_ROLE_ARN`` and ``CLOUD_OIDC_PROVIDER`` (Alibaba: the RAM
  OIDC provider's ARN; Tencent: the CAM identity provider's name). The job's GitHub OIDC token
  is exchanged at the cloud's STS for temporary keys (Alibaba ``AssumeRoleWithOIDC``, Tencent
  ``AssumeRoleWithWebIdentity``: both take no signature), valid ``--duration`` seconds.
- Static keys (the fallback): the secrets ``CLOUD_ACCESS_KEY_ID`` and ``CLOUD_ACCESS_KEY_SECRET``.

The keys go to ``$GITHUB_ENV`` under the names the provider reads (pulumi-alicloud:
``ALICLOUD_ACCESS_KEY``, ``ALICLOUD_SECRET_KEY``, ``ALICLOUD_SECURITY_TOKEN``; the Tencent provider:
``TENCENTCLOUD_SECRET_ID``, ``TENCENTCLOUD_SECRET_KEY``, ``TENCENTCLOUD_SECURITY_TOKEN``), each
temporary value masked in the log first. Nothing secret is printed or put on a command line.
Exit status: 0 handed over, 1 the exchange failed, 2 the environment is not set up (one line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

PROG = "cloud_credentials.py"
CLOUDS = ("alibaba", "tencent")
# The provider's environment variables: key id, key secret, security token.
PROVIDER_ENV = {
    "alibaba": ("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY", "ALICLOUD_SECURITY_TOKEN"),
    "tencent": ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SECURITY_TOKEN"),
}
STS_ENDPOINTS = {"alibaba": "https://sts.aliyuncs.com", "tencent": "https://sts.tencentcloudapi.com"}
# The audience each cloud's identity provider is registered with for GitHub's tokens (the
# variable CLOUD_OIDC_AUDIENCE overrides it). Alibaba's is the one its documentation uses; Tencent's
# is chosen here: it must equal the client ID of the CAM identity provider.
AUDIENCES = {"alibaba": "sts.aliyuncs.com", "tencent": "sts.tencentcloudapi.com"}
TENCENT_STS_REGION = "ap-guangzhou"  # STS is global; the API still names a region
TIMEOUT_S = 20.0


class RefusedError(Exception):
    """One line saying why no credentials were handed over, and the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def github_token(env: Mapping[str, str], audience: str) -> str:
    """The job's OIDC token from GitHub's token service (the job needs ``id-token: write``)."""
    url, bearer = env.get("ACTIONS_ID_TOKEN_REQUEST_URL"), env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not bearer:
        raise RefusedError(
            "CLOUD_ROLE_ARN is set but this job cannot request a GitHub OIDC token: give the job "
            "`permissions: id-token: write`",
            2,
        )
    request = urllib.request.Request(  # noqa: S310 - GitHub's own token service, from the runner
        f"{url}&audience={urllib.parse.quote(audience, safe='')}",
        headers={"Authorization": f"Bearer {bearer}", "Accept": "application/json"},
    )
    value = _json(request, "GitHub's OIDC token service").get("value")
    if not isinstance(value, str) or not value:
        raise RefusedError("GitHub's OIDC token service answered without a token")
    return value


def alibaba_keys(endpoint: str, role: str, provider: str, token: str, session: str, duration: int) -> tuple[str, ...]:
    """STS AssumeRoleWithOIDC: an RPC call with its parameters in the form body."""
    query = urllib.parse.urlencode(
        {
            "Action": "AssumeRoleWithOIDC",
            "Version": "2015-04-01",
            "Format": "JSON",
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    form = {
        "RoleArn": role,
        "OIDCProviderArn": provider,
        "OIDCToken": token,
        "RoleSessionName": session,
        "DurationSeconds": str(duration),
    }
    request = urllib.request.Request(  # noqa: S310 - the endpoint is https unless a test passes loopback
        f"{endpoint}/?{query}",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    answer = _json(request, "Alibaba Cloud STS")
    credentials = answer.get("Credentials")
    if not isinstance(credentials, dict):
        raise RefusedError(f"Alibaba Cloud STS refused the OIDC token: {_alibaba_error(answer)}")
    return _fields(credentials, ("AccessKeyId", "AccessKeySecret", "SecurityToken"), "Alibaba Cloud STS")


def tencent_keys(endpoint: str, role: str, provider: str, token: str, session: str, duration: int) -> tuple[str, ...]:
    """STS AssumeRoleWithWebIdentity: API 3.0 with ``Authorization: SKIP`` (no signature)."""
    body = {
        "ProviderId": provider,
        "WebIdentityToken": token,
        "RoleArn": role,
        "RoleSessionName": session,
        "DurationSeconds": duration,
    }
    request = urllib.request.Request(  # noqa: S310 - the endpoint is https unless a test passes loopback
        f"{endpoint}/",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "SKIP",
            "X-TC-Action": "AssumeRoleWithWebIdentity",
            "X-TC-Version": "2018-08-13",
            "X-TC-Region": TENCENT_STS_REGION,
            "X-TC-Timestamp": str(int(time.time())),
        },
        method="POST",
    )
    response = _json(request, "Tencent Cloud STS").get("Response")
    response = response if isinstance(response, dict) else {}
    error = response.get("Error")
    if isinstance(error, dict):
        raise RefusedError(
            f"Tencent Cloud STS refused the OIDC token: {error.get('Code')}: {_one_line(error.get('Message'))}"
        )
    credentials = response.get("Credentials")
    if not isinstance(credentials, dict):
        raise RefusedError("Tencent Cloud STS answered without Credentials")
    return _fields(credentials, ("TmpSecretId", "TmpSecretKey", "Token"), "Tencent Cloud STS")


def _json(request: urllib.request.Request, who: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - as above
            raw = response.read()
    except urllib.error.HTTPError as error:  # Alibaba's STS answers a refusal with a 4xx and JSON
        raw = error.read(4096)
        try:
            document = json.loads(raw)
        except ValueError:
            raise RefusedError(f"{who} answered HTTP {error.code} {error.reason}") from None
        raise RefusedError(f"{who} answered HTTP {error.code}: {_alibaba_error(document)}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", None) or str(error) or type(error).__name__
        raise RefusedError(f"could not reach {who}: {reason}") from None
    try:
        document = json.loads(raw)
    except ValueError:
        raise RefusedError(f"{who} answered with something that is not JSON") from None
    if not isinstance(document, dict):
        raise RefusedError(f"{who} answered with something that is not a JSON object")
    return document


def _alibaba_error(answer: Mapping[str, Any]) -> str:
    return f"{answer.get('Code', 'no error code')}: {_one_line(answer.get('Message'))}"


def _one_line(text: object) -> str:
    return " ".join(str(text or "").split())[:300]


def _fields(credentials: Mapping[str, Any], names: tuple[str, ...], who: str) -> tuple[str, ...]:
    values = tuple(credentials.get(name) for name in names)
    if not all(isinstance(value, str) and value for value in values):
        raise RefusedError(f"{who} answered without {', '.join(names)}")
    return tuple(str(value) for value in values)


def hand_over(env_file: str, names: Sequence[str], values: Sequence[str], mask: bool) -> None:
    """Mask each value in the log (temporary keys are no repository secret, so GitHub does not
    know them), then append ``NAME=value`` lines to $GITHUB_ENV."""
    for value in values:
        if "\n" in value or "\r" in value:  # a line break would add variables of its own choosing
            raise RefusedError("a credential holds a line break; refusing to write it to $GITHUB_ENV", 2)
    if mask:
        for value in values:
            print(f"::add-mask::{value}", flush=True)
    with open(env_file, "a", encoding="utf-8") as handle:
        handle.writelines(f"{name}={value}\n" for name, value in zip(names, values, strict=True))


def credentials(cloud: str, env: Mapping[str, str], endpoint: str, duration: int) -> str:
    """Hand the keys over; what was handed over, in one line."""
    env_file = env.get("GITHUB_ENV")
    if not env_file:
        raise RefusedError("GITHUB_ENV is not set: this runs as a step of a GitHub Actions job", 2)
    role, provider = env.get("CLOUD_ROLE_ARN", "").strip(), env.get("CLOUD_OIDC_PROVIDER", "").strip()
    if role:
        if not provider:
            raise RefusedError(
                "CLOUD_ROLE_ARN is set but CLOUD_OIDC_PROVIDER is not: set the environment's variable to "
                + ("the RAM OIDC provider's ARN" if cloud == "alibaba" else "the CAM identity provider's name"),
                2,
            )
        audience = env.get("CLOUD_OIDC_AUDIENCE", "").strip() or AUDIENCES[cloud]
        token = github_token(env, audience)
        session = f"github-{env.get('GITHUB_RUN_ID', 'run')}-{env.get('GITHUB_RUN_ATTEMPT', '1')}"
        exchange = alibaba_keys if cloud == "alibaba" else tencent_keys
        keys = exchange(endpoint, role, provider, token, session, duration)
        hand_over(env_file, PROVIDER_ENV[cloud], keys, mask=True)
        return f"{cloud}: temporary keys for {role} through OIDC, valid {duration} s"
    key_id, key_secret = env.get("CLOUD_ACCESS_KEY_ID", "").strip(), env.get("CLOUD_ACCESS_KEY_SECRET", "").strip()
    if not key_id or not key_secret:
        raise RefusedError(
            "this job's environment has no cloud credentials: set its variables CLOUD_ROLE_ARN and "
            "CLOUD_OIDC_PROVIDER (OIDC), or its secrets CLOUD_ACCESS_KEY_ID and CLOUD_ACCESS_KEY_SECRET "
            "(README: 'Secrets and variables')",
            2,
        )
    # Repository secrets are masked by GitHub already.
    hand_over(env_file, PROVIDER_ENV[cloud][:2], (key_id, key_secret), mask=False)
    return f"{cloud}: the environment's static keys (set CLOUD_ROLE_ARN to use OIDC instead)"


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0] if __doc__ else None)
    result.add_argument("cloud", help=f"the cloud of the job's stack: {', '.join(CLOUDS)}")
    result.add_argument("--sts-endpoint", help="the cloud's STS address (default: its public one)")
    result.add_argument(
        "--duration", type=int, default=3600, help="seconds the temporary keys last (900-43200; default 3600)"
    )
    return result


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    env = os.environ if env is None else env
    try:
        if args.cloud not in CLOUDS:
            raise RefusedError(f"unknown cloud {args.cloud!r}; valid clouds: {', '.join(CLOUDS)}", 2)
        if not 900 <= args.duration <= 43200:
            raise RefusedError(f"--duration {args.duration}: the clouds' STS take 900 to 43200 seconds", 2)
        endpoint = (args.sts_endpoint or STS_ENDPOINTS[args.cloud]).rstrip("/")
        where = urllib.parse.urlsplit(endpoint)
        if where.scheme != "https" and where.hostname != "127.0.0.1":  # the token must not travel in clear
            raise RefusedError(f"--sts-endpoint {endpoint!r}: not an https address", 2)
        print(f"{PROG}: {credentials(args.cloud, env, endpoint, args.duration)}")
    except RefusedError as refused:
        print(f"{PROG}: {refused}", file=sys.stderr)
        return refused.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
