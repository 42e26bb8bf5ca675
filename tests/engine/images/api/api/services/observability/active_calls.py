"""Calls held by this worker process (stand-in, test only).

The real api counts its in-flight calls per uvicorn process; here only the test-only held-call
WebSocket (api/standin_test_only.py) counts.
"""

_held = 0


def call_started() -> None:
    global _held
    _held += 1


def call_ended() -> None:
    global _held
    _held -= 1


def active_call_count() -> int:
    return _held
