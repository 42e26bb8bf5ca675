"""Small HTTPS and WebSocket clients (standard library) for talking through nginx in tests."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import socket
import ssl
from typing import Any

# components.api.UVICORN_BASE_PORT: this module stays standard library only, because the
# nginx layer's probe (tests/realnginx/probe.py) imports it with nothing but tests/ on its path.
UVICORN_BASE_PORT = 8000

_INSECURE = ssl._create_unverified_context()  # the stacks under test use self-signed certificates


def https_get(
    port: int, path: str, host: str = "localhost", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """GET over TLS to 127.0.0.1:port; the body parsed as JSON when it is JSON."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=_INSECURE, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, {"text": body.decode(errors="replace")}


def http_get(port: int, path: str, host: str = "localhost") -> tuple[int, str, str]:
    """Plain-HTTP GET: status, Location header, body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.getheader("Location") or "", response.read().decode()
    finally:
        connection.close()


# The api stand-in's test-only endpoint (tests/engine/images/api): a WebSocket held open and
# counted as a live call, as a real call is while its workflow runs.
HELD_CALL_PATH = "/api/v1/standin-test/held-call"


class WebSocketCall:
    """A WebSocket opened through nginx, held like a live call; its first text frame is JSON
    naming the worker port that took it."""

    def __init__(self, port: int, path: str = HELD_CALL_PATH, host: str = "localhost"):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = _INSECURE.wrap_socket(raw, server_hostname=host)
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the WebSocket handshake")
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7F):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed before the first frame")
            rest += chunk
        self.hello: dict[str, Any] = json.loads(rest[2 : 2 + (rest[1] & 0x7F)])

    @property
    def worker(self) -> int:
        return int(self.hello["port"]) - UVICORN_BASE_PORT

    def _read_exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def still_open(self, wait_seconds: float = 0.2) -> bool:
        """True while the server has neither closed the connection nor sent a close frame.
        Answers the server's pings on the way, as a browser does."""
        try:
            while True:
                readable = self.sock.pending() > 0 or bool(
                    select.select([self.sock], [], [], wait_seconds)[0]
                )
                if not readable:
                    return True
                wait_seconds = 0
                self.sock.settimeout(10)
                first, second = self._read_exactly(2)
                length = second & 0x7F
                if length == 126:
                    length = int.from_bytes(self._read_exactly(2), "big")
                elif length == 127:
                    length = int.from_bytes(self._read_exactly(8), "big")
                payload = self._read_exactly(length) if length else b""
                opcode = first & 0x0F
                if opcode == 0x8:
                    return False
                if opcode == 0x9:  # ping: answer with a masked pong carrying the same payload
                    mask = os.urandom(4)
                    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
                    self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        # A masked close frame with an empty payload; the peer may already be gone.
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\x88\x80\x00\x00\x00\x00")
        self.sock.close()
