"""TEST-ONLY endpoints of the api stand-in. The real dograhai/dograh-api has NONE of these.

They let the engine tests see, through the stack, what the real image does not expose:
- GET /api/v1/standin-test/dependencies: postgres, redis and object storage, each checked with
  the container's own credentials (3 s each; the answer is cached for 2 s because load tests
  call it often): {"postgres": "ok" | "<ErrorType>: message", "redis": ..., "s3": ...};
- GET /api/v1/standin-test/request: {"scheme", "client", "port"} as uvicorn settled them after
  its proxy-header handling (FORWARDED_ALLOW_IPS), and the port of the worker that answered;
- WebSocket /api/v1/standin-test/held-call: accepted, sends {"port": <worker port>, "host":
  <container host name>}, held until
  the client closes; while open it counts in this worker's /api/v1/health/active-calls.
"""

import asyncio
import json
import socket
import time

import asyncpg
import redis.asyncio as aioredis

from api import constants as c
from api.services import storage
from api.services.observability.active_calls import call_ended, call_started

PREFIX = "/api/v1/standin-test/"
CHECK_TIMEOUT = 3.0
CACHE_SECONDS = 2.0
_cached: tuple[float, dict] | None = None
_lock = asyncio.Lock()


async def _send_json(send, status: int, body) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"TimeoutError: no answer within {CHECK_TIMEOUT:g} s"
    return f"{type(error).__name__}: {error}"


async def _postgres() -> str:
    url = c.DATABASE_URL.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(url, timeout=CHECK_TIMEOUT)
    try:
        await connection.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await connection.close()
    return "ok"


async def _redis() -> str:
    client = aioredis.from_url(
        c.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
    )
    try:
        await client.ping()
    finally:
        await client.close()
    return "ok"


def _s3_blocking() -> str:
    if storage.BACKEND is None:
        return "RuntimeError: no storage backend (ENVIRONMENT=test)"
    storage.s3_client(timeout=CHECK_TIMEOUT, attempts=1).head_bucket(Bucket=storage.BUCKET)
    return "ok"


async def _s3() -> str:
    return await asyncio.to_thread(_s3_blocking)


async def _check(probe) -> str:
    try:
        return await asyncio.wait_for(probe(), CHECK_TIMEOUT + 0.5)
    except Exception as error:  # every failure is reported, none raised
        return _describe(error)


async def dependencies() -> dict:
    global _cached
    async with _lock:
        if _cached and time.monotonic() - _cached[0] < CACHE_SECONDS:
            return _cached[1]
        postgres, redis_state, s3 = await asyncio.gather(
            _check(_postgres), _check(_redis), _check(_s3)
        )
        result = {"postgres": postgres, "redis": redis_state, "s3": s3}
        _cached = (time.monotonic(), result)
        return result


async def held_call(scope, receive, send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    call_started()
    try:
        # The worker: its port, and the container (its host name) when several hosts serve.
        hello = {"port": scope["server"][1], "host": socket.gethostname()}
        await send({"type": "websocket.send", "text": json.dumps(hello)})
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        call_ended()


async def handle(scope, receive, send) -> None:
    name = scope["path"][len(PREFIX) :]
    if scope["type"] == "websocket":
        if name == "held-call":
            await held_call(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1000})
        return
    if name == "dependencies" and scope["method"] == "GET":
        await _send_json(send, 200, await dependencies())
    elif name == "request" and scope["method"] == "GET":
        client = scope.get("client")
        await _send_json(
            send,
            200,
            {
                "scheme": scope["scheme"],
                "client": client[0] if client else None,
                "port": scope["server"][1],
            },
        )
    else:
        await _send_json(send, 404, {"detail": "Not Found"})
