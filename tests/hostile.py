"""Hostile receivers for tests: a raw TCP server on 127.0.0.1 answering each path with exact bytes.

``http.server`` cannot send a malformed answer; this one writes whatever bytes a case needs
(a garbage status line, endless headers, a body cut off) and counts every connection it gets.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

#: One answer: the bytes to write, then whether to hold the connection open (drip) until closed.
Answer = Callable[[socket.socket, threading.Event], None]


def send_bytes(data: bytes) -> Answer:
    """Write ``data`` and close."""

    def answer(sock: socket.socket, stopping: threading.Event) -> None:
        sock.sendall(data)

    return answer


def drip(first: bytes, piece: bytes, every_s: float) -> Answer:
    """Write ``first``, then ``piece`` every ``every_s`` until the client hangs up or we stop."""

    def answer(sock: socket.socket, stopping: threading.Event) -> None:
        sock.sendall(first)
        while not stopping.wait(every_s):
            sock.sendall(piece)

    return answer


#: Every malformed answer the sender must survive, by name.
MALFORMED: dict[str, bytes] = {
    "garbage-status": b"GARBAGE NONSENSE\r\n\r\n",
    "long-header-line": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 65_536 + b"\r\n\r\n",
    "many-header-lines": b"HTTP/1.1 200 OK\r\n"
    + b"".join(b"X-H%d: v\r\n" % n for n in range(300))
    + b"Content-Length: 0\r\n\r\n",
    "http-0.9": b"hello from the nineties\n",
    "header-without-colon": b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n",
    "negative-length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
}


#: Spellings of blocked addresses that registration once accepted, with the reason given.
DISGUISED = {
    "127.1": "loopback",
    "2130706433": "loopback",
    "0x7f000001": "loopback",
    "0177.0.0.1": "loopback",
    "127.000.000.001": "loopback",
    "127.0.0.1.": "loopback",
    "0": "unspecified",
    "localhost.": "loopback",
    "LOCALHOST": "loopback",
    "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54": "loopback",
    "127\u30020\u30020\u30021": "loopback",
    "%6c%6fcalhost": "loopback",
    "%31%32%37.0.0.1": "loopback",
    "167772161": "private",
    "0x0a000001": "private",
    "2852039166": "cloud metadata",
    "0xa9fea9fe": "cloud metadata",
    "[2002:a00:1::]": "6to4-embedded private",
    "[64:ff9b::a00:1]": "NAT64-embedded private",
    "[fec0::1]": "site-local",
}


@dataclass
class HostileReceiver:
    """A TCP server on 127.0.0.1: reads a request's head and body, then plays its path's answer."""

    answers: dict[str, Answer] = field(default_factory=dict)
    connections: int = 0
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        hostile = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                with hostile._lock:
                    hostile.connections += 1
                sock.settimeout(30)
                try:
                    path = _read_request(sock)
                    if path is None:
                        return
                    with hostile._lock:
                        hostile.requests.append(path)
                    answer = hostile.answers.get(path, send_bytes(MALFORMED["garbage-status"]))
                    answer(sock, hostile._stopping)
                except OSError:
                    return

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str, answer: Answer | None = None) -> str:
        if answer is not None:
            self.answers[path] = answer
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> int:
        """How many requests reached ``path``."""
        with self._lock:
            return sum(1 for seen in self.requests if seen == path)

    def close(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()


def _read_request(sock: socket.socket) -> str | None:
    """Read one request's head and its Content-Length body; its path, or None if it hung up."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65_536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65_536)
        if not chunk:
            return None
        body += chunk
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    return parts[1].split("?")[0] if len(parts) > 1 else ""
