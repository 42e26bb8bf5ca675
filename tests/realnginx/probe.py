"""Check and serve a generated nginx.conf with Debian's nginx, inside private namespaces.

Run as `unshare --mount --net python probe.py <nginx.conf> <workers> <syntax|serve>`:
the private network namespace gives nginx its real ports (80, 443) and the workers theirs
(8000+i) without touching the machine's; the private mount namespace maps the container
host names (api, ui, minio) to loopback through a bind-mounted /etc/hosts. Prints one JSON
object with what it saw; the pytest side asserts on it.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
STANDIN = TESTS / "standins" / "http_standin.py"
sys.path.insert(0, str(TESTS))
from clients import WebSocketCall, http_get, https_get  # noqa: E402


def isolate_names_and_network(upstream_hosts: list[str]) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    hosts = Path(tempfile.mkdtemp()) / "hosts"
    hosts.write_text(f"127.0.0.1 localhost ui minio {' '.join(upstream_hosts)}\n")
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
        health = [https_get(443, "/api/v1/health")[1] for _ in range(workers * 3)]
        seen["health_workers"] = sorted({answer["worker"] for answer in health})
        seen["forwarded_proto"] = sorted({answer["forwarded_proto"] for answer in health})
        seen["ui"] = https_get(443, "/")[1].get("role")
        seen["internal_api"] = sorted(
            {json.loads(http_get(8080, "/api/v1/health")[2])["worker"] for _ in range(workers * 3)}
        )
        seen["internal_other"] = http_get(8080, "/")[0]
        seen["voice_audio"] = https_get(443, "/voice-audio/call-1.wav")[1].get("path")
        seen["acme"] = http_get(80, "/.well-known/acme-challenge/token123")[::2]
        seen["redirect"] = http_get(80, "/calls?id=7")[:2]
        sockets = [WebSocketCall(443) for _ in range(2 * workers)]
        seen["websocket_status"] = sorted({call.status for call in sockets})
        per_worker = {}
        for call in sockets:
            per_worker[call.worker] = per_worker.get(call.worker, 0) + 1
        seen["websockets_per_worker"] = [per_worker.get(i, 0) for i in range(workers)]
        if workers > 1:
            # Calls on worker 0 end; the next calls must go to it, the least loaded worker.
            for call in sockets:
                if call.worker == 0:
                    call.close()
            sockets = [call for call in sockets if call.worker != 0]
            time.sleep(0.3)
            refill = [WebSocketCall(443) for _ in range(2)]
            seen["refill_workers"] = sorted(call.worker for call in refill)
            sockets += refill
        if workers > 1:
            processes[0].kill()  # worker 0 dies; nginx must retry on the others
            processes[0].wait()
            answers = [https_get(443, "/api/v1/health") for _ in range(workers * 4)]
            seen["after_worker_0_died"] = {
                "statuses": sorted({status for status, _ in answers}),
                "workers": sorted({body.get("worker") for _, body in answers}),
            }
        for call in sockets:
            call.close()
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
    upstream_hosts = sorted(
        set(re.findall(r"server ([\w-]+):\d+ max_fails", Path(config).read_text()))
    )
    isolate_names_and_network(upstream_hosts)
    check = subprocess.run(["nginx", "-t", "-c", config], capture_output=True, text=True)
    result = {"syntax_ok": check.returncode == 0, "nginx_t": check.stderr}
    if mode == "serve" and check.returncode == 0:
        result.update(serve(config, workers, acme_dir))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
