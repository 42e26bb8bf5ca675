"""Stand-in for one Dograh api uvicorn worker: a plain ASGI app.

GET /api/v1/health                 worker index and port; postgres, redis and S3 checked with
                                   the credentials the container was given (503 if one fails)
GET /api/v1/health/active-calls    open WebSockets on this worker; needs the
                                   X-Dograh-Devops-Secret header (503 when the env has none)
WebSocket /api/v1/ws/...           accepted and held until the client closes
"""

import asyncio
import json
import os

import asyncpg
import boto3
import redis.asyncio as aioredis
from botocore.config import Config

# An image built to never become healthy, for the failed-rollout test.
UNHEALTHY = os.path.exists("/etc/dograh-standin-unhealthy")
# Checks are cached briefly: load tests send many health requests per second.
CHECK_CACHE_SECONDS = 2.0
_checked: tuple[float, dict] | None = None
_s3_client_cache = None
WORKER_INDEX = int(os.environ.get("WORKER_INDEX", "0"))
WORKER_PORT = int(os.environ.get("WORKER_PORT", "8000"))
open_websockets = 0


def _s3_client():
    if os.environ.get("ENABLE_AWS_S3") == "true":
        return boto3.client(
            "s3",
            endpoint_url=os.environ.get("S3_ENDPOINT_URL"),
            region_name=os.environ.get("S3_REGION", "us-east-1"),
        ), os.environ["S3_BUCKET"]
    secure = os.environ.get("MINIO_SECURE") == "true"
    return boto3.client(
        "s3",
        endpoint_url=f"{'https' if secure else 'http'}://{os.environ['MINIO_ENDPOINT']}",
        aws_access_key_id=os.environ["MINIO_ACCESS_KEY"],
        aws_secret_access_key=os.environ["MINIO_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    ), os.environ["MINIO_BUCKET"]


def _check_s3() -> str:
    global _s3_client_cache
    if _s3_client_cache is None:
        _s3_client_cache = _s3_client()
    client, bucket = _s3_client_cache
    existing = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    client.head_bucket(Bucket=bucket)
    return "ok"


async def _check(name: str, check) -> tuple[str, str]:
    try:
        return name, await asyncio.wait_for(check(), timeout=3)
    except Exception as error:  # reported in the answer, which is the point
        return name, f"{type(error).__name__}: {error}"


async def _postgres() -> str:
    url = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(url)
    try:
        await connection.fetchval("SELECT count(*) FROM calls")
    finally:
        await connection.close()
    return "ok"


async def _redis() -> str:
    client = aioredis.from_url(os.environ["REDIS_URL"])
    try:
        await client.ping()
    finally:
        await client.close()
    return "ok"


async def _s3() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, _check_s3)


async def _send_json(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def app(scope, receive, send):
    global open_websockets
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if scope["type"] == "websocket":
        if not path.startswith("/api/v1/ws/"):
            await send({"type": "websocket.close", "code": 1008})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send(
            {
                "type": "websocket.send",
                "text": json.dumps({"worker": WORKER_INDEX, "port": WORKER_PORT}),
            }
        )
        open_websockets += 1
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            open_websockets -= 1
        return
    headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
    if path == "/api/v1/health/active-calls":
        secret = os.environ.get("DOGRAH_DEVOPS_SECRET")
        if not secret:
            await _send_json(send, 503, {"detail": "DOGRAH_DEVOPS_SECRET is not set"})
        elif headers.get("x-dograh-devops-secret") != secret:
            await _send_json(send, 403, {"detail": "bad devops secret"})
        else:
            await _send_json(send, 200, {"active_calls": open_websockets, "worker": WORKER_INDEX})
        return
    if path == "/api/v1/health":
        global _checked
        now = asyncio.get_running_loop().time()
        if _checked is None or now - _checked[0] > CHECK_CACHE_SECONDS:
            checks = dict(
                await asyncio.gather(
                    _check("postgres", _postgres), _check("redis", _redis), _check("s3", _s3)
                )
            )
            _checked = (now, checks)
        checks = _checked[1]
        healthy = all(value == "ok" for value in checks.values()) and not UNHEALTHY
        await _send_json(
            send,
            200 if healthy else 503,
            {
                "worker": WORKER_INDEX,
                "port": WORKER_PORT,
                "hostname": os.uname().nodename,
                "scheme": scope.get("scheme"),
                **checks,
            },
        )
        return
    await _send_json(send, 404, {"detail": "not found"})
