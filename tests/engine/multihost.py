"""The dev stack with apiHosts on real engines, shared by tests/engine/test_hosts.py and
benchmarks/hosts.py: the main host is this machine's dockerd (the one the other engine layers
use), the api hosts are dockerds in network namespaces (tests/engine/hosts.py), h3 reached over
ssh:// through a real sshd. The api image reaches each host with `docker save | docker load`.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker

from components.settings import StackSettings
from tests.clients import WebSocketCall
from tests.engine.applier import Plan
from tests.engine.dockerd import docker_engine
from tests.engine.harness import PREFIX, EngineStack, fresh_stack
from tests.engine.hosts import PRIVATE_ADDRESS, TestHost, load_images, test_hosts
from tests.engine.images import NEXT_API_TAG, REAL_IMAGES, build_standins
from tests.engine.observe import singleton_processes

# Short waits, so a scenario takes seconds; two workers per host.
SETTINGS = {
    "drainTimeoutSeconds": 60,
    "apiStopGraceSeconds": 10,
    "apiHealthTimeoutSeconds": 60,
    "fastapiWorkers": 2,
}
HOST_NAMES = ("h2", "h3")
SSH_HOSTS = ("h3",)


def api_image() -> str:
    return REAL_IMAGES.get("apiImage", StackSettings().api_image)


@dataclass
class MultiHostStack:
    stack: EngineStack
    hosts: list[TestHost]
    clients: dict[str, docker.DockerClient] = field(default_factory=dict)

    def host(self, name: str) -> TestHost:
        (found,) = [h for h in self.hosts if h.name == name]
        return found

    def client(self, name: str) -> docker.DockerClient:
        if name not in self.clients:
            self.clients[name] = self.host(name).client()
        return self.clients[name]

    def api_hosts(self, names: Sequence[str], workers: dict[str, int] | None = None) -> str:
        entries: list[dict[str, Any]] = []
        for name in names:
            entry: dict[str, Any] = {
                "name": name,
                "dockerHost": self.host(name).docker_url,
                "address": self.host(name).address,
            }
            if workers and name in workers:
                entry["fastapiWorkers"] = workers[name]
            entries.append(entry)
        return json.dumps(entries)

    def apply(
        self, names: Sequence[str], workers: dict[str, int] | None = None, **settings: Any
    ) -> Plan:
        extra: dict[str, Any] = {"apiHosts": self.api_hosts(names, workers)} if names else {}
        if names:
            extra["privateAddress"] = PRIVATE_ADDRESS
        return self.stack.apply(**{**SETTINGS, **extra, **settings})

    def remote_api_containers(self, name: str) -> list[Any]:
        return sorted(
            self.client(name).containers.list(filters={"name": f"{PREFIX}-api"}),
            key=lambda c: c.name,
        )

    def singletons(self) -> Counter[str]:
        """Singleton processes across every host."""
        counts = singleton_processes(self.stack.client, PREFIX)
        for host in self.hosts:
            if host.engine_running():
                counts += singleton_processes(self.client(host.name), PREFIX)
        return counts


def worker_of(call: WebSocketCall) -> tuple[str, int]:
    """The worker that took a held call: its container (host name) and port."""
    return str(call.hello["host"]), int(call.hello["port"])


def spread(calls: Sequence[WebSocketCall]) -> Counter[tuple[str, int]]:
    return Counter(worker_of(call) for call in calls)


@contextlib.contextmanager
def multi_host_stack() -> Iterator[MultiHostStack]:
    with docker_engine() as client:
        build_standins(client)
        with test_hosts(HOST_NAMES, ssh_hosts=SSH_HOSTS) as hosts:
            # The next api stand-in is the image change's target with a real api image too.
            images = sorted({api_image(), NEXT_API_TAG})
            seconds = load_images(client, images, hosts)
            print(f"\napi images loaded into the hosts (docker save | docker load): {seconds}")
            with fresh_stack(client) as stack:
                multi = MultiHostStack(stack, hosts)  # test_hosts() starts them empty
                try:
                    yield multi
                finally:
                    for remote in multi.clients.values():
                        remote.close()
