"""Check and serve a generated nginx.conf with Debian's nginx, inside private namespaces.

Run as `unshare --mount --net python probe.py <nginx.conf> <workers> <syntax|serve>`:
the private network namespace gives nginx its real ports (80, 443) and the workers theirs
(8000+i) without touching the machine's; the private mount namespace maps the container
host names (api, ui, minio) to loopback through a bind-mounted /etc/hosts. Prints one JSON
object with what it saw; the pytest side asserts on it.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STANDIN = Path(__file__).resolve().parent.parent / "standins" / "http_standin.py"


def isolate_names_and_network() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    hosts = Path(tempfile.mkdtemp()) / "hosts"
    hosts.write_text("127.0.0.1 localhost api ui minio\n")
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)  # nginx's pid file


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def https(path: str, host: str = "localhost") -> tuple[int, dict]:
    context = ssl._create_unverified_context()
    connection = http.client.HTTPSConnection("127.0.0.1", 443, context=context, timeout=5)
    connection.request("GET", path, headers={"Host": host})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, {"text": body.decode(errors="replace")}


def plain_http(path: str) -> tuple[int, str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", 80, timeout=5)
    connection.request("GET", path, headers={"Host": "localhost"})
    response = connection.getresponse()
    body = response.read().decode(errors="replace")
    return response.status, response.getheader("Location") or "", body


def open_websocket() -> tuple[ssl.SSLSocket, int]:
    context = ssl._create_unverified_context()
    raw = socket.create_connection(("127.0.0.1", 443), timeout=5)
    sock = context.wrap_socket(raw, server_hostname="localhost")
    sock.sendall(
        b"GET /api/v1/ws/call HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, rest = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    while len(rest) < 2 or len(rest) < 2 + rest[1]:
        rest += sock.recv(4096)
    hello = json.loads(rest[2 : 2 + rest[1]])
    return sock, (status, hello["worker"])


def serve(config: str, workers: int, acme_dir: str) -> dict:
    processes = []
    try:
        for index in range(workers):
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(STANDIN),
                        "--role",
                        "api-worker",
                        "--index",
                        str(index),
                        "--port",
                        str(8000 + index),
                    ]
                )
            )
        processes.append(
            subprocess.Popen([sys.executable, str(STANDIN), "--role", "ui", "--port", "3010"])
        )
        processes.append(
            subprocess.Popen([sys.executable, str(STANDIN), "--role", "minio", "--port", "9000"])
        )
        for port in [*range(8000, 8000 + workers), 3010, 9000]:
            wait_for_port(port)
        nginx = subprocess.Popen(
            ["nginx", "-c", config, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        processes.append(nginx)
        wait_for_port(443)
        Path(acme_dir, ".well-known", "acme-challenge").mkdir(parents=True)
        Path(acme_dir, ".well-known", "acme-challenge", "token123").write_text("token123.proof")
        seen = {}
        health = [https("/api/v1/health")[1] for _ in range(workers * 3)]
        seen["health_workers"] = sorted({answer["worker"] for answer in health})
        seen["forwarded_proto"] = sorted({answer["forwarded_proto"] for answer in health})
        seen["ui"] = https("/")[1].get("role")
        seen["voice_audio"] = https("/voice-audio/call-1.wav")[1].get("path")
        seen["acme"] = plain_http("/.well-known/acme-challenge/token123")[::2]
        seen["redirect"] = plain_http("/calls?id=7")[:2]
        sockets = [open_websocket() for _ in range(2 * workers)]
        seen["websocket_status"] = sorted({status for _, (status, _) in sockets})
        per_worker = {}
        for _, (_, worker) in sockets:
            per_worker[worker] = per_worker.get(worker, 0) + 1
        seen["websockets_per_worker"] = [per_worker.get(i, 0) for i in range(workers)]
        if workers > 1:
            # Calls on worker 0 end; the next calls must go to it, the least loaded worker.
            for sock, (_, worker) in sockets:
                if worker == 0:
                    sock.close()
            sockets = [entry for entry in sockets if entry[1][1] != 0]
            time.sleep(0.3)
            refill = [open_websocket() for _ in range(2)]
            seen["refill_workers"] = sorted(worker for _, (_, worker) in refill)
            sockets += refill
        if workers > 1:
            processes[0].kill()  # worker 0 dies; nginx must retry on the others
            processes[0].wait()
            answers = [https("/api/v1/health") for _ in range(workers * 4)]
            seen["after_worker_0_died"] = {
                "statuses": sorted({status for status, _ in answers}),
                "workers": sorted({body.get("worker") for _, body in answers}),
            }
        for sock, _ in sockets:
            sock.close()
        return seen
    finally:
        for process in processes:
            process.kill()
            process.wait()


def main() -> None:
    config, workers, mode, acme_dir = (
        sys.argv[1],
        int(sys.argv[2]),
        sys.argv[3],
        sys.argv[4],
    )
    isolate_names_and_network()
    check = subprocess.run(["nginx", "-t", "-c", config], capture_output=True, text=True)
    result = {"syntax_ok": check.returncode == 0, "nginx_t": check.stderr}
    if mode == "serve" and check.returncode == 0:
        result.update(serve(config, workers, acme_dir))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
