"""apiHosts on real engines (`scripts/test.sh hosts`): the main host and two api hosts, each a
real dockerd, h3 reached over ssh:// (tests/engine/multihost.py). In order, on one stack, with
load through the one gateway: 3 hosts x 2 workers spread 200 held calls; one host's worker
count changes under load; a host's containers are replaced and a host is removed, each taken
out of nginx and drained first, and the host added back; an api image is rolled across every
host; one host's engine stops. (A worker killed in one of two api
containers on one host is the engine layer's test_with_two_api_containers_….)
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from tests.clients import WebSocketCall
from tests.engine.applier import ApplyError
from tests.engine.harness import PREFIX, SINGLETONS, standin_only
from tests.engine.hosts import PRIVATE_ADDRESS
from tests.engine.images import NEXT_API_TAG, REAL_IMAGES
from tests.engine.load import RolloutLoad
from tests.engine.multihost import api_image, multi_host_stack, spread, worker_of
from tests.engine.observe import SingletonWatch

ALL = ("h2", "h3")


@pytest.fixture(scope="module")
def multi():
    with multi_host_stack() as multi:
        # As a user upgrades: one host first, then the api hosts (postgres, redis and minio
        # are recreated to publish on the private address; their data stays).
        multi.apply(())
        multi.stack.psql(
            "CREATE TABLE IF NOT EXISTS kept (note text); INSERT INTO kept VALUES ('before')"
        )
        multi.apply(ALL)
        assert multi.stack.psql("SELECT note FROM kept") == "before"
        yield multi


def addresses_served(multi, requests: int = 24) -> set[str]:
    return {served.address for served in multi.stack.served(requests)}


def container_ids(multi, name: str) -> list[str]:
    return [c.id for c in multi.remote_api_containers(name)]


def change_under_load(multi, names, workers=None, calls: int = 12, **settings):
    """Apply with steady requests and held calls (ended by the client 3 s after traffic
    reaches another api container than the first: at once here, several hosts serve)."""
    with (
        SingletonWatch(multi.stack.client, PREFIX) as watch,
        RolloutLoad(multi.stack, requests_per_second=40, calls=calls) as load,
    ):
        started = time.monotonic()
        plan = multi.apply(names, workers, **settings)
        seconds = time.monotonic() - started
        report = load.stop()
    print(f"\n{settings or workers or names}: {report.as_dict()}, {seconds:.1f} s")
    assert dict(watch.most) == dict.fromkeys(SINGLETONS, 1)
    return plan, report


def test_three_hosts_run_their_workers_on_their_own_addresses_behind_one_upstream(multi):
    assert addresses_served(multi, 40) >= {"10.210.0.2", "10.210.0.3"}
    for name in ALL:
        host = multi.host(name)
        (container,) = multi.remote_api_containers(name)
        bindings = container.attrs["NetworkSettings"]["Ports"]
        assert {b["HostIp"] for found in bindings.values() for b in found} == {host.address}
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        assert env["ARQ_WORKERS"] == "0" and env["ENABLE_ARI_MANAGER"] == "false"
        assert f"@{PRIVATE_ADDRESS}:5432/" in env["DATABASE_URL"]
    postgres = multi.stack.container("postgres").attrs["NetworkSettings"]["Ports"]
    assert {b["HostIp"] for found in postgres.values() for b in found} == {PRIVATE_ADDRESS}
    assert multi.singletons() == dict.fromkeys(SINGLETONS, 1)


@standin_only("a held call without a workflow exists only on the stand-in")
def test_two_hundred_calls_spread_evenly_over_the_six_workers_of_three_hosts(multi):
    with multi.stack.calls(200) as calls:
        per_worker = spread(calls)
        print(f"\nheld calls per worker: {sorted(per_worker.values())}")
        assert len(per_worker) == 6
        assert max(per_worker.values()) / min(per_worker.values()) <= 1.05, per_worker


def test_changing_one_hosts_workers_touches_only_that_hosts_api(multi):
    h3_before, main_before = container_ids(multi, "h3"), multi.stack.container("api").id
    plan, report = change_under_load(multi, ALL, workers={"h2": 3})
    replaced = {s.name for s in plan.steps if s.op != "same" and s.name.endswith("-container")}
    assert replaced == {"dograh-host-h2-container"}
    assert report.failed_requests == 0 and report.calls_cut_early == 0
    assert container_ids(multi, "h3") == h3_before
    assert multi.stack.container("api").id == main_before
    assert multi.stack.wait_until(
        lambda: ("10.210.0.2", 8002) in {(s.address, s.port) for s in multi.stack.served(30)},
        timeout=20,
    )


def gateway_config(multi) -> str:
    return multi.stack.exec("gateway", "cat /etc/nginx/dograh/nginx.conf")


def drained_out_first(multi, name: str, address: str, change) -> None:
    """Hold calls until some are on `name`; apply `change` in a thread; while those calls are
    open, nginx must send that host nothing new and its container must still run (the apply
    waits); once they end, the apply finishes."""
    (container,) = multi.remote_api_containers(name)
    calls = [WebSocketCall(multi.stack.https_port) for _ in range(9)]
    on_host = [call for call in calls if worker_of(call)[0] == container.id[:12]]
    assert on_host, f"least_conn gave none of 9 calls to {name}'s workers"
    failure: list[BaseException] = []

    def apply() -> None:
        try:
            change()
        except BaseException as error:  # reported below
            failure.append(error)

    applying = threading.Thread(target=apply)
    applying.start()
    try:
        assert multi.stack.wait_until(lambda: address not in addresses_served(multi), 60)
        time.sleep(3)
        assert applying.is_alive(), "the apply did not wait for the host's calls"
        assert container.id in [c.id for c in multi.remote_api_containers(name)]
        assert all(call.still_open(0.05) for call in on_host)  # not cut
    finally:
        for call in calls:
            call.close()
    applying.join(timeout=120)
    assert not failure, failure


@standin_only("a held call without a workflow exists only on the stand-in")
def test_replacing_a_hosts_containers_marks_them_down_in_nginx_and_drains_them_first(multi):
    def fewer_workers() -> None:
        multi.apply(ALL)  # h2: 3 -> 2 workers, the stack's fastapiWorkers

    drained_out_first(multi, "h2", "10.210.0.2", fewer_workers)
    assert "10.210.0.2:8000 down" not in gateway_config(multi)  # back in the upstream
    assert multi.stack.wait_until(lambda: "10.210.0.2" in addresses_served(multi), 30)
    assert {(s.address, s.port) for s in multi.stack.served(40)} >= {
        ("10.210.0.2", 8000),
        ("10.210.0.2", 8001),
    }


@standin_only("a held call without a workflow exists only on the stand-in")
def test_removing_a_host_takes_it_out_of_nginx_and_drains_its_calls_first(multi):
    drained_out_first(multi, "h3", "10.210.0.3", lambda: multi.apply(["h2"]))
    assert "10.210.0.3" not in gateway_config(multi)
    assert multi.remote_api_containers("h3") == []
    assert multi.client("h3").networks.list(names=[f"{PREFIX}-net"]) == []
    # Added back: started, then in the upstream.
    multi.apply(ALL)
    assert multi.stack.wait_until(lambda: "10.210.0.3" in addresses_served(multi), 30)


class DownWatch:
    """Reads nginx's live config every half second: the most hosts marked down at once."""

    def __init__(self, multi):
        self.multi, self.most, self.seen = multi, 0, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                config = gateway_config(self.multi)
            except Exception:  # the gateway is being written to; look again
                config = ""
            down = set(re.findall(r"server (10\.210\.0\.\d+):\d+ down", config))
            self.seen |= down
            self.most = max(self.most, len(down))
            time.sleep(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_an_api_image_change_rolls_across_every_host_without_a_failed_request_or_cut_call(multi):
    with DownWatch(multi) as down:
        _, report = change_under_load(multi, ALL, calls=20, apiImage=NEXT_API_TAG)
    # Host by host: each api host out of nginx in its turn, never two at once.
    assert down.seen == {"10.210.0.2", "10.210.0.3"} and down.most == 1, (down.seen, down.most)
    assert report.requests >= 40
    assert report.failed_requests == 0 and report.calls_cut_early == 0
    for name in ALL:
        assert {c.image.tags[0] for c in multi.remote_api_containers(name)} == {NEXT_API_TAG}
    assert multi.singletons() == dict.fromkeys(SINGLETONS, 1)


def test_a_host_whose_engine_stops_costs_no_request_and_the_next_up_names_it(multi):
    h3 = multi.host("h3")  # the one reached over ssh://
    on_h3 = {c.id[:12] for c in multi.remote_api_containers("h3")}
    # Held calls need the stand-in's endpoint; with a real api image, requests only.
    held = 0 if "apiImage" in REAL_IMAGES else 12
    calls = [WebSocketCall(multi.stack.https_port) for _ in range(held)]
    h3.stop_engine()
    try:
        with RolloutLoad(multi.stack, requests_per_second=40, calls=0) as load:
            time.sleep(15)
            report = load.stop()
        cut = [call for call in calls if not call.still_open(0.05)]
        print(
            f"\nh3's engine stopped: {report.as_dict()}; calls cut: {len(cut)} of {len(calls)}, "
            f"{sum(worker_of(c)[0] in on_h3 for c in calls)} of them were on h3"
        )
        assert report.failed_requests == 0
        # What a host failure costs: the calls it held, and nothing else.
        if calls:
            assert cut
            assert {id(c) for c in cut} == {id(c) for c in calls if worker_of(c)[0] in on_h3}
        for call in calls:
            call.close()
        assert "10.210.0.3" not in addresses_served(multi)
        with pytest.raises(ApplyError) as refused:
            multi.apply(ALL, apiImage=api_image(), drainTimeoutSeconds=5)
        message = str(refused.value)
        print(f"\npulumi up with h3 down: {message[:400]}")
        assert "dograh-host-h3" in message and h3.docker_url in message
    finally:
        h3.start_engine()
    # Back: the next `pulumi up` finishes the rollout.
    multi.apply(ALL, apiImage=api_image())
    assert multi.stack.wait_until(lambda: "10.210.0.3" in addresses_served(multi), 30)
