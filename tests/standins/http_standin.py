"""A small asyncio HTTP/WebSocket server that stands in for one Dograh process in tests.

Roles:
- `api-worker`: like one of the api's uvicorn workers. GET /api/v1/health answers with the
  worker's index and port and the proxy headers it saw; a WebSocket upgrade under /api/v1/
  is accepted and held open until the client closes it; GET /api/v1/health/active-calls
  reports how many WebSockets this worker holds.
- `ui`, `minio`: answer any path with a JSON echo naming the role.

Standard library only, so it runs anywhere the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json

_WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Standin:
    def __init__(self, role: str, index: int, port: int):
        self.role, self.index, self.port = role, index, port
        self.open_websockets = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keepalive: nginx reuses upstream connections
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in header_lines if line)
                }
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                if headers.get("upgrade", "").lower() == "websocket" and self.role == "api-worker":
                    await self.hold_websocket(headers, reader, writer)
                    return
                body = json.dumps(self.answer(method, path, headers)).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def answer(self, method: str, path: str, headers: dict[str, str]) -> dict:
        if path.startswith("/api/v1/health/active-calls"):
            return {"active_calls": self.open_websockets, "worker": self.index}
        return {
            "role": self.role,
            "worker": self.index,
            "port": self.port,
            "method": method,
            "path": path,
            "forwarded_proto": headers.get("x-forwarded-proto"),
            "host": headers.get("host"),
        }

    async def hold_websocket(
        self,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        accept = base64.b64encode(
            hashlib.sha1((headers["sec-websocket-key"] + _WEBSOCKET_GUID).encode()).digest()
        ).decode()
        hello = json.dumps({"worker": self.index, "port": self.port}).encode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            # One unmasked text frame (server to client) naming the worker.
            + bytes([0x81, len(hello)])
            + hello
        )
        await writer.drain()
        self.open_websockets += 1
        try:
            while await reader.read(4096):
                pass  # frames from the client are ignored; EOF ends the call
        finally:
            self.open_websockets -= 1


async def serve(role: str, index: int, port: int) -> None:
    standin = Standin(role, index, port)
    server = await asyncio.start_server(standin.handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["api-worker", "ui", "minio"], required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.role, args.index, args.port))


if __name__ == "__main__":
    main()
