"""What runs inside a namespace (standard library only, started with ``ip netns exec``).

``listen tcp:PORT udp:PORT ...``: on every address of the namespace, accept TCP connections, write
the port's number on them and close them, and echo UDP datagrams; prints ``ready`` once every port
is bound, and stops when its stdin closes.
``probe``: reads ``[[source, destination, port, protocol], ...]`` (JSON) on stdin, tries each from
that source address (a TCP connection; a UDP datagram that must come back), and prints whether each
got through (JSON), all within a bounded time.
``fetch``: reads ``[[address, port], ...]`` (JSON) on stdin and prints what each TCP connection
was sent before it closed (null when nothing: a connection accepted by an SSH forward whose channel
the server refused reads nothing).
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

CONNECT_TIMEOUT_S = 1.0  # a dropped SYN is retried after 1 s: an open port answers well within it
FETCH_TIMEOUT_S = 5.0  # through an SSH forward: the channel opens on the far side first


def listen(endpoints: list[tuple[str, int]]) -> int:
    selector = selectors.DefaultSelector()
    for protocol, port in endpoints:
        kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
        server = socket.socket(socket.AF_INET, kind)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", port))  # noqa: S104 - inside the rehearsal's own namespace
        if protocol == "tcp":
            server.listen(64)
        server.setblocking(False)
        selector.register(server, selectors.EVENT_READ, protocol)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    while not stop.is_set():
        for key, _ in selector.select(timeout=0.2):
            server = key.fileobj
            assert isinstance(server, socket.socket)
            try:
                if key.data == "tcp":
                    connection, _ = server.accept()
                    with connection:
                        connection.sendall(f"{server.getsockname()[1]}\n".encode())
                else:
                    datagram, sender = server.recvfrom(512)
                    server.sendto(datagram, sender)
            except (BlockingIOError, OSError):
                continue
    return 0


def reaches(source: str, destination: str, port: int, protocol: str = "tcp") -> bool:
    if protocol == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(CONNECT_TIMEOUT_S)
            try:
                client.bind((source, 0))
                client.sendto(b"rehearsal", (destination, port))
                return client.recvfrom(512)[0] == b"rehearsal"
            except OSError:  # no answer (dropped either way), or refused locally by the output chain
                return False
    try:
        with socket.create_connection((destination, port), timeout=CONNECT_TIMEOUT_S, source_address=(source, 0)):
            return True
    except OSError:  # dropped (timeout), refused, or refused locally by the output chain (EPERM)
        return False


def fetched(address: str, port: int) -> str | None:
    try:
        with socket.create_connection((address, port), timeout=FETCH_TIMEOUT_S) as connection:
            data = connection.recv(64)
    except OSError:
        return None
    return data.decode(errors="replace").strip() or None


def fetch() -> int:
    attempts = json.load(sys.stdin)
    with ThreadPoolExecutor(max_workers=16) as pool:
        json.dump(list(pool.map(lambda attempt: fetched(*attempt), attempts)), sys.stdout)
    return 0


def probe() -> int:
    attempts = json.load(sys.stdin)
    with ThreadPoolExecutor(max_workers=64) as pool:
        seen = list(pool.map(lambda attempt: reaches(*attempt), attempts))
    json.dump(seen, sys.stdout)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["listen"]:
        return listen([(protocol, int(port)) for protocol, _, port in (word.partition(":") for word in argv[1:])])
    if argv == ["probe"]:
        return probe()
    if argv == ["fetch"]:
        return fetch()
    print("usage: agent.py listen tcp:PORT udp:PORT ... | agent.py probe | agent.py fetch", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
