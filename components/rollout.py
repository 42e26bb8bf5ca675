"""Zero-downtime rollout of the api: generations, nginx reload, draining the old generation.

With rolloutStrategy=zeroDowntime the api container's Docker name and network alias carry a
generation id derived from everything that shapes the container. A change of worker count or
image therefore declares a container with a new name, which Pulumi creates before deleting the
old one (no name clash). The new generation must be healthy before anything moves; then a
pulumi-command step writes the re-rendered nginx.conf into the running gateway and reloads it
(`nginx -s reload`: new connections go to the new generation, open ones stay on the old
workers); finally the old generation is deleted, and a before-delete hook first waits until
its /api/v1/health/active-calls reaches zero or drainTimeoutSeconds passes.

The reload and the drain talk to the Docker host with the docker CLI, where `pulumi up` runs,
using the same `docker:host`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Mapping

import pulumi

# Runs inside an api container: the sum of live calls over its workers, using the devops
# secret the container was started with (the endpoint answers 503 without one).
ACTIVE_CALLS_SCRIPT = (
    "import json, os, urllib.request\n"
    "base = int(os.environ.get('UVICORN_BASE_PORT', '8000'))\n"
    "total = 0\n"
    "for i in range(int(os.environ.get('FASTAPI_WORKERS', '1'))):\n"
    "    request = urllib.request.Request(\n"
    "        f'http://127.0.0.1:{base + i}/api/v1/health/active-calls',\n"
    "        headers={'X-Dograh-Devops-Secret': os.environ['DOGRAH_DEVOPS_SECRET']})\n"
    "    total += json.load(urllib.request.urlopen(request, timeout=5))['active_calls']\n"
    "print(total)\n"
)

# Runs where `pulumi up` runs: swap the gateway's config only if nginx accepts it, then reload.
RELOAD_GATEWAY_SCRIPT = """set -eu
if ! command -v docker >/dev/null 2>&1; then
  echo "rolloutStrategy=zeroDowntime reloads nginx with the docker CLI, which is not installed" \\
       "where pulumi runs; install it or set rolloutStrategy=recreate" >&2
  exit 1
fi
docker exec -i "$GATEWAY_CONTAINER" sh -c '
  cat > /etc/nginx/nginx.conf.next &&
  nginx -t -q -c /etc/nginx/nginx.conf.next &&
  mv /etc/nginx/nginx.conf.next /etc/nginx/nginx.conf &&
  nginx -s reload'
"""


def generation_id(
    image: str, envs: Mapping[str, pulumi.Input[str]], secret_fingerprint: str
) -> str:
    """Six hex digits that change whenever the api container would: its image, its plain
    environment, which variables come from other resources, and the secret settings."""
    plain = {key: value for key, value in envs.items() if isinstance(value, str)}
    wired = sorted(key for key, value in envs.items() if not isinstance(value, str))
    text = json.dumps([image, plain, wired, secret_fingerprint], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def docker_cli_environment(docker_host: str | None) -> dict[str, str]:
    return {"DOCKER_HOST": docker_host} if docker_host else {}


def active_calls(container_name: str, docker_host: str | None) -> int | None:
    """Live calls on an api container; None when it cannot be asked (already gone)."""
    completed = subprocess.run(
        ["docker", "exec", container_name, "python", "-c", ACTIVE_CALLS_SCRIPT],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **docker_cli_environment(docker_host)},
        check=False,
    )
    if completed.returncode != 0:
        return None
    return int(completed.stdout.strip().splitlines()[-1])


def drain_api_generation_hook(
    hook_name: str, docker_host: str | None, drain_timeout_seconds: int, poll_seconds: float = 2.0
) -> pulumi.ResourceHook:
    """A before-delete hook: wait until the old generation has no live calls, or time is up."""

    def drain(args: pulumi.ResourceHookArgs) -> None:
        state = args.old_outputs or args.old_inputs or {}
        name = state.get("name")
        if not name:
            return
        deadline = time.monotonic() + drain_timeout_seconds
        while True:
            calls = active_calls(name, docker_host)
            if calls is None or calls == 0:
                return
            if time.monotonic() >= deadline:
                pulumi.log.warn(
                    f"{name} still has {calls} live call(s) after drainTimeoutSeconds="
                    f"{drain_timeout_seconds}; stopping it now"
                )
                return
            time.sleep(poll_seconds)

    return pulumi.ResourceHook(hook_name, drain)
