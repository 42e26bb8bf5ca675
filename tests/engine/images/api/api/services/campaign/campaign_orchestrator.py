"""Stand-in for Dograh's campaign orchestrator process (test only; not Dograh's code).

`python -m api.services.campaign.campaign_orchestrator`: like the real one it connects to
REDIS_URL and SUBSCRIBEs to the channel `campaign_events`, and stays subscribed, so
`PUBSUB NUMSUB campaign_events` counts the orchestrators running. When redis is unreachable or
the connection drops it retries every 2 s. SIGTERM or SIGINT: unsubscribe and exit 0.
"""

import asyncio
import contextlib
import signal

import redis.asyncio as aioredis

from api import constants

CHANNEL = "campaign_events"


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    while not stop.is_set():
        client = aioredis.from_url(constants.REDIS_URL, socket_connect_timeout=5)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            print(f"campaign_orchestrator (stand-in) subscribed to {CHANNEL}", flush=True)
            while not stop.is_set():
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            await pubsub.unsubscribe(CHANNEL)
        except (OSError, aioredis.RedisError) as error:
            print(f"campaign_orchestrator (stand-in): redis: {error!r}; retrying", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.close()
                await client.close()
    print("campaign_orchestrator (stand-in) stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
