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
# The dockerd these tests started, if they did (only that one may be restarted).
_started: subprocess.Popen[bytes] | None = None


def _answering() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


def _start_dockerd(start_timeout: float) -> docker.DockerClient:
    global _started
    if not shutil.which("dockerd"):
        raise RuntimeError("dockerd is missing: scripts/test.sh engine installs docker.io")
    log = DOCKERD_LOG.open("ab")
    _started = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + start_timeout
    client = None
    while client is None:
        if _started.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"dockerd did not answer; see {DOCKERD_LOG}")
        time.sleep(0.2)
        client = _answering()
    return client


def _stop_dockerd() -> None:
    global _started
    if _started is not None:
        _started.terminate()  # dockerd stops every container with its stop timeout first
        _started.wait(timeout=120)
        _started = None


def restart_engine(start_timeout: float = 60.0) -> None:
    """Stop and start the engine, as a host reboot or a daemon upgrade does. Only the dockerd
    these tests started can be restarted: another one is not theirs to stop."""
    if _started is None:
        raise RuntimeError(
            "the engine-restart scenario restarts the dockerd the tests start; another dockerd "
            "is running here: stop it and run the tests again"
        )
    _stop_dockerd()
    _start_dockerd(start_timeout).close()


@contextmanager
def docker_engine(start_timeout: float = 60.0) -> Iterator[docker.DockerClient]:
    client = _answering() or _start_dockerd(start_timeout)
    try:
        yield client
    finally:
        client.close()
        _stop_dockerd()
