"""The declared stack on a real Docker engine, end to end.

The scenarios run in order on one stack (module scope): up with 2 workers, change to 4,
refuse 0, hold 200 calls, lose a worker.
"""

from collections import Counter

import pytest

from tests.engine.applier import ApplyError
from tests.engine.harness import HTTPS_PORT, PREFIX, engine_stack

DATA_SERVICES = ("postgres", "redis", "minio")


@pytest.fixture(scope="module")
def stack():
    with engine_stack() as (stack, _report):
        stack.apply(fastapiWorkers=2)
        yield stack


@pytest.fixture(scope="module")
def before_change(stack):
    """What the 2 -> 4 change must keep: data, container ids, secrets."""
    stack.psql("INSERT INTO calls (note) VALUES ('written before the change')")
    stack.s3("s3.put_object(Bucket=bucket, Key='calls/before.wav', Body=b'RIFF-before')")
    return {
        "ids": {
            service: stack.container(service).id for service in (*DATA_SERVICES, "ui", "gateway")
        },
        "secrets": stack.secrets(),
        "jwt_in_api": stack.env("api")["OSS_JWT_SECRET"],
    }


def test_two_workers_all_healthy_and_answering_through_nginx(stack):
    for service in (*DATA_SERVICES, "api", "api-singletons", "ui"):
        health = stack.container(service).attrs["State"]["Health"]["Status"]
        assert health == "healthy", service
    answers = [stack.health() for _ in range(20)]
    assert {status for status, _ in answers} == {200}
    assert {body["worker"] for _, body in answers} == {0, 1}
    assert {body["port"] for _, body in answers} == {8000, 8001}
    for _, body in answers:
        assert (body["postgres"], body["redis"], body["s3"]) == ("ok", "ok", "ok")
        assert body["scheme"] == "https"  # uvicorn trusted nginx's X-Forwarded-Proto


def test_a_websocket_through_nginx_opens_and_stays_open(stack):
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
    assert planned.names("replace") == {"dograh-gateway-reload"}
    stack.apply(fastapiWorkers=4)

    assert stack.workers_answering(24) == {0, 1, 2, 3}
    for service, container_id in before_change["ids"].items():
        assert stack.container(service).id == container_id, f"{service} was recreated"
    assert stack.psql("SELECT note FROM calls") == "written before the change"
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


def test_two_hundred_calls_spread_evenly_over_four_workers(stack):
    with stack.calls(200) as calls:
        per_worker = Counter(call.worker for call in calls)
        assert set(per_worker) == {0, 1, 2, 3}
        assert max(per_worker.values()) - min(per_worker.values()) <= 1, per_worker
        assert all(call.still_open(0.05) for call in calls[:10])


def test_a_killed_worker_brings_the_api_back_through_its_restart_policy(stack):
    api = stack.container("api")
    restarts_before = api.attrs["RestartCount"]
    killed = api.exec_run(["pkill", "-KILL", "-f", "uvicorn.*--port 8001"])
    assert killed.exit_code == 0, "no worker on 8001 to kill"
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
