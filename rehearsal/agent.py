"""What runs inside a namespace (standard library only, started with ``ip netns exec``).

``listen PORT...``: accept TCP connections on every address of the namespace on each port, and close
them; prints ``ready`` once every port is bound, and stops when its stdin closes.
``probe``: reads ``[[source, destination, port], ...]`` (JSON) on stdin, tries each TCP connection
from that source address, and prints whether each was accepted (JSON), all within a bounded time.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

CONNECT_TIMEOUT_S = 1.0  # a dropped SYN is retried after 1 s: an open port answers well within it


def listen(ports: list[int]) -> int:
    selector = selectors.DefaultSelector()
    for port in ports:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", port))  # noqa: S104 - inside the rehearsal's own namespace
        server.listen(64)
        server.setblocking(False)
        selector.register(server, selectors.EVENT_READ)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.2):
            server = key.fileobj
            assert isinstance(server, socket.socket)
            try:
                connection, _ = server.accept()
            except BlockingIOError:
                continue
            connection.close()
    return 0


def reaches(source: str, destination: str, port: int) -> bool:
    try:
        with socket.create_connection((destination, port), timeout=CONNECT_TIMEOUT_S, source_address=(source, 0)):
            return True
    except OSError:  # dropped (timeout), refused, or refused locally by the output chain (EPERM)
        return False


def probe() -> int:
    attempts = json.load(sys.stdin)
    with ThreadPoolExecutor(max_workers=64) as pool:
        seen = list(pool.map(lambda attempt: reaches(*attempt), attempts))
    json.dump(seen, sys.stdout)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["listen"]:
        return listen([int(port) for port in argv[1:]])
    if argv == ["probe"]:
        return probe()
    print("usage: agent.py listen PORT... | agent.py probe", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
