"""Test helpers for TLS towards receivers: HTTPS receivers on 127.0.0.1 with certificates made in
the test (trustme), and a listener that accepts TCP but never answers the TLS handshake."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme

from support import Received


class TlsReceiver:
    """A real HTTPS server on 127.0.0.1 with a certificate of ``ca`` for ``name``; with
    ``client_ca`` it requires a client certificate signed by that CA (mutual TLS). Records every
    request and the common name of the client certificate it came with."""

    def __init__(
        self, ca: trustme.CA, client_ca: trustme.CA | None = None, name: str = "127.0.0.1"
    ) -> None:
        self.requests: list[Received] = []
        self.client_subjects: list[str] = []
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(name).configure_cert(context)
        if client_ca is not None:
            client_ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                peer = (
                    self.connection.getpeercert()
                    if isinstance(self.connection, ssl.SSLSocket)
                    else None
                )
                subject = ""
                if peer:
                    names = [
                        str(attr[1])
                        for rdn in peer["subject"]
                        for attr in rdn
                        if attr[0] == "commonName"
                    ]
                    subject = ",".join(names)
                with receiver._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.requests.append(Received(self.path, headers, body, time.monotonic()))
                    receiver.client_subjects.append(subject)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                raw, address = self.socket.accept()
                # The handshake runs in the request's thread: a failed one harms no other.
                return context.wrap_socket(raw, server_side=True), address

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # refused handshakes are what several tests expect

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}{path}"

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentListener:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte: a TLS handshake with it
    never completes, so only the connect timeout ends an attempt."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port: int = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.socket.settimeout(0.1)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(connection)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        for connection in self.accepted:
            connection.close()
        self.socket.close()
