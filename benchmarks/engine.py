"""Engine benchmark: stand-in image builds, stack bring-up, the 2 -> 4 change, call spread.

    .venv/bin/python -m benchmarks.engine            # cold build: removes the stand-in images first
    .venv/bin/python -m benchmarks.engine --warm     # keeps them (both builds are then warm)

Prints what it measures as it goes; the last line is one JSON object. Numbers, not a verdict:
no threshold here is a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections import Counter

import docker

from tests.engine.dockerd import docker_engine
from tests.engine.harness import fresh_stack
from tests.engine.images import BASE_TAG, build_standins, standin_tags


def remove_standin_images(client: docker.DockerClient) -> None:
    for tags in standin_tags().values():
        for tag in tags:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag, force=True)
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(BASE_TAG, force=True)


def timed(label: str, action):
    started = time.monotonic()
    result = action()
    seconds = round(time.monotonic() - started, 2)
    print(f"{label}: {seconds} s", flush=True)
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="keep the stand-in images")
    parser.add_argument("--calls", type=int, default=200, help="WebSockets held over 4 workers")
    args = parser.parse_args()
    results: dict[str, object] = {}
    with docker_engine() as client:
        if not args.warm:
            remove_standin_images(client)
        results["first_build_s"], first = timed("first image build", lambda: build_standins(client))
        results["first_build_rebuilt"] = first.built
        results["warm_build_s"], warm = timed("warm image build", lambda: build_standins(client))
        results["warm_build_rebuilt"] = warm.built
        with fresh_stack(client) as stack:
            results["stack_up_2_workers_s"], _ = timed(
                "stack up (2 workers, all healthy)", lambda: stack.apply(fastapiWorkers=2)
            )
            results["change_2_to_4_workers_s"], plan = timed(
                "2 -> 4 workers", lambda: stack.apply(fastapiWorkers=4)
            )
            results["change_2_to_4_steps"] = {
                step.name: step.op for step in plan.steps if step.op != "same"
            }
            with stack.calls(args.calls) as calls:
                spread = Counter(call.worker for call in calls)
            results["websockets_per_worker"] = [spread[worker] for worker in range(4)]
            print(f"{args.calls} WebSockets per worker: {results['websockets_per_worker']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
