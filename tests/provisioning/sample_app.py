"""The sample native service of the provisioning tests, shipped inside each release tarball.

Beside it in the release: ``VERSION`` and ``behaviour``, which decides how it starts and how
``GET /health`` answers: ``healthy``, ``unhealthy`` (503), ``crash`` (exits on start),
``slow:<seconds>`` (healthy, after listening late) or ``unhealthy-while:<path>`` (503 while that
file exists: a fault a test switches on and off). It listens on 127.0.0.1:$PORT only.
"""

from __future__ import annotations

import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    version = (HERE / "VERSION").read_text().strip()
    behaviour = (HERE / "behaviour").read_text().strip()
    if behaviour == "crash":
        print(f"sample {version}: configuration error, exiting on start", file=sys.stderr)
        sys.exit(3)
    if behaviour.startswith("slow:"):
        time.sleep(float(behaviour.removeprefix("slow:")))
    fault = Path(behaviour.removeprefix("unhealthy-while:")) if behaviour.startswith("unhealthy-while:") else None

    def healthy() -> bool:
        return behaviour != "unhealthy" and not (fault and fault.exists())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                status, body = (200, f"ok {version}") if healthy() else (503, f"{version}: database unreachable")
            elif self.path == "/version":
                status, body = 200, version
            else:
                status, body = 404, "not found"
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            """No access log: the journal keeps only start-up messages."""

    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    print(f"sample {version}: listening on 127.0.0.1:{os.environ['PORT']}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
