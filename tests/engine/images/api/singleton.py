"""Stand-in for ari_manager, campaign_orchestrator and ARQ workers: a long-running process.

A singleton records itself in redis (SET dograh:singleton:<name> = <hostname> with a short
expiry, renewed every second), so tests can see which container runs it.
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
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    if exclusive:
        client.set(f"dograh:singleton:{name}", socket.gethostname(), ex=5)
    time.sleep(1)
