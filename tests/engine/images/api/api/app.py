"""Stand-in for Dograh's api ASGI app, `api.app:app` (test only; not Dograh's code).

One uvicorn process serves it per port. What it keeps of the real api, release by release:
- import fails without DATABASE_URL / REDIS_URL, or with a MINIO_PUBLIC_ENDPOINT that has no
  http(s):// scheme (api/constants.py), so uvicorn exits non-zero;
- lifespan startup prepares the MinIO bucket and its anonymous policy (failures only logged);
- GET /api/v1/health: 200 with the release's fields, checking no dependency;
- GET /api/v1/health/active-calls (from 1.40.0): 503 without DOGRAH_DEVOPS_SECRET, 403 when
  the X-Dograh-Devops-Secret header is missing or wrong, else this process's calls;
- anything else: 404 {"detail": "Not Found"} (405 for a wrong method), as FastAPI answers.
The routes under /api/v1/standin-test/ are test-only and live in api/standin_test_only.py.
If /app/.standin-never-ready exists (the api-unhealthy test image), startup never finishes.
"""

import asyncio
import ipaddress
import json
import logging
import os
import re
import secrets

from api import constants as c
from api import standin_test_only
from api.services import storage
from api.services.observability.active_calls import active_call_count

logging.basicConfig(
    level=c.LOG_LEVEL, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s"
)
for _noisy in ("botocore", "boto3", "urllib3", "s3transfer", "asyncio"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)
log = logging.getLogger("api.app")

NEVER_READY_MARKER = "/app/.standin-never-ready"
DEVOPS_SECRET_HEADER = b"x-dograh-devops-secret"


async def send_json(send, status: int, body) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _is_local_or_private(url: str) -> bool:
    host = url.split("://", 1)[-1].split("/", 1)[0]
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
        or ip.is_unspecified
        or (ip.version == 4 and ip in ipaddress.ip_network("100.64.0.0/10"))
    )  # fmt: skip


async def _cloudflared_tunnel() -> str | None:
    """Like the real health route: a backend endpoint that is not publicly reachable makes it
    ask cloudflared's metrics (http://cloudflared:2000/metrics, 5 s) for a tunnel URL."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("cloudflared", 2000), 5)
        try:
            writer.write(b"GET /metrics HTTP/1.0\r\nHost: cloudflared:2000\r\n\r\n")
            text = (await asyncio.wait_for(reader.read(), 5)).decode(errors="replace")
        finally:
            writer.close()
    except Exception as error:
        log.warning(
            "Failed to get tunnel URL from cloudflared: %s: %s", type(error).__name__, error
        )
        return None
    match = re.search(r'userHostname="(?:https://|wss://)?([^"]+)"', text) or re.search(
        r"([a-z0-9-]+\.trycloudflare\.com)", text
    )
    return f"https://{match.group(1)}" if match else None


async def health(_scope, send) -> None:
    log.debug("Health endpoint called")
    tunnel_url = None
    if _is_local_or_private(c.BACKEND_API_ENDPOINT):
        tunnel_url = await _cloudflared_tunnel()
    body = {
        "status": "ok",
        "version": c.APP_VERSION,
        "backend_api_endpoint": c.BACKEND_API_ENDPOINT,
        "tunnel_url": tunnel_url,
        "deployment_mode": c.DEPLOYMENT_MODE,
        "auth_provider": c.AUTH_PROVIDER,
        # ENABLE_COTURN decides from 1.44.0; before, TURN is on iff TURN_SECRET is set.
        "turn_enabled": c.ENABLE_COTURN if c.since("1.44.0") else bool(c.TURN_SECRET),
        "force_turn_relay": c.FORCE_TURN_RELAY,
    }
    if c.since("1.42.0"):  # the field (and ENABLE_SIGNUP) exists from 1.42.0 on
        body["signup_enabled"] = c.ENABLE_SIGNUP
    stack = c.AUTH_PROVIDER == "stack"
    body["stack_project_id"] = c.STACK_AUTH_PROJECT_ID if stack else None
    body["stack_publishable_client_key"] = c.STACK_PUBLISHABLE_CLIENT_KEY if stack else None
    await send_json(send, 200, body)


async def active_calls(scope, send) -> None:
    provided = dict(scope["headers"]).get(DEVOPS_SECRET_HEADER)
    if not c.DOGRAH_DEVOPS_SECRET:
        await send_json(send, 503, {"detail": "Devops secret is not configured"})
        return
    if not provided or not secrets.compare_digest(provided, c.DOGRAH_DEVOPS_SECRET.encode()):
        await send_json(send, 403, {"detail": "Forbidden"})
        return
    body = {"active_calls": active_call_count()}
    if c.since("1.44.0"):  # event-loop lag fields arrive in 1.44.0
        body.update({"loop_lag_p95_ms": 0.0, "loop_lag_max_ms": 0.0})
    await send_json(send, 200, body)


def _routes() -> dict:
    routes = {"/api/v1/health": health}
    if c.since("1.40.0"):
        routes["/api/v1/health/active-calls"] = active_calls
    return routes


ROUTES = _routes()


async def lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if os.path.exists(NEVER_READY_MARKER):
                log.warning("%s exists: startup will never finish (test image)", NEVER_READY_MARKER)
                await asyncio.Event().wait()
            await asyncio.to_thread(storage.prepare_minio_bucket)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path = scope["path"]
    if path.startswith(standin_test_only.PREFIX):
        await standin_test_only.handle(scope, receive, send)
        return
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1000})
        return
    handler = ROUTES.get(path)
    if handler is None:
        await send_json(send, 404, {"detail": "Not Found"})
    elif scope["method"] != "GET":
        await send_json(send, 405, {"detail": "Method Not Allowed"})
    else:
        await handler(scope, send)
