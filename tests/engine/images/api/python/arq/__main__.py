"""`python -m arq <settings> [--custom-log-dict <dict>]`: see the package docstring."""

import argparse
import asyncio
import contextlib
import importlib
import logging
import logging.config
import signal
import sys

import redis.asyncio as aioredis

log = logging.getLogger("arq.worker")
QUEUE = "arq:queue"
CONN_RETRIES = 5
CONN_RETRY_DELAY = 1.0
POLL_DELAY = 0.5


def load(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


async def connect(url: str, stop: asyncio.Event):
    for attempt in range(CONN_RETRIES + 1):
        client = aioredis.from_url(url, socket_connect_timeout=10)
        try:
            await client.ping()
            return client
        except (OSError, aioredis.RedisError) as error:
            await client.close()
            if attempt == CONN_RETRIES:
                raise
            log.warning(
                "redis connection error %r, %d retries remaining...", error, CONN_RETRIES - attempt
            )
            try:
                await asyncio.wait_for(stop.wait(), CONN_RETRY_DELAY)
                return None
            except TimeoutError:
                pass
    return None


async def run(settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    url = settings.redis_settings.url
    functions = getattr(settings, "functions", [])
    log.info("Starting worker for %d functions (stand-in)", len(functions))
    while not stop.is_set():
        client = await connect(url, stop)
        if client is None:
            break
        try:
            while not stop.is_set():
                await client.zrangebyscore(QUEUE, "-inf", "+inf", start=0, num=1)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_DELAY)
        except (OSError, aioredis.RedisError) as error:
            log.warning("redis connection lost: %r", error)
        finally:
            await client.close()
    log.info("shutdown on signal (stand-in)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="arq")
    parser.add_argument("worker_settings")
    parser.add_argument("--custom-log-dict")
    arguments = parser.parse_args()
    if arguments.custom_log_dict:
        logging.config.dictConfig(load(arguments.custom_log_dict))
    else:
        logging.basicConfig(level=logging.INFO)
    return asyncio.run(run(load(arguments.worker_settings)))


if __name__ == "__main__":
    sys.exit(main())
