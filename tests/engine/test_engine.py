"""The declared stack on a real Docker engine, end to end.

The scenarios run in order on one stack (module scope): up with 2 workers (migrations once,
every container healthy, the ui included), change to 4, refuse 0, hold 200 calls, lose a
worker, drain an old generation whose probe fails, and move to an api release that ignores
the singleton switches.
"""

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections import Counter

import docker
import pulumi
import pytest

from components.rollout import drain_api_generation_hook, probe_active_calls
from tests.clients import https_get
from tests.engine.applier import ApplyError
from tests.engine.harness import HTTPS_PORT, PREFIX, SINGLETONS, engine_stack, standin_only
from tests.engine.images import NO_DRAIN_API_TAG, SWITCHES_IGNORED_API_TAG
from tests.engine.observe import SingletonWatch

DATA_SERVICES = ("postgres", "redis", "minio")
MARKER_TABLE = "engine_test_marker"


@pytest.fixture(scope="module")
def stack():
    with engine_stack() as (stack, _report):
        stack.apply(fastapiWorkers=2)
        yield stack


@pytest.fixture(scope="module")
def before_change(stack):
    """What the 2 -> 4 change must keep: data, container ids, secrets."""
    stack.psql(f"CREATE TABLE {MARKER_TABLE} (note text)")
    stack.psql(f"INSERT INTO {MARKER_TABLE} (note) VALUES ('written before the change')")
    stack.s3("s3.put_object(Bucket=bucket, Key='calls/before.wav', Body=b'RIFF-before')")
    return {
        "ids": {
            service: stack.container(service).id for service in (*DATA_SERVICES, "ui", "gateway")
        },
        "secrets": stack.secrets(),
        "jwt_in_api": stack.env("api")["OSS_JWT_SECRET"],
    }


def test_migrations_ran_once_in_their_job_before_any_api_container_started(stack):
    """Dograh's migrations take no lock: the job runs them alone; the api containers then
    find the database at head. A collision would have crashed one of them (a restart)."""
    (job,) = stack.client.containers.list(all=True, filters={"name": f"{PREFIX}-api-migrate-"})
    assert job.attrs["State"]["ExitCode"] == 0, job.logs(tail=20)
    assert "Running upgrade" in job.logs().decode(errors="replace")
    job_ended = job.attrs["State"]["FinishedAt"]
    for service in ("api", "api-singletons"):
        container = stack.container(service)
        assert container.attrs["State"]["StartedAt"] > job_ended, service
        assert stack.restarts(service) == 0, container.logs(tail=30)
        assert "Running upgrade" not in container.logs().decode(errors="replace"), service


def test_two_workers_all_healthy_and_answering_through_nginx(stack):
    for service in (*DATA_SERVICES, "api", "api-singletons", "ui"):
        health = stack.container(service).attrs["State"]["Health"]["Status"]
        assert health == "healthy", service
    status, body = stack.health()
    assert status == 200 and body["status"] == "ok"
    assert body["backend_api_endpoint"] == f"https://localhost:{HTTPS_PORT}"
    served = stack.served(20)
    assert {s.port for s in served} == {8000, 8001}
    assert {s.address for s in served} == {
        network["IPAddress"]
        for network in stack.container("api").attrs["NetworkSettings"]["Networks"].values()
    }


def test_the_ui_answers_through_nginx_and_reaches_the_api(stack):
    """Next binds HOSTNAME: the program sets 0.0.0.0, or nothing listens on 127.0.0.1."""
    status, _ = https_get(HTTPS_PORT, "/")
    assert status == 200


@standin_only("reads the test-only endpoints that report the api's own view")
def test_the_workers_reach_their_services_and_trust_nginxs_scheme_standin_only(stack):
    for _ in range(4):
        status, checks = https_get(HTTPS_PORT, "/api/v1/standin-test/dependencies")
        assert (status, checks["postgres"], checks["redis"], checks["s3"]) == (
            200, "ok", "ok", "ok"
        ), checks  # fmt: skip
        _, request = https_get(HTTPS_PORT, "/api/v1/standin-test/request")
        assert request["scheme"] == "https"  # uvicorn trusted nginx's X-Forwarded-Proto


@standin_only("a held call without a workflow exists only on the stand-in")
def test_a_websocket_through_nginx_opens_and_stays_open_standin_only(stack):
    with stack.calls(1) as (call,):
        assert call.status == 101
        assert call.worker in (0, 1)
        assert call.still_open(wait_seconds=3)


def test_only_nginx_is_published_and_on_loopback(stack):
    for service in (*DATA_SERVICES, "api", "ui"):
        assert not stack.container(service).attrs["NetworkSettings"]["Ports"] or all(
            binding is None
            for binding in stack.container(service).attrs["NetworkSettings"]["Ports"].values()
        ), service
    published = stack.container("gateway").attrs["NetworkSettings"]["Ports"]
    assert {(b["HostIp"], b["HostPort"]) for bindings in published.values() for b in bindings} == {
        ("127.0.0.1", "18080"),
        ("127.0.0.1", str(HTTPS_PORT)),
    }


def test_two_to_four_workers_replaces_only_the_api_and_reloads_nginx_and_keeps_data(
    stack, before_change
):
    old_generation = stack.container("api").name.removeprefix(f"{PREFIX}-")
    planned = stack.applier.plan(stack.declare(fastapiWorkers=4))
    # zeroDowntime (the default): a new api generation beside the old one (deleted at the
    # end), and nginx reloaded, not recreated.
    (new_generation,) = planned.names("create")
    assert new_generation != f"dograh-{old_generation}-container"
    assert planned.names("delete") == {f"dograh-{old_generation}-container"}
    # The new generation's health checked again, then nginx reloaded, not recreated.
    assert planned.names("replace") == {"dograh-api-healthy", "dograh-gateway-reload"}
    stack.apply(fastapiWorkers=4)

    assert stack.workers_answering(24) == {0, 1, 2, 3}
    for service, container_id in before_change["ids"].items():
        assert stack.container(service).id == container_id, f"{service} was recreated"
    assert stack.psql(f"SELECT note FROM {MARKER_TABLE}") == "written before the change"
    assert (
        stack.s3(
            "print(s3.get_object(Bucket=bucket, Key='calls/before.wav')['Body'].read().decode())"
        )
        == "RIFF-before"
    )
    assert stack.secrets() == before_change["secrets"]
    assert stack.env("api")["OSS_JWT_SECRET"] == before_change["jwt_in_api"]


def test_zero_workers_is_refused_and_the_running_stack_is_untouched(stack):
    ids = {
        s: stack.container(s).id for s in (*DATA_SERVICES, "api", "api-singletons", "ui", "gateway")
    }
    refused = stack.declare(fastapiWorkers=0)
    assert "dograh:fastapiWorkers = '0' is not allowed" in refused.error
    assert refused.resources == []
    with pytest.raises(ApplyError, match="refused its configuration"):
        stack.applier.apply(refused)
    assert {s: stack.container(s).id for s in ids} == ids
    assert stack.workers_answering(16) == {0, 1, 2, 3}


@standin_only("a held call without a workflow exists only on the stand-in")
def test_two_hundred_calls_spread_evenly_over_four_workers_standin_only(stack):
    with stack.calls(200) as calls:
        per_worker = Counter(call.worker for call in calls)
        assert set(per_worker) == {0, 1, 2, 3}
        assert max(per_worker.values()) - min(per_worker.values()) <= 1, per_worker
        assert all(call.still_open(0.05) for call in calls[:10])


def test_a_killed_worker_brings_the_api_back_through_its_restart_policy(stack):
    api = stack.container("api")
    restarts_before = api.attrs["RestartCount"]
    # From outside, as the kernel's OOM killer would: the worker's host pid from docker top.
    top = api.top(ps_args="-eo pid,args")["Processes"]
    (pid,) = [int(row[0]) for row in top if "--port 8001" in row[1] and "uvicorn" in row[1]]
    os.kill(pid, signal.SIGKILL)
    statuses = Counter()

    def recovered() -> bool:
        statuses[stack.health()[0]] += 1
        state = stack.container("api").attrs
        return (
            state["RestartCount"] > restarts_before
            and state["State"]["Health"]["Status"] == "healthy"
            and stack.workers_answering(16) == {0, 1, 2, 3}
        )

    # The start script exits when one process dies; Docker restarts the container and nginx
    # (which retries a dead worker's requests on the others) finds the workers again.
    assert stack.wait_until(recovered, timeout=90, interval=0.1), (
        f"not recovered: {dict(statuses)}; api containers: "
        + str([(c.name, c.status) for c in stack.client.containers.list(all=True)])
    )
    print(f"requests through nginx while the api restarted: {dict(statuses)}")


@standin_only("runs the stand-in of a release without the active-calls endpoint (1.39.0)")
def test_a_drain_whose_probe_fails_waits_until_the_container_is_gone_or_time_is_up_standin_only(
    stack,
):
    """A 404 from a release without /api/v1/health/active-calls is "still busy", never
    "drained": the hook waits out its timeout, and ends early only when the container goes."""
    network = f"{PREFIX}-net"
    old = stack.client.containers.run(
        NO_DRAIN_API_TAG, name="dograh-draintest-api", environment=stack.env("api"),
        network=network, detach=True,
    )  # fmt: skip
    try:
        assert stack.wait_until(lambda: old.exec_run(["python", "-c", PROBE]).exit_code == 0, 60)
        drain = _drain_hook(6, poll_seconds=1)
        started = time.monotonic()
        drain.callback(_hook_args(old.name))
        waited = time.monotonic() - started
        assert waited >= 6, f"an answer of 404 was taken for 'no calls' after {waited:.1f} s"

        drain = _drain_hook(60, poll_seconds=1)
        threading.Timer(3, lambda: old.remove(force=True)).start()
        started = time.monotonic()
        drain.callback(_hook_args(old.name))
        assert time.monotonic() - started < 20  # gone: nothing left to wait for
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            old.remove(force=True)


@standin_only("holds a call without a workflow, which only the stand-in counts")
def test_a_drain_waits_for_a_live_call_and_stops_waiting_when_it_ends_standin_only(stack):
    api = stack.container("api")
    drain = _drain_hook(60, poll_seconds=0.5)
    with stack.calls(1) as (call,):
        threading.Timer(4, call.close).start()
        started = time.monotonic()
        drain.callback(_hook_args(api.name))
        waited = time.monotonic() - started
    assert 3.5 <= waited < 20, waited


@standin_only("runs the stand-in of 1.44.0, a release that ignores the singleton switches")
def test_an_api_release_that_ignores_the_switches_runs_its_singletons_once_standin_only(stack):
    """Before 1.45.0 every api container starts both singletons whatever ENABLE_* says. With
    such a release (rolloutStrategy=recreate, as the settings require) the program runs no
    separate singletons container: one copy of each runs, before, during and after the moves
    to it and back, each in the README's two steps."""
    assert stack.singletons() == dict.fromkeys(SINGLETONS, 1)
    moves = [
        {"enableAriManager": "false", "enableCampaignOrchestrator": "false"},
        {"rolloutStrategy": "recreate", "apiImage": SWITCHES_IGNORED_API_TAG},
        {"rolloutStrategy": "recreate"},  # 1.45.0 again, then zeroDowntime
        {},
    ]
    once = dict.fromkeys(SINGLETONS, 1)
    expected_after = [{}, once, once, once]
    for settings, expected in zip(moves, expected_after, strict=True):
        with SingletonWatch(stack.client, PREFIX) as watch:
            stack.apply(fastapiWorkers=4, **settings)
            settled = stack.wait_until(lambda: stack.singletons() == expected, 30)  # noqa: B023
        assert settled, (settings, stack.singletons())
        assert max(watch.most.values(), default=0) <= 1, (settings, dict(watch.most))
        if settings.get("apiImage"):
            assert not stack.client.containers.list(
                all=True, filters={"name": f"{PREFIX}-api-singletons"}
            )
        assert stack.workers_answering(16) == {0, 1, 2, 3}


@standin_only("the held calls are the api stand-in's test-only WebSocket")
def test_with_two_api_containers_a_crashed_worker_costs_only_its_own_containers_calls(stack):
    """apiContainers: one crashed worker ends its container's start script (set -e, wait -n)
    and Docker restarts that container alone; nginx retries its requests on the other one."""
    stack.apply(fastapiWorkers=4, apiContainers=2)
    first, second = stack.api_containers()
    restarts_before = second.attrs["RestartCount"]
    failed: list[str] = []
    sent = 0
    with stack.calls(12) as calls:
        on_second = probe_active_calls(second.name, None).calls
        assert on_second is not None and 0 < on_second < len(calls), on_second
        stop = threading.Event()

        def requests_through_nginx() -> None:
            nonlocal sent
            while not stop.is_set():
                try:
                    status = https_get(HTTPS_PORT, "/api/v1/health")[0]
                except OSError as error:
                    status = type(error).__name__
                sent += 1
                if status != 200:
                    failed.append(str(status))
                time.sleep(0.05)

        load = threading.Thread(target=requests_through_nginx, daemon=True)
        load.start()
        top = second.top(ps_args="-eo pid,args")["Processes"]
        (pid,) = [int(row[0]) for row in top if "--port 8001" in row[1] and "uvicorn" in row[1]]
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        def back() -> bool:
            state = stack.client.containers.get(second.name).attrs
            answering = {(s.address, s.port) for s in stack.served(16)}
            return (
                state["RestartCount"] > restarts_before
                and state["State"]["Health"]["Status"] == "healthy"
                and len(answering) == 4
            )

        assert stack.wait_until(back, timeout=90, interval=0.5), "the container did not return"
        recovered = time.monotonic() - started
        stop.set()
        load.join(timeout=10)
        cut = [call for call in calls if not call.still_open(0.05)]
    print(
        f"\nkilled a worker of {second.name}: back in {recovered:.1f}s, {sent} requests, "
        f"{len(failed)} failed, {len(cut)} of {len(calls)} calls cut ({on_second} were on it)"
    )
    assert failed == [], failed
    assert len(cut) == on_second
    assert (
        first.attrs["RestartCount"] == stack.client.containers.get(first.name).attrs["RestartCount"]
    )


# The first worker answers: the container is up.
PROBE = (
    "import os, urllib.request; "
    "urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['UVICORN_BASE_PORT']}/api/v1/health\")"
)


def _drain_hook(timeout_seconds: int, poll_seconds: float) -> pulumi.ResourceHook:
    """The program's drain hook, as `pulumi up` would call it on the local Docker host. (A
    hook registers itself on an event loop when made; this one is never registered.)"""
    asyncio.set_event_loop(asyncio.new_event_loop())
    return drain_api_generation_hook("drain-test", None, timeout_seconds, poll_seconds)


def _hook_args(container_name: str) -> pulumi.ResourceHookArgs:
    return pulumi.ResourceHookArgs(
        urn="urn:pulumi:enginetest::dograh::docker:index/container:Container::drain-test",
        id="", name="drain-test", type="docker:index/container:Container",
        old_outputs={"name": container_name},
    )  # fmt: skip
