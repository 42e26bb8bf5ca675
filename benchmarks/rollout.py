"""Rollout benchmark: what a change costs live traffic, for each rollout strategy.

    .venv/bin/python -m benchmarks.rollout

For rolloutStrategy recreate and zeroDowntime, on the real engine with the stand-in images:
bring the dev stack up with 4 workers, then change to 6 workers, to 2, and to another api
image, each while sending steady HTTP requests through nginx (60 per second, a new TLS
connection each) and holding 20 WebSocket calls that end 3 s after a new api generation starts
answering. Reports per strategy and change: failed requests, the longest gap without a
successful response (ms), and calls the server closed before the client ended them. Prints as
it goes; the last line is one JSON object.
"""

from __future__ import annotations

import json
import time

from tests.engine.dockerd import docker_engine
from tests.engine.harness import EngineStack, fresh_stack
from tests.engine.images import NEXT_API_TAG, build_standins
from tests.engine.load import RolloutLoad

SETTINGS = {"drainTimeoutSeconds": 60, "apiStopGraceSeconds": 10, "apiHealthTimeoutSeconds": 60}
CHANGES = [
    ("workers 4->6", {"fastapiWorkers": 6}),
    ("workers 6->2", {"fastapiWorkers": 2}),
    ("api image change", {"fastapiWorkers": 2, "apiImage": NEXT_API_TAG}),
]


def measure(strategy: str, stack: EngineStack) -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    stack.apply(rolloutStrategy=strategy, fastapiWorkers=4, **SETTINGS)
    for label, change in CHANGES:
        started = time.monotonic()
        with RolloutLoad(stack, requests_per_second=60, calls=20) as load:
            stack.apply(rolloutStrategy=strategy, **SETTINGS, **change)
            report = load.stop()
        results[label] = {**report.as_dict(), "change_s": round(time.monotonic() - started, 1)}
        print(f"{strategy:12} {label:17} {results[label]}", flush=True)
    return results


def main() -> None:
    summary: dict[str, object] = {}
    with docker_engine() as client:
        build_standins(client)
        for strategy in ("recreate", "zeroDowntime"):
            with fresh_stack(client) as stack:
                summary[strategy] = measure(strategy, stack)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
