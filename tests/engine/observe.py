"""Seeing the stack from outside its api containers, so the engine tests hold for Dograh's
real images as well as for the stand-ins: nginx's access log says which api container and
which worker port served each request (`upstream=$upstream_addr`, components/templates/
nginx.conf.j2), and `docker top` says which processes run in which container.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass

import docker

from components.api import UVICORN_BASE_PORT

# One access-log line: the request path and the last upstream tried (after nginx's retries).
_ACCESS = re.compile(
    r'"[A-Z]+ (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) .*?upstream=(?P<upstreams>.+?) upstream_status='
)
# Dograh's singletons, as its start script runs them (python -m <module>).
SINGLETON_MODULES = {
    "ari_manager": "api.services.telephony.ari_manager",
    "campaign_orchestrator": "api.services.campaign.campaign_orchestrator",
}


@dataclass(frozen=True)
class Served:
    path: str
    status: int
    address: str  # the api container's address on the stack network
    port: int  # the uvicorn worker's port

    @property
    def worker(self) -> int:
        return self.port - UVICORN_BASE_PORT


# The api's worker containers after the stack prefix: `-api` (recreate), `-api-<generation>`
# (zeroDowntime), each with `-<n>` (1 to 16) under apiContainers; never `-api-migrate-…` or
# `-api-singletons`.
_API_WORKERS = re.compile(r"^(?P<generation>.*-api(-[0-9a-f]{6})?)(-(?P<number>\d{1,2}))?$")


def is_api_worker_container(container_name: str, prefix: str) -> bool:
    match = _API_WORKERS.match(container_name)
    return match is not None and match.group("generation").startswith(f"{prefix}-api")


def generation_of(container_name: str) -> str:
    """The api generation a container belongs to: its own name, or with apiContainers the
    name without the container's number (`…-api-3f2a1b-2` -> `…-api-3f2a1b`, `…-api-2` ->
    `…-api`)."""
    match = _API_WORKERS.match(container_name)
    return match.group("generation") if match else container_name


def parse_access_line(line: str) -> Served | None:
    match = _ACCESS.search(line)
    if match is None or match["upstreams"] == "-":
        return None
    last = match["upstreams"].split(",")[-1].strip().split(" : ")[-1]
    address, _, port = last.rpartition(":")
    if not port.isdigit():
        return None
    return Served(match["path"], int(match["status"]), address, int(port))


def served_requests(client: docker.DockerClient, gateway: str, tag: str, expected: int,
                    timeout: float = 10.0) -> list[Served]:  # fmt: skip
    """The upstreams that served the requests whose path carries `tag`, from nginx's log."""
    deadline = time.monotonic() + timeout
    while True:
        logs = client.containers.get(gateway).logs(tail=5000).decode(errors="replace")
        served = [s for line in logs.splitlines() if tag in line and (s := parse_access_line(line))]
        if len(served) >= expected or time.monotonic() > deadline:
            return served
        time.sleep(0.2)


def container_addresses(client: docker.DockerClient, prefix: str) -> dict[str, str]:
    """Stack network address -> container name, for the stack's running containers."""
    addresses = {}
    for container in client.containers.list(filters={"name": prefix}):
        for network in (container.attrs["NetworkSettings"]["Networks"] or {}).values():
            if network.get("IPAddress"):
                addresses[network["IPAddress"]] = container.name
    return addresses


def singleton_processes(client: docker.DockerClient, prefix: str) -> Counter[str]:
    """How many copies of each singleton run across the stack's containers right now."""
    counts: Counter[str] = Counter()
    for container in client.containers.list(filters={"name": prefix}):
        try:
            processes = container.top(ps_args="-eo pid,args").get("Processes") or []
        except docker.errors.NotFound:
            continue  # removed since the list
        except docker.errors.APIError:
            # Stopped or restarting since the list (a one-off job ending, a replacement):
            # nothing runs in it to count; anything else is an error.
            try:
                container.reload()
            except docker.errors.NotFound:
                continue
            if container.status != "running":
                continue
            raise
        for _pid, command in processes:
            for name, module in SINGLETON_MODULES.items():
                if f"-m {module}" in command:
                    counts[name] += 1
    return counts


class SingletonWatch:
    """Samples `docker top` across the stack while it runs: the most copies of each singleton
    seen at once (a campaign dialled twice needs only a moment of two orchestrators)."""

    def __init__(self, client: docker.DockerClient, prefix: str, interval: float = 0.5):
        self.client, self.prefix, self.interval = client, prefix, interval
        self.most: Counter[str] = Counter()
        self.samples = 0
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for name, count in singleton_processes(self.client, self.prefix).items():
                    self.most[name] = max(self.most[name], count)
                self.samples += 1
                self._stop.wait(self.interval)
        except Exception as error:  # reported by __exit__
            self.error = error

    def __enter__(self) -> SingletonWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        # A watch that died or never sampled would vouch for nothing.
        assert self.error is None, f"the singleton watch failed: {self.error!r}"
        assert self.samples > 0, "the singleton watch never sampled"


class UpstreamFollower:
    """Follows the gateway's access log (whichever container holds the name, so a replaced
    gateway is followed too) and names the api container that served each request whose path
    carries `tag`."""

    def __init__(self, client: docker.DockerClient, gateway: str, prefix: str, tag: str):
        self.client, self.gateway, self.prefix, self.tag = client, gateway, prefix, tag
        self.served: list[tuple[float, str, int]] = []  # (when seen, container name, status)
        self._addresses: dict[str, str] = {}
        self._stop = threading.Event()
        self._stream = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._addresses = container_addresses(self.client, self.prefix)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            if self._stream is not None:
                self._stream.close()
        self._thread.join(timeout=10)

    def _name(self, address: str) -> str:
        if address not in self._addresses:
            self._addresses.update(container_addresses(self.client, self.prefix))
        return self._addresses.get(address, address)

    def _run(self) -> None:
        since = int(time.time()) - 1
        while not self._stop.is_set():
            try:
                container = self.client.containers.get(self.gateway)
                self._stream = container.logs(stream=True, follow=True, since=since)
                buffer = b""
                for chunk in self._stream:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        self._take(line.decode(errors="replace"))
                    if self._stop.is_set():
                        return
            except (docker.errors.DockerException, OSError, ValueError):
                pass
            since = int(time.time()) - 1
            self._stop.wait(0.2)

    def _take(self, line: str) -> None:
        if self.tag not in line:
            return
        served = parse_access_line(line)
        if served is not None:
            self.served.append((time.monotonic(), self._name(served.address), served.status))
