"""Zero-downtime rollout of the api: generations, nginx reload, draining the old generation.

With rolloutStrategy=zeroDowntime the api container's Docker name, network alias and Pulumi
resource name carry a generation id derived from every input that would make the docker
provider replace it. A change of worker count or image therefore declares a new resource with
a new Docker name; Pulumi creates it, and deletes the old generation (no longer declared) at
the end of the update. Each generation being its own resource keeps a failed one apart: it
stays in state with its error, the healthy generation is neither replaced nor marked for
deletion, and rolling the configuration back simply declares the healthy one again.

The new generation must be healthy before anything moves; then a pulumi-command step writes
the re-rendered nginx.conf into the running gateway and reloads it (`nginx -s reload`: new
connections go to the new generation, open ones stay on the old workers). That step checks
the generation's health itself, because a retried `pulumi up` clears a failed create's error
without checking again. Finally the old generation is deleted, and a before-delete hook first
waits until its /api/v1/health/active-calls reaches zero, or it is gone, or drainTimeoutSeconds
passes; a probe that fails is asked again, never taken for "no calls".

The reload and the drain talk to the Docker host with the docker CLI, where `pulumi up` runs,
using the same `docker:host`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.container import ContainerSpec

# Runs inside an api container: the sum of live calls over its workers, using the devops
# secret the container was started with (the endpoint answers 503 without one). Any worker
# that does not answer fails the whole probe.
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

# Runs where `pulumi up` runs: the api containers named in $API_CONTAINERS must be healthy
# now. A retried `pulumi up` clears a failed create's error without checking health again, so
# whatever must not move to an unhealthy generation (nginx, the singletons) waits for this.
API_HEALTHY_SCRIPT = """set -eu
if ! command -v docker >/dev/null 2>&1; then
  echo "rolloutStrategy=zeroDowntime reloads nginx with the docker CLI, which is not installed" \\
       "where pulumi runs; install it or set rolloutStrategy=recreate" >&2
  exit 1
fi
for api in $API_CONTAINERS; do
  health=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$api" \\
           2>/dev/null || echo missing)
  if [ "$health" != healthy ]; then
    echo "api container $api is ${health:-unchecked}, not healthy: nginx stays on the" \\
         "generation it serves now. See 'docker logs $api'; fix the cause or roll the" \\
         "configuration back, then run pulumi up again." >&2
    exit 1
  fi
done
"""

# Runs where `pulumi up` runs, after a health check: write the config on stdin into the
# gateway (at $NGINX_CONFIG in $GATEWAY_CONTAINER) if nginx accepts it, and reload.
_WRITE_CONFIG_AND_RELOAD = """\
# A gateway that has just been created waits for its first config (its start script starts
# nginx once the file exists): then wait until nginx runs, rather than reload it.
docker exec -i -e NGINX_CONFIG="$NGINX_CONFIG" "$GATEWAY_CONTAINER" sh -c '
  set -e
  mkdir -p "$(dirname "$NGINX_CONFIG")"
  cat > "$NGINX_CONFIG.next"
  nginx -t -q -c "$NGINX_CONFIG.next"
  mv "$NGINX_CONFIG.next" "$NGINX_CONFIG"
  if [ -s /var/run/nginx.pid ] && kill -0 "$(cat /var/run/nginx.pid)" 2>/dev/null; then
    exec nginx -c "$NGINX_CONFIG" -s reload
  fi
  for _ in $(seq 1 60); do
    [ -s /var/run/nginx.pid ] && kill -0 "$(cat /var/run/nginx.pid)" 2>/dev/null && exit 0
    sleep 0.5
  done
  echo "nginx did not start with the new config; see docker logs $HOSTNAME" >&2
  exit 1'
"""

# Runs where `pulumi up` runs: switch the gateway only to api containers that are healthy now,
# and only to a config nginx accepts; then reload.
RELOAD_GATEWAY_SCRIPT = API_HEALTHY_SCRIPT + _WRITE_CONFIG_AND_RELOAD

# Runs where `pulumi up` runs, once an api host's containers (in $API_CONTAINERS, on the
# Docker host $API_DOCKER_HOST) are in place: they must be healthy, then the gateway (on its
# own Docker host, DOCKER_HOST) takes the whole config again, this host's workers back in it.
API_HOST_IN_UPSTREAM_SCRIPT = (
    """set -eu
for api in $API_CONTAINERS; do
  health=$(docker --host "$API_DOCKER_HOST" inspect \\
           --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$api" 2>&1) \\
    || health="unreachable or missing ($health)"
  if [ "$health" != healthy ]; then
    echo "api host $API_HOST ($API_DOCKER_HOST): container $api is ${health:-unchecked}, not" \\
         "healthy; the host stays out of nginx's upstream. See 'docker --host" \\
         "$API_DOCKER_HOST logs $api'; fix the cause or roll the configuration back, then" \\
         "run pulumi up again." >&2
    exit 1
  fi
done
"""
    + _WRITE_CONFIG_AND_RELOAD
)

# Runs inside the gateway: mark the upstream servers in $SERVERS (address:port, dots escaped
# for sed) `down` in the live config and reload, so nginx sends them nothing new while their
# calls go on (a reload keeps open connections on the old nginx workers).
_MARK_SERVERS_DOWN = """set -e
cp "$NGINX_CONFIG" "$NGINX_CONFIG.next"
for server in $SERVERS; do
  sed -i "s/^\\( *server $server\\) max_fails/\\1 down max_fails/" "$NGINX_CONFIG.next"
done
nginx -t -q -c "$NGINX_CONFIG.next"
mv "$NGINX_CONFIG.next" "$NGINX_CONFIG"
nginx -c "$NGINX_CONFIG" -s reload
"""

# The label naming the Docker host an api host's container runs on: its before-delete hook
# finds the host there, also once the host is no longer in apiHosts.
DOCKER_HOST_LABEL = "dograh.docker-host"


# What the docker provider replaces a container for (every ForceNew input the program sets,
# plus the health check under `replace_on_changes`). The rest (stop grace, wait timeout) only
# lives in state and must not start a new generation.
_REPLACING_FIELDS = (
    "image",
    "envs",
    "command",
    "healthcheck",
    "ports",
    "volumes",
    "uploads",
    "labels",
    "extra_hosts",
)


def _canonical(value: Any) -> Any:
    """A JSON-ready form of a spec field; a value from another resource becomes a marker."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, pulumi.Output):
        return "<from another resource>"
    if isinstance(value, Mapping):
        return {str(key): _canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if hasattr(value, "__dict__"):  # pulumi input types (ports, health check, volumes, ...)
        return _canonical(vars(value))
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def generation_id(spec: ContainerSpec, secret_fingerprint: str) -> str:
    """Six hex digits that change whenever the docker provider would replace the container:
    every replace-forcing input (values from other resources by their keys) and the secret
    settings, whose values the program cannot see before they resolve. A replacement under an
    unchanged name would collide with the running container on Docker's name."""
    fields = {name: _canonical(getattr(spec, name)) for name in _REPLACING_FIELDS}
    text = json.dumps([fields, secret_fingerprint], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def docker_cli_environment(docker_host: str | None) -> dict[str, str]:
    return {"DOCKER_HOST": docker_host} if docker_host else {}


@dataclass(frozen=True)
class CallsProbe:
    """One look at an old generation: gone (nothing left to wait for), its live calls, or why
    it could not be asked (which never counts as "no calls")."""

    gone: bool = False
    calls: int | None = None
    error: str = ""


def _docker(arguments: list[str], docker_host: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **docker_cli_environment(docker_host)},
        check=False,
    )


def probe_active_calls(container_name: str, docker_host: str | None) -> CallsProbe:
    """Live calls on an api container, asked inside it (its workers are not published)."""
    try:
        state = _docker(["inspect", "--format", "{{.State.Running}}", container_name], docker_host)
        if state.returncode != 0 and "no such" in state.stderr.lower():
            return CallsProbe(gone=True)
        if state.returncode == 0 and state.stdout.strip() == "false":
            return CallsProbe(gone=True)  # stopped: its calls have ended with it
        asked = _docker(["exec", container_name, "python", "-c", ACTIVE_CALLS_SCRIPT], docker_host)
    except (OSError, subprocess.TimeoutExpired) as error:
        return CallsProbe(error=f"{type(error).__name__}: {error}")
    if asked.returncode != 0:
        lines = (asked.stderr or asked.stdout).strip().splitlines()
        return CallsProbe(error=lines[-1] if lines else f"exit code {asked.returncode}")
    try:
        return CallsProbe(calls=int(asked.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return CallsProbe(error=f"unexpected answer {asked.stdout.strip()[:200]!r}")


def wait_until_drained(
    container_name: str,
    docker_host: str | None,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    log: Callable[[str], None] = pulumi.log.warn,
) -> CallsProbe:
    """Wait until the container has no live calls or is gone, or the time is up. A probe that
    fails (a 403, a 404 from a release without the endpoint, a timeout) is "still busy", as
    in Dograh's own rolling_update.sh: logged and asked again, never taken for drained."""
    deadline = time.monotonic() + timeout_seconds
    logged_error = ""
    while True:
        probe = probe_active_calls(container_name, docker_host)
        if probe.gone or probe.calls == 0:
            return probe
        if probe.error and probe.error != logged_error:
            log(f"{container_name}: cannot ask for its live calls ({probe.error}); asking again")
            logged_error = probe.error
        if time.monotonic() >= deadline:
            busy = f"{probe.calls} live call(s)" if probe.calls else "calls it could not count"
            log(
                f"{container_name} still has {busy} after drainTimeoutSeconds="
                f"{timeout_seconds:g}; stopping it now"
            )
            return probe
        time.sleep(poll_seconds)


def drain_api_generation_hook(
    hook_name: str, docker_host: str | None, drain_timeout_seconds: int, poll_seconds: float = 2.0
) -> pulumi.ResourceHook:
    """A before-delete hook: wait until the old generation has no live calls, or time is up."""

    def drain(args: pulumi.ResourceHookArgs) -> None:
        state = args.old_outputs or args.old_inputs or {}
        name = state.get("name")
        if name:
            wait_until_drained(name, docker_host, drain_timeout_seconds, poll_seconds)

    return pulumi.ResourceHook(hook_name, drain)


def upstream_server(address: str, port: int) -> str:
    """address:port as nginx's `server` takes it (an IPv6 address in brackets)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def take_out_of_upstream(
    servers: list[str],
    gateway_container: str,
    nginx_config: str,
    gateway_docker_host: str | None,
) -> str:
    """Mark `servers` down in the running gateway's config and reload it; "" when done, else
    why not (a gateway being replaced, say: then nothing is marked, and nginx's retries carry
    new requests past the servers once they are gone)."""
    escaped = " ".join(server.replace(".", "\\.").replace("[", "\\[").replace("]", "\\]")
                       for server in servers)  # fmt: skip
    try:
        done = _docker(
            [
                "exec",
                "-e",
                f"SERVERS={escaped}",
                "-e",
                f"NGINX_CONFIG={nginx_config}",
                gateway_container,
                "sh",
                "-c",
                _MARK_SERVERS_DOWN,
            ],
            gateway_docker_host,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{type(error).__name__}: {error}"
    return "" if done.returncode == 0 else (done.stderr or done.stdout).strip()


def drain_api_host_hook(
    hook_name: str,
    gateway_container: str,
    nginx_config: str,
    gateway_docker_host: str | None,
    drain_timeout_seconds: int,
    poll_seconds: float = 2.0,
) -> pulumi.ResourceHook:
    """A before-delete hook for an api host's worker container (replaced, or its host removed
    from apiHosts): out of nginx's upstream first, then wait until its calls have ended, or
    drainTimeoutSeconds passes. Registered in every run under one name, so a container whose
    host is gone from apiHosts still finds it: the host is read from the container's label."""

    def drain(args: pulumi.ResourceHookArgs) -> None:
        state = args.old_outputs or args.old_inputs or {}
        name = state.get("name")
        labels = {item["label"]: item["value"] for item in state.get("labels") or []}
        docker_host = labels.get(DOCKER_HOST_LABEL)
        if not name or not docker_host:
            return
        servers = [
            upstream_server(port["ip"], int(port["external"])) for port in state.get("ports") or []
        ]
        problem = take_out_of_upstream(
            servers, gateway_container, nginx_config, gateway_docker_host
        )
        if problem:
            pulumi.log.warn(
                f"{name} on {docker_host}: could not mark its workers down in nginx ({problem}); "
                "draining it anyway"
            )
        wait_until_drained(name, docker_host, drain_timeout_seconds, poll_seconds)

    return pulumi.ResourceHook(hook_name, drain)
