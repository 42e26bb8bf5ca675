"""rolloutStrategy=zeroDowntime on the real engine, under load through nginx.

In order, on one stack: 4 -> 6 workers, 6 -> 2, an api image change, then an image whose new
generation never gets healthy. Each change runs with steady HTTP requests and 20 held calls.
"""

import pytest

from tests.engine.applier import ApplyError
from tests.engine.harness import PREFIX, SINGLETONS, engine_stack
from tests.engine.images import NEXT_API_TAG, UNHEALTHY_API_TAG
from tests.engine.load import RolloutLoad
from tests.engine.observe import SingletonWatch

SETTINGS = {"drainTimeoutSeconds": 60, "apiStopGraceSeconds": 10, "apiHealthTimeoutSeconds": 40}


@pytest.fixture(scope="module")
def stack():
    with engine_stack() as (stack, _report):
        stack.apply(fastapiWorkers=4, **SETTINGS)
        yield stack


def api_generations(stack) -> list[str]:
    names = [
        c.name for c in stack.client.containers.list(all=True, filters={"name": f"{PREFIX}-api-"})
    ]
    return sorted(
        name for name in names if not name.endswith("-singletons") and "-api-migrate-" not in name
    )


def change_under_load(stack, **settings):
    before = api_generations(stack)
    with (
        SingletonWatch(stack.client, PREFIX) as watch,
        RolloutLoad(stack, requests_per_second=60, calls=20) as load,
    ):
        stack.apply(**SETTINGS, **settings)
        report = load.stop()
    print(f"\n{settings}: {report.as_dict()}; most singletons at once: {dict(watch.most)}")
    assert dict(watch.most) == dict.fromkeys(SINGLETONS, 1)
    return before, report


def assert_switched_without_loss(stack, before, report, workers):
    assert report.requests >= 60
    assert report.failed_requests == 0
    assert report.calls_cut_early == 0
    after = api_generations(stack)
    assert len(after) == 1 and after != before  # the old generation is gone, a new one serves
    assert stack.workers_answering(4 * workers) == set(range(workers))
    assert report.generations_seen == sorted([*before, *after])  # switched, nothing else


def test_four_to_six_workers_loses_no_request_and_cuts_no_call(stack):
    singletons_id = stack.container("api-singletons").id
    before, report = change_under_load(stack, fastapiWorkers=6)
    assert_switched_without_loss(stack, before, report, workers=6)
    assert stack.container("api-singletons").id == singletons_id  # untouched by a worker change


def test_six_to_two_workers_loses_no_request_and_cuts_no_call(stack):
    before, report = change_under_load(stack, fastapiWorkers=2)
    assert_switched_without_loss(stack, before, report, workers=2)


def test_an_api_image_change_loses_no_request_and_hands_the_singletons_over(stack):
    singletons_id = stack.container("api-singletons").id
    before, report = change_under_load(stack, fastapiWorkers=2, apiImage=NEXT_API_TAG)
    assert_switched_without_loss(stack, before, report, workers=2)
    assert stack.container("api-singletons").id != singletons_id
    assert stack.container("api-singletons").attrs["Config"]["Image"] == NEXT_API_TAG
    top = str(stack.container("api-singletons").top(ps_args="-eo pid,args")["Processes"])
    assert all(name in top for name in SINGLETONS)


def test_a_generation_that_never_gets_healthy_leaves_the_old_one_serving(stack):
    (serving,) = api_generations(stack)
    with RolloutLoad(stack, requests_per_second=60, calls=20) as load:
        with pytest.raises(ApplyError, match="did not become healthy"):
            stack.apply(
                **{**SETTINGS, "apiHealthTimeoutSeconds": 25},
                fastapiWorkers=2,
                apiImage=UNHEALTHY_API_TAG,
            )
        load.end_calls()
        report = load.stop()
    print(f"\nunhealthy generation: {report.as_dict()}")
    assert report.failed_requests == 0
    assert report.calls_cut_early == 0
    assert serving in api_generations(stack)
    assert stack.client.containers.get(serving).status == "running"
    assert stack.workers_answering(8) == {0, 1}
    assert report.generations_seen == [serving]
