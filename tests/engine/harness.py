"""The dev stack, as a user configures it, on the real engine: shared by tests and benchmarks.

`EngineStack` declares the program with stacks/Pulumi.dev.yaml plus overrides (the stack is
named `enginetest` so its Docker names cannot meet a developer's own dev stack, and nginx is
published on 127.0.0.1:18080/18443), applies it with the applier, and talks to it the way a
user's client does: through nginx.

With DOGRAH_TEST_API_IMAGE (and DOGRAH_TEST_UI_IMAGE) set to images loaded in the engine,
say Dograh's real ones, the stack runs those instead of the stand-ins (DOGRAH_TEST_API_RELEASE
gives the release when the reference does not). The tests observe what the real images
expose, or watch from outside (tests/engine/observe.py); the few that need a stand-in's
test-only endpoint are marked `standin_only` and say why.
"""

from __future__ import annotations

import contextlib
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from components.gateway import CERTIFICATE_PATH
from offline.declare import Declaration, declare, reveal, stack_config
from tests.clients import WebSocketCall, https_get
from tests.engine.applier import EngineApplier, Plan
from tests.engine.dockerd import docker_engine
from tests.engine.images import REAL_IMAGES, BuildReport, build_standins
from tests.engine.observe import (
    SINGLETON_MODULES,
    Served,
    container_addresses,
    generation_of,
    is_api_worker_container,
    served_requests,
    singleton_processes,
)

STACK = "enginetest"
SINGLETONS = tuple(SINGLETON_MODULES)
HTTP_PORT = 18080
HTTPS_PORT = 18443
PREFIX = f"dograh-{STACK}"


def standin_only(why: str) -> pytest.MarkDecorator:
    """For a test that needs what only the api stand-in has (a held call without a
    workflow, a test-only endpoint): skipped, with the reason, against a real api image."""
    return pytest.mark.skipif("apiImage" in REAL_IMAGES, reason=f"needs the api stand-in: {why}")


def container_name(service: str) -> str:
    return f"{PREFIX}-{service}"


class EngineStack:
    def __init__(self, client: docker.DockerClient, log: Callable[[str], None] | None = None):
        self.client = client
        self.applier = EngineApplier(client, log=log) if log else EngineApplier(client)
        self.declaration: Declaration | None = None
        # The settings (plain, as `pulumi config` strings) of the last successful apply.
        self.settings: dict[str, str] = {}

    def declare(self, secrets: dict[str, str] | None = None, **settings: Any) -> Declaration:
        """The dev stack with these settings (and secrets, as if set with --secret)."""
        overrides = {"httpPort": str(HTTP_PORT), "httpsPort": str(HTTPS_PORT), **REAL_IMAGES}
        overrides.update({key: str(value) for key, value in settings.items()})
        return declare(STACK, config=stack_config("dev", overrides), secrets=secrets)

    def apply(self, secrets: dict[str, str] | None = None, **settings: Any) -> Plan:
        return self.apply_declaration(self.declare(secrets, **settings), settings)

    def apply_declaration(self, declaration: Declaration, settings: dict[str, Any]) -> Plan:
        plan = self.applier.apply(declaration)
        self.declaration = declaration
        self.settings = {key: str(value) for key, value in settings.items()}
        return plan

    prefix = PREFIX

    @staticmethod
    def container_name(service: str) -> str:
        return container_name(service)

    @property
    def https_port(self) -> int:
        return int(self.settings.get("httpsPort", HTTPS_PORT))

    def remove_leftovers(self) -> None:
        """Containers, volumes and the network an interrupted earlier run left behind."""
        for container in self.client.containers.list(all=True, filters={"name": PREFIX}):
            container.remove(force=True)
        for volume in self.client.volumes.list(filters={"name": PREFIX}):
            volume.remove(force=True)
        for network in self.client.networks.list(names=[f"{PREFIX}-net"]):
            network.remove()

    # ---- looking at it --------------------------------------------------------------------

    def container(self, service: str):
        """`api` means the container running the workers: `api` (recreate) or the running
        `api-<generation>` (zeroDowntime); with apiContainers above 1, the first container of
        the one generation running (all of them: api_containers)."""
        if service == "api":
            running = self.api_containers()
            generations = {generation_of(container.name) for container in running}
            if len(generations) == 1:
                return running[0]
            raise LookupError(f"{len(generations)} api generations are running: {running}")
        return self.client.containers.get(container_name(service))

    def api_containers(self) -> list:
        """The running containers of uvicorn workers (not the migration job, not the
        singletons): `api`, `api-<generation>`, or with apiContainers `…-1` … `…-K`."""
        running = [
            c for c in self.client.containers.list(filters={"name": f"{PREFIX}-api"})
            if is_api_worker_container(c.name, PREFIX)
        ]  # fmt: skip
        return sorted(running, key=lambda c: c.name)

    def env(self, service: str) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.container(service).attrs["Config"]["Env"])

    def health(self) -> tuple[int, dict[str, Any]]:
        return https_get(self.https_port, "/api/v1/health")

    def served_certificate(self) -> str:
        """The certificate nginx presents on the HTTPS port, as PEM."""
        return ssl.get_server_certificate(("127.0.0.1", self.https_port), timeout=10)

    def declared_certificate(self) -> str:
        assert self.declaration is not None
        gateway = self.declaration.containers()[container_name("gateway")]
        (pem,) = [
            upload["content"]
            for upload in reveal(gateway.inputs["uploads"])
            if upload["file"] == CERTIFICATE_PATH
        ]
        return str(pem)

    def served(self, requests: int, path: str = "/api/v1/health") -> list[Served]:
        """Send `requests` GETs through nginx; which api address and worker port served each,
        from nginx's access log."""
        tag = f"probe-{uuid.uuid4().hex[:8]}"
        statuses = [https_get(self.https_port, f"{path}?{tag}={n}")[0] for n in range(requests)]
        assert set(statuses) == {200}, statuses
        return served_requests(self.client, container_name("gateway"), tag, requests)

    def serving(self, requests: int = 4) -> set[str]:
        """The api containers nginx sends requests to now (its access log)."""
        addresses = container_addresses(self.client, f"{PREFIX}-api")
        return {addresses.get(s.address, s.address) for s in self.served(requests)}

    def workers_answering(self, requests: int) -> set[int]:
        return {served.worker for served in self.served(requests)}

    def singletons(self) -> Counter[str]:
        """The singletons running across the stack now (docker top)."""
        return singleton_processes(self.client, PREFIX)

    def restarts(self, service: str) -> int:
        return int(self.container(service).attrs["RestartCount"])

    def exec(self, service: str, command: str) -> str:
        result = self.container(service).exec_run(["sh", "-c", command])
        output = result.output.decode(errors="replace")
        if result.exit_code != 0:
            raise RuntimeError(f"{command!r} in {service} failed: {output}")
        return output.strip()

    def psql(self, sql: str) -> str:
        return self.exec(
            "postgres", f'PGPASSWORD="$POSTGRES_PASSWORD" psql -U postgres -d postgres -tAc "{sql}"'
        )

    def s3(self, operation: str) -> str:
        """Run a boto3 call inside the api container with the credentials it was given
        (Dograh's api image ships boto3, as the stand-in does)."""
        script = (
            "import os, boto3; from botocore.config import Config; "
            "s3 = boto3.client('s3', endpoint_url='http://' + os.environ['MINIO_ENDPOINT'], "
            "aws_access_key_id=os.environ['MINIO_ACCESS_KEY'], "
            "aws_secret_access_key=os.environ['MINIO_SECRET_KEY'], region_name='us-east-1', "
            "config=Config(s3={'addressing_style': 'path'})); "
            "bucket = os.environ['MINIO_BUCKET']; " + operation
        )
        return self.exec("api", f'python3 -c "{script}"')

    def secrets(self) -> dict[str, str]:
        assert self.declaration is not None
        return {
            key: reveal(value)
            for key, value in self.declaration.outputs.items()
            if key.endswith(("Secret", "Password"))
        }

    @contextlib.contextmanager
    def calls(self, count: int) -> Iterator[list[WebSocketCall]]:
        opened = []
        try:
            for _ in range(count):
                opened.append(WebSocketCall(self.https_port))
            yield opened
        finally:
            for call in opened:
                call.close()

    def wait_until(self, condition, timeout: float, interval: float = 0.5) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if condition():
                    return True
            time.sleep(interval)
        return False


@contextlib.contextmanager
def fresh_stack(
    client: docker.DockerClient, log: Callable[[str], None] | None = None
) -> Iterator[EngineStack]:
    """An empty `enginetest` stack, destroyed (volumes included) afterwards."""
    stack = EngineStack(client, log=log)
    stack.remove_leftovers()
    try:
        yield stack
    finally:
        stack.applier.teardown()
        stack.remove_leftovers()


@contextlib.contextmanager
def engine_stack(
    log: Callable[[str], None] | None = None,
) -> Iterator[tuple[EngineStack, BuildReport]]:
    """A Docker engine with the stand-in images built, and a fresh stack on it."""
    with docker_engine() as client:
        report = build_standins(client)
        with fresh_stack(client, log=log) as stack:
            yield stack, report
