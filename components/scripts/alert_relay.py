#!/usr/bin/env python3
"""Relay Alertmanager's webhook to a DingTalk custom robot (standard library only, Python 3.9+).

Alertmanager posts its own JSON (webhook_configs) to ``POST /alert``; DingTalk only accepts its own
markdown message, optionally signed. The robot's URL (its query holds the access token) and the
signing secret are read from files (systemd credentials) at every delivery, so a rotated credential
takes effect without a restart; neither is ever taken from argv or the environment, nor logged.

Answers: 200 when DingTalk took the message (errcode 0); 502 when it did not or could not be
reached, so Alertmanager retries; 400 for a payload that is not Alertmanager's; 413 past 1 MiB.
Exit status: 0 on SIGTERM, 1 when the address cannot be bound, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import signal
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# typing, dataclasses and pathlib stay unimported at run time: about 2 MiB of the unit's 24 MiB limit.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

PROG = "alert_relay.py"
MAX_BODY = 1024 * 1024
MAX_DISCARD = 16 * MAX_BODY  # read past the limit only this far, so the client sees the 413 rather than a reset
MAX_LISTED = 20  # alerts listed one per line; a larger group is summarised, DingTalk caps a message's size
VALID_URL = "a readable file holding an https:// URL (http:// only for 127.0.0.1)"


class Config:
    """What a delivery needs: the credentials' files (read at each delivery), not the credentials."""

    def __init__(self, url_file: str, secret_file: str | None, timeout: float, tls: ssl.SSLContext) -> None:
        self.url_file, self.secret_file, self.timeout = url_file, secret_file, timeout
        self.tls = tls  # built once: loading the CA store at every delivery costs time and memory


class CredentialError(Exception):
    """A credential file that cannot be used; the message says why, never what the file holds."""


def one_line(value: object) -> str:
    return " ".join(str(value).split())


def strings(value: object) -> dict[str, str]:
    """Labels or annotations as strings; anything else as none."""
    return {str(k): one_line(v) for k, v in value.items()} if isinstance(value, dict) else {}


def render(payload: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager's webhook payload as a DingTalk markdown message."""
    alerts = [alert for alert in payload["alerts"] if isinstance(alert, dict)]
    status = one_line(payload.get("status") or "firing")
    names = sorted({strings(alert.get("labels")).get("alertname", "") for alert in alerts} - {""})
    name = strings(payload.get("groupLabels")).get("alertname") or ", ".join(names) or one_line(payload.get("receiver"))
    firing = sum(1 for alert in alerts if alert.get("status") == "firing")
    # Alertmanager's own titles count the firing alerts only, e.g. "[FIRING:2] HostMemoryLow", "[RESOLVED] ...".
    title = f"[FIRING:{firing}] {name}" if status == "firing" else f"[{status.upper()}] {name}"
    lines = []
    for alert in alerts[:MAX_LISTED]:
        labels, annotations = strings(alert.get("labels")), strings(alert.get("annotations"))
        summary = annotations.get("summary") or annotations.get("description") or ""
        lines.append(
            f"- **{one_line(alert.get('status', status)).upper()}** {labels.get('alertname', name)}"
            f" on {labels.get('instance', '-')}: {summary} (since {one_line(alert.get('startsAt', '?'))})"
        )
    if len(alerts) > MAX_LISTED:
        lines.append(f"- … and {len(alerts) - MAX_LISTED} more")
    parts = [f"#### {title}", "\n".join(lines)]
    if payload.get("externalURL"):
        parts.append(f"[Alertmanager]({one_line(payload['externalURL'])})")
    return {"msgtype": "markdown", "markdown": {"title": title, "text": "\n\n".join(parts)}}


def signed_url(url: str, secret: str, now_ms: int) -> str:
    """The robot's URL with DingTalk's signature: base64(HMAC-SHA256(secret, "<ms>\\n<secret>"))."""
    digest = hmac.new(secret.encode(), f"{now_ms}\n{secret}".encode(), hashlib.sha256).digest()
    separator = "&" if urllib.parse.urlsplit(url).query else "?"
    return f"{url}{separator}timestamp={now_ms}&sign={urllib.parse.quote_plus(base64.b64encode(digest))}"


def read_credential(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, ValueError) as error:
        raise CredentialError(f"cannot be read ({type(error).__name__})") from None
    return text[:-1] if text.endswith("\n") else text


def read_url(path: str) -> str:
    url = read_credential(path)
    try:
        parts = urllib.parse.urlsplit(url)
        usable = (parts.scheme == "https" and bool(parts.hostname)) or (
            parts.scheme == "http" and parts.hostname == "127.0.0.1"
        )
    except ValueError:
        usable = False
    if not usable or any(c.isspace() for c in url):
        raise CredentialError("does not hold an https:// URL")
    return url


def read_secret(path: str) -> str:
    """The signing secret; empty when the robot does not sign (its security is a keyword or an
    address allowlist)."""
    return read_credential(path)


def refusal(answer: bytes) -> str | None:
    """Why DingTalk refused the message, or None when its errcode is 0."""
    try:
        document = json.loads(answer)
    except ValueError:
        return "an answer that is not JSON"
    if not isinstance(document, dict) or "errcode" not in document:
        return "an answer without errcode"
    if document["errcode"] == 0:
        return None
    return f"errcode {one_line(document['errcode'])} ({one_line(document.get('errmsg', ''))[:200]})"


def deliver(config: Config, message: dict[str, Any]) -> str | None:
    """Post the message to DingTalk; None when it took it, else why not (without the URL or secret)."""
    try:
        url = read_url(config.url_file)
    except CredentialError as error:
        return f"the URL file {config.url_file} {error}"
    if config.secret_file is not None:
        try:
            secret = read_secret(config.secret_file)
        except CredentialError as error:
            return f"the secret file {config.secret_file} {error}"
        if secret:
            url = signed_url(url, secret, int(time.time() * 1000))
    request = urllib.request.Request(  # noqa: S310 - read_url admits https, and http to 127.0.0.1 only
        url,
        data=json.dumps(message, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=config.timeout, context=config.tls) as response:  # noqa: S310
            answer = response.read(64 * 1024)
    except urllib.error.HTTPError as error:  # before URLError: it is one
        return f"DingTalk answered HTTP {error.code}"
    except urllib.error.URLError as error:
        return f"could not reach DingTalk: {one_line(error.reason)}"
    except (OSError, http.client.HTTPException) as error:
        return f"could not reach DingTalk: {type(error).__name__}"
    except ValueError:  # http.client's own URL checks; their messages quote the URL
        return "the URL was refused by urllib"
    why = refusal(answer)
    return None if why is None else f"DingTalk refused it: {why}"


def log(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def args_error(message: str) -> NoReturn:
    log(message)
    sys.exit(2)


class Handler(BaseHTTPRequestHandler):
    server_version = "alert_relay"
    timeout = 30  # a client that stops sending does not hold a thread for ever

    def __init__(self, *args: Any, config: Config, **kwargs: Any) -> None:
        self.config = config  # before super().__init__, which handles the request
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        if self.path == "/-/healthy":
            self.answer(200, "ok")
        else:
            self.answer(404, "not found")

    def do_POST(self) -> None:
        if self.path != "/alert":
            self.answer(404, "not found")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if length < 0:
            self.reject(411, "a body without a valid Content-Length")
            return
        if length > MAX_BODY:
            self.discard(length)
            self.reject(413, f"a body of {length} bytes (the limit is {MAX_BODY})")
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except OSError:
            self.close_connection = True
            return
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            self.reject(400, "a body that is not JSON")
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            self.reject(400, "a payload without alerts")
            return
        message = render(payload)
        why = deliver(self.config, message)
        title, count = message["markdown"]["title"], len(payload["alerts"])
        if why is None:
            log(f"delivered {title} ({count} alerts)")
            self.answer(200, "delivered")
        else:
            log(f"not delivered {title} ({count} alerts): {why}")
            self.answer(502, "not delivered")

    def discard(self, length: int) -> None:
        left = min(length, MAX_DISCARD)
        with contextlib.suppress(OSError):
            while left > 0 and (chunk := self.rfile.read(min(left, 64 * 1024))):
                left -= len(chunk)
        self.close_connection = True

    def reject(self, status: int, what: str) -> None:
        log(f"rejected {what}: HTTP {status}")
        self.answer(status, what)

    def answer(self, status: int, text: str) -> None:
        body = f"{text}\n".encode()
        with contextlib.suppress(OSError):  # the client may have given up already
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per delivery is logged by do_POST; the access log would add nothing


class Relay(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, config: Config) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), lambda *args: Handler(*args, config=config))


def parse_listen(value: str) -> tuple[str, int]:
    """A loopback address and port, from "127.0.0.1:9099" or "[::1]:9099"."""
    host, _, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(value)
    return host, int(port)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: {message}; see --help\n")


def parser() -> Parser:
    result = Parser(prog=PROG, description="Relay Alertmanager's webhook (POST /alert) to a DingTalk robot.")
    result.add_argument("--listen", required=True, help="loopback address and port, e.g. 127.0.0.1:9099")
    result.add_argument("--url-file", required=True, help="file holding the robot's URL with its token")
    result.add_argument("--secret-file", help="file holding the robot's signing secret, if it signs")
    result.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for DingTalk (default 10)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
    except ValueError:
        args_error(f"--listen {args.listen!r} is not a loopback host:port; valid: 127.0.0.1:<1-65535> or [::1]:<port>")
    if not 0 < args.timeout <= 300:
        args_error(f"--timeout {args.timeout} is out of range; valid: more than 0, at most 300 seconds")
    try:
        read_url(args.url_file)
    except CredentialError as error:
        args_error(f"--url-file {args.url_file}: {error}; valid: {VALID_URL}")
    try:
        if args.secret_file is not None:
            read_secret(args.secret_file)
    except CredentialError as error:
        args_error(
            f"--secret-file {args.secret_file}: {error}; valid: a readable file (empty: the robot does not sign)"
        )
    config = Config(args.url_file, args.secret_file, args.timeout, ssl.create_default_context())
    try:
        server = Relay(host, port, config)
    except OSError as error:
        log(f"cannot listen on {args.listen}: {error.strerror or error}")
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(f"listening on {args.listen}")
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
