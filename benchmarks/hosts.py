"""Api hosts benchmark: how evenly calls spread, and how long a rollout takes, over 1, 2 and 3
hosts.

    .venv/bin/python -m benchmarks.hosts

On real engines with the stand-in images (tests/engine/multihost.py: this machine's dockerd
as the main host, api hosts in network namespaces, one over ssh://), two workers per host. For
1, 2 and 3 hosts: 200 WebSocket calls held through the gateway, counted per worker (the least
and the most any worker holds, and their ratio); then an api image change rolled across every
host with steady requests (40 per second) and 20 held calls, timed from `apply` to its end,
with failed requests and calls cut. Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import json
import time

from tests.engine.images import NEXT_API_TAG
from tests.engine.load import RolloutLoad
from tests.engine.multihost import HOST_NAMES, MultiHostStack, api_image, multi_host_stack, spread


def measure(multi: MultiHostStack, hosts: tuple[str, ...]) -> dict[str, object]:
    multi.apply(hosts)
    # nginx reloads once more within seconds when an upstream name's address changed (the
    # gateway's watch loop; the first host recreates minio), and a reload starts least_conn's
    # counts afresh while calls stay on the old nginx workers: measure once that has settled.
    time.sleep(6)
    with multi.stack.calls(200) as calls:
        counts = sorted(spread(calls).values())
    results: dict[str, object] = {
        "hosts": 1 + len(hosts),
        "workers": len(counts),
        "calls_least": counts[0],
        "calls_most": counts[-1],
        "max_over_min": round(counts[-1] / counts[0], 3),
    }
    for label, image in (("rollout_s", NEXT_API_TAG), ("rollback_s", api_image())):
        with RolloutLoad(multi.stack, requests_per_second=40, calls=20) as load:
            started = time.monotonic()
            multi.apply(hosts, apiImage=image)
            results[label] = round(time.monotonic() - started, 1)
            report = load.stop()
        results[f"{label[:-2]}_failed_requests"] = report.failed_requests
        results[f"{label[:-2]}_calls_cut"] = report.calls_cut_early
    return results


def main() -> None:
    rows = []
    with multi_host_stack() as multi:
        for count in range(len(HOST_NAMES) + 1):
            rows.append(measure(multi, HOST_NAMES[:count]))
            print(rows[-1], flush=True)
    print()
    print(
        "| hosts | workers | calls per worker (least-most) | max/min | rollout s | failed | cut |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['hosts']} | {row['workers']} | {row['calls_least']}-{row['calls_most']} | "
            f"{row['max_over_min']} | {row['rollout_s']} | {row['rollout_failed_requests']} | "
            f"{row['rollout_calls_cut']} |"
        )
    print(json.dumps({"two_workers_per_host": rows}))


if __name__ == "__main__":
    main()
