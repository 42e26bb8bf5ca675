"""Load through nginx during a change: steady HTTP requests plus held WebSocket calls.

HTTP: GET /api/v1/health at a fixed rate, each on a new TLS connection (so no keep-alive
artefact hides or causes a failure); a request fails on any error or a non-200 answer. Which
api container served each is read from nginx's access log (tests/engine/observe.py), so this
holds for Dograh's real image too.
Calls: WebSockets opened before the change on the stand-in's test-only held-call endpoint
(the real api counts a call only while a workflow runs). They end the way calls do, by the
client, a few seconds after a new api generation starts answering; a call the server closes
first was cut early. The counts are bounded in time and number and only go to 127.0.0.1.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.clients import WebSocketCall, https_get
from tests.engine.images import REAL_IMAGES
from tests.engine.observe import UpstreamFollower, generation_of

if TYPE_CHECKING:
    from tests.engine.harness import EngineStack


@dataclass
class LoadReport:
    requests: int
    failed_requests: int
    longest_gap_ms: float
    calls: int
    calls_cut_early: int
    generations_seen: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "longest_gap_ms": round(self.longest_gap_ms, 1),
            "calls": self.calls,
            "calls_cut_early": self.calls_cut_early,
        }


class RolloutLoad:
    def __init__(
        self,
        stack: EngineStack,
        requests_per_second: float = 60,
        calls: int = 20,
        calls_end_after_switch_seconds: float = 3.0,
        max_seconds: float = 600,
    ):
        self.stack = stack
        self.port = stack.https_port
        self.interval = 1 / requests_per_second
        # The held-call endpoint is the stand-in's: against a real api image, requests only.
        self.call_count = 0 if "apiImage" in REAL_IMAGES else calls
        self.calls_end_after = calls_end_after_switch_seconds
        self.max_seconds = max_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._results: list[tuple[float, bool]] = []
        self._tag = f"load-{uuid.uuid4().hex[:8]}"
        self._served = UpstreamFollower(
            stack.client, stack.container_name("gateway"), stack.prefix, self._tag
        )
        self._calls: list[WebSocketCall] = []
        self._ended_by_client: set[int] = set()
        self._cut: set[int] = set()
        self._first_generation: str | None = None
        self._switched_at: float | None = None
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> RolloutLoad:
        self._calls = [WebSocketCall(self.port) for _ in range(self.call_count)]
        (first,) = self.stack.serving(1)
        self._first_generation = generation_of(first)
        self._served.start()
        self._started = time.monotonic()
        for target in (self._send_requests, self._watch_calls, self._watch_switch):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _send_requests(self) -> None:
        next_at = time.monotonic()
        for number in itertools.count():
            if self._stop.is_set() or time.monotonic() - self._started >= self.max_seconds:
                return
            try:
                status, _ = https_get(self.port, f"/api/v1/health?{self._tag}={number}")
                ok = status == 200
            except OSError:
                ok = False
            with self._lock:
                self._results.append((time.monotonic(), ok))
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _watch_switch(self) -> None:
        """The switch: the first request nginx sent to another api container."""
        while not self._stop.is_set() and self._switched_at is None:
            for seen_at, name, status in list(self._served.served):
                if status == 200 and generation_of(name) != self._first_generation:
                    with self._lock:
                        self._switched_at = self._switched_at or seen_at
                    return
            time.sleep(0.1)

    def _watch_calls(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                switched_at = self._switched_at
            end_calls = (
                switched_at is not None and time.monotonic() - switched_at >= self.calls_end_after
            )
            for index, call in enumerate(self._calls):
                if index in self._ended_by_client or index in self._cut:
                    continue
                if not call.still_open(wait_seconds=0.01):
                    self._cut.add(index)
                elif end_calls:
                    call.close()
                    self._ended_by_client.add(index)
            time.sleep(0.05)

    def end_calls(self) -> None:
        """The calls end now (the client hangs up), whatever the rollout is doing."""
        with self._lock:
            self._switched_at = self._switched_at or time.monotonic() - self.calls_end_after

    def stop(self) -> LoadReport:
        if not self._stop.is_set():
            self._stop.set()
            for thread in self._threads:
                thread.join(timeout=30)
            time.sleep(0.5)  # the last requests' log lines
            self._served.stop()
            for index, call in enumerate(self._calls):
                if index not in self._cut and index not in self._ended_by_client:
                    if not call.still_open(wait_seconds=0.01):
                        self._cut.add(index)
                    call.close()
        times = [self._started] + [at for at, ok in self._results if ok]
        last = self._results[-1][0] if self._results else self._started
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        gaps.append(last - times[-1])
        return LoadReport(
            requests=len(self._results),
            failed_requests=sum(1 for _, ok in self._results if not ok),
            longest_gap_ms=max(gaps) * 1000,
            calls=len(self._calls),
            calls_cut_early=len(self._cut),
            generations_seen=sorted(
                {name for _, name, status in self._served.served if status == 200}
            ),
        )
