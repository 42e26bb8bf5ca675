"""A Docker engine for the tests: use the running one, or start dockerd and stop it after."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

DOCKERD_LOG = Path("/tmp/dograh-tests-dockerd.log")


def _answering() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


@contextmanager
def docker_engine(start_timeout: float = 60.0) -> Iterator[docker.DockerClient]:
    client = _answering()
    started: subprocess.Popen[bytes] | None = None
    if client is None:
        if not shutil.which("dockerd"):
            raise RuntimeError("dockerd is missing: scripts/test.sh engine installs docker.io")
        log = DOCKERD_LOG.open("wb")
        started = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + start_timeout
        while client is None:
            if started.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not answer; see {DOCKERD_LOG}")
            time.sleep(0.5)
            client = _answering()
    try:
        yield client
    finally:
        client.close()
        if started is not None:
            started.terminate()
            started.wait(timeout=60)
