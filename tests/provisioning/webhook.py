"""A webhook receiver that keeps what it is sent: Alertmanager's posts (Slack's or DingTalk's shape,
answered as DingTalk answers) and a heartbeat service's pings (GET).

In a test it runs as a thread on 127.0.0.1 (``Receiver``). Run as a script it serves one address
inside a rehearsal's namespace, where a thread of the test cannot listen, and appends every request
to a file as a JSON line (``python3 webhook.py ADDRESS PORT RECORD``; it prints ``ready``)."""

from __future__ import annotations

import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Receiver:
    """Keeps the bodies posted, their query strings, and the paths pinged; with ``record``, each
    request is also a JSON line there ({"method", "path", "body"})."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0, record: Path | None = None) -> None:
        self.bodies: list[dict] = []
        self.queries: list[dict[str, list[str]]] = []
        self.pings: list[str] = []
        received, queries, pings, lock = self.bodies, self.queries, self.pings, threading.Lock()

        def keep(method: str, path: str, body: dict | None) -> None:
            if record is not None:
                with lock, record.open("a") as lines:
                    lines.write(json.dumps({"method": method, "path": path, "body": body}) + "\n")

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # a heartbeat service's ping
                pings.append(self.path)
                keep("GET", self.path, None)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                received.append(body)
                queries.append(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
                keep("POST", self.path, body)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"errcode": 0, "errmsg": "ok"}')  # DingTalk's answer; Slack reads the status

            def log_message(self, format: str, *args: object) -> None:
                """No access log."""

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.url = f"http://{address}:{self.server.server_address[1]}/hook"

    def serve_in_background(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def recorded(record: Path) -> list[dict]:
    """The requests a script-run receiver has kept, oldest first."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    address, port, path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    receiver = Receiver(address, port, path)
    print("ready", flush=True)
    receiver.server.serve_forever()
