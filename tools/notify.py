#!/usr/bin/env python3
"""Post a deploy's outcome to a Slack or DingTalk incoming webhook (standard library only).

The webhook URL is a secret (its path or query holds the token), so it is read from the
environment variable PLATFORM_NOTIFY_WEBHOOK, never from argv, and never printed. Without it the
notification is skipped with one line. Exit status: 0 sent or skipped, 1 not delivered, 2 usage.

DingTalk answers HTTP 200 even when it refuses a message; its JSON body's nonzero ``errcode``
(a keyword or signature mismatch, a rate limit) is a failure here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, cast

ENV_URL = "PLATFORM_NOTIFY_WEBHOOK"
FORMATS = ("slack", "dingtalk")
PROG = "notify.py"


def title_of(status: str, stack: str | None) -> str:
    return f"platform deploy: {status}" + (f" ({stack})" if stack else "")


def payload(fmt: str, status: str, stack: str | None, summary: str | None, run_url: str | None) -> dict[str, Any]:
    """The JSON body the webhook expects, in Slack's or DingTalk's shape."""
    title = title_of(status, stack)
    if fmt == "slack":
        lines = [title, *([summary] if summary else []), *([run_url] if run_url else [])]
        return {"text": "\n".join(lines)}
    parts = [f"#### {title}", *([summary] if summary else []), *([f"[the run]({run_url})"] if run_url else [])]
    return {"msgtype": "markdown", "markdown": {"title": title, "text": "\n\n".join(parts)}}


def post(url: str, body: dict[str, Any], timeout: float) -> bytes:
    """POST the body as JSON; the answer's body, or HTTPError / URLError / TimeoutError."""
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) in main
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - as above
        return response.read()


def dingtalk_refusal(answer: bytes) -> str | None:
    """Why DingTalk refused the message (its errcode and errmsg), or None when it accepted it."""
    try:
        document: Any = json.loads(answer)
    except ValueError:
        return "an answer that is not JSON"
    if not isinstance(document, dict) or "errcode" not in document:
        return "an answer without errcode"
    fields = cast("dict[str, object]", document)
    if fields["errcode"] == 0:
        return None
    message = fields.get("errmsg")
    return f"errcode {fields['errcode']}" + (f" ({message})" if message else "")


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog=PROG,
        description=f"Post a deploy's outcome to the webhook in ${ENV_URL} (Slack or DingTalk format).",
    )
    result.add_argument("--format", required=True, help=f"the webhook's message format: {', '.join(FORMATS)}")
    result.add_argument("--status", required=True, help="the outcome, e.g. success, failure, cancelled")
    result.add_argument("--stack", help="the stack the message is about, if only one")
    result.add_argument("--summary", help="one or more lines of detail, e.g. each job's result")
    result.add_argument("--run-url", help="the workflow run's address")
    result.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the webhook (default 10)")
    return result


def fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    fmt = args.format.strip().lower()
    if fmt not in FORMATS:
        return fail(f"unknown --format {args.format!r}; valid formats: {', '.join(FORMATS)}", 2)
    url = os.environ.get(ENV_URL, "").strip()
    if not url:
        print(f"{PROG}: {ENV_URL} is not set; skipping the notification")
        return 0
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        return fail(f"{ENV_URL} is not an http(s) URL", 2)
    body = payload(fmt, args.status, args.stack, args.summary, args.run_url)
    try:
        answer = post(url, body, args.timeout)
    except urllib.error.HTTPError as error:  # before URLError: it is one
        detail = " ".join(error.read(200).decode(errors="replace").split())
        return fail(f"the webhook answered HTTP {error.code} {error.reason}" + (f": {detail}" if detail else ""), 1)
    except urllib.error.URLError as error:
        return fail(f"could not reach the webhook: {error.reason}", 1)
    except (TimeoutError, OSError) as error:
        return fail(f"could not reach the webhook: {str(error) or type(error).__name__}", 1)
    if fmt == "dingtalk" and (refusal := dingtalk_refusal(answer)) is not None:
        return fail(f"DingTalk refused the message: {refusal}", 1)
    print(f"{PROG}: sent the {fmt} notification ({args.status})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
