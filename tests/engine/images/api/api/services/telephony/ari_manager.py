"""Stand-in for Dograh's ARI manager process (test only; not Dograh's code).

`python -m api.services.telephony.ari_manager`: needs DATABASE_URL/REDIS_URL like the real one
(api/constants.py), then idles until SIGTERM or SIGINT and exits 0.
"""

import signal
import threading

from api import constants  # noqa: F401 - fails without DATABASE_URL / REDIS_URL, as the real one

if __name__ == "__main__":
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    print("ari_manager (stand-in) running", flush=True)
    stop.wait()
    print("ari_manager (stand-in) stopped", flush=True)
