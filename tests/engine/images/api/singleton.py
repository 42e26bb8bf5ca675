"""Stand-in for ari_manager, campaign_orchestrator and ARQ workers: a long-running process.

A singleton claims `dograh:singleton:<name>` in redis for its container (renewed every second,
expiring after 5 s, released on SIGTERM). If it finds the claim held by another container, a
second copy is running somewhere: it counts that in `dograh:singleton:<name>:conflicts`, which
the tests read.
"""

import os
import signal
import socket
import sys
import time

import redis

name = sys.argv[1]
exclusive = "--not-exclusive" not in sys.argv
client = redis.Redis.from_url(os.environ["REDIS_URL"])
key, me = f"dograh:singleton:{name}", socket.gethostname()


def release(*_args) -> None:
    if exclusive and client.get(key) == me.encode():
        client.delete(key)
    sys.exit(0)


signal.signal(signal.SIGTERM, release)
while True:
    if exclusive:
        holder = client.get(key)
        if holder is not None and holder != me.encode():
            client.incr(f"{key}:conflicts")
        client.set(key, me, ex=5)
    time.sleep(1)
