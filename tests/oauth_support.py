"""Test helper for OAuth2 client credentials: one real HTTPS server on 127.0.0.1 (a certificate
of a test CA) that is both a token endpoint (``/token``, counting its requests) and a receiver
(``/hook``) that accepts only the tokens it handed out and has not revoked."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

import trustme

from support import Received


class OAuthServer:
    """Token endpoint and receiver; ``token_status`` other than 200 makes the endpoint fail."""

    def __init__(
        self,
        ca: trustme.CA,
        client_id: str = "hookstream",
        client_secret: str = "s3cret/with:odd chars",  # noqa: S107 - a test credential
        expires_in: int = 3600,
        token_delay_s: float = 0.2,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        #: How long the token endpoint takes to answer, so concurrent deliveries overlap it.
        self.token_delay_s = token_delay_s
        self.token_status = 200
        self.token_requests: list[dict[str, list[str]]] = []
        self.hooks: list[Received] = []
        self.valid: set[str] = set()
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/token":
                    status, answer = server._token(self.headers.get("Authorization", ""), body)
                else:
                    status, answer = server._hook(self.path, dict(self.headers.items()), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                raw, address = self.socket.accept()
                return context.wrap_socket(raw, server_side=True), address

            def handle_error(self, request: Any, client_address: Any) -> None:
                return

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _token(self, authorization: str, body: bytes) -> tuple[int, dict[str, Any]]:
        form = parse_qs(body.decode())
        time.sleep(self.token_delay_s)  # the endpoint's own latency, not a wait in a test
        with self._lock:
            self.token_requests.append(form)
            if self.token_status != 200:
                return self.token_status, {"error": "temporarily_unavailable"}
            scheme, _, encoded = authorization.partition(" ")
            user, _, password = base64.b64decode(encoded or "Og==").decode().partition(":")
            if (
                scheme != "Basic"
                or (unquote(user), unquote(password)) != (self.client_id, self.client_secret)
                or form.get("grant_type") != ["client_credentials"]
            ):
                return 401, {"error": "invalid_client"}
            token = f"tok-{len(self.token_requests)}"
            self.valid.add(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}

    def _hook(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        lowered = {name.lower(): value for name, value in headers.items()}
        with self._lock:
            self.hooks.append(Received(path, lowered, body, time.monotonic()))
            scheme, _, token = lowered.get("authorization", "").partition(" ")
            if scheme != "Bearer" or token not in self.valid:
                return 401, {"error": "invalid_token"}
        return 200, {"ok": True}

    def revoke(self) -> None:
        """Refuse every token handed out so far (the receiver then answers 401)."""
        with self._lock:
            self.valid.clear()

    def fetches(self) -> int:
        with self._lock:
            return len(self.token_requests)

    def tokens_seen(self) -> list[str]:
        """The bearer token of every request to the receiver, in order."""
        with self._lock:
            return [r.headers.get("authorization", "").partition(" ")[2] for r in self.hooks]

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
