"""apiContainers: one generation's workers over several containers (a crashed worker restarts
only its own), under Pulumi's mocks. The engine layer kills a worker under load."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.api import worker_shares
from offline.changes import plan_changes, recorded
from offline.declare import CONTAINER, Declaration, DeclaredResource, declare, reveal
from tests.test_program import envs, upstream

WORKERS = re.compile(r"^dograh-dev-api(-[0-9a-f]{6})?(-\d+)?$")


def workers(declaration: Declaration) -> list[DeclaredResource]:
    """The containers running uvicorn workers, in their order (api-<generation>-1, -2, ...)."""
    found = [r for r in declaration.custom(CONTAINER) if WORKERS.match(r.inputs["name"])]
    return sorted(found, key=lambda r: int((WORKERS.match(r.inputs["name"]).group(2) or "-0")[1:]))


def alias(container: DeclaredResource) -> str:
    return reveal(container.inputs["networksAdvanced"])[0]["aliases"][0]


@pytest.mark.parametrize(
    "total, containers, shares",
    [(4, 1, [4]), (4, 2, [2, 2]), (5, 2, [3, 2]), (7, 3, [3, 2, 2]), (16, 16, [1] * 16)],
)
def test_workers_are_shared_as_evenly_as_possible(total, containers, shares):
    assert worker_shares(total, containers) == shares


def test_more_containers_than_workers_cannot_be_shared():
    with pytest.raises(ValueError, match="3 api containers cannot share 2 workers"):
        worker_shares(2, 3)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_the_containers_envs_and_the_nginx_upstream_agree(data):
    total = data.draw(st.integers(min_value=1, max_value=24), label="fastapiWorkers")
    count = data.draw(st.integers(min_value=1, max_value=min(total, 16)), label="apiContainers")
    declaration = declare("dev", {"fastapiWorkers": str(total), "apiContainers": str(count)})
    assert declaration.error is None, declaration.error
    containers = workers(declaration)
    assert len(containers) == count
    expected = [
        (alias(container), port)
        for container in containers
        for port in range(8000, 8000 + int(envs(container)["FASTAPI_WORKERS"]))
    ]
    assert upstream(declaration) == expected
    assert len(expected) == total
    # One generation: every container's name carries the same id.
    generations = {container.inputs["name"].split("-")[3] for container in containers}
    assert len(generations) == 1


@pytest.fixture(scope="module")
def two() -> Declaration:
    declaration = declare("dev", {"fastapiWorkers": "5", "apiContainers": "2", "arqWorkers": "3"})
    assert declaration.error is None, declaration.error
    return declaration


def test_arq_workers_run_in_the_first_container_only_and_the_singletons_apart(two):
    first, second = workers(two)
    assert (envs(first)["FASTAPI_WORKERS"], envs(first)["ARQ_WORKERS"]) == ("3", "3")
    assert (envs(second)["FASTAPI_WORKERS"], envs(second)["ARQ_WORKERS"]) == ("2", "0")
    for container in (first, second):
        assert envs(container)["ENABLE_ARI_MANAGER"] == "false"
        assert envs(container)["ENABLE_CAMPAIGN_ORCHESTRATOR"] == "false"
    singletons = [c for c in two.custom(CONTAINER) if c.name.endswith("-singletons-container")]
    assert len(singletons) == 1


def test_the_health_gate_and_the_reload_wait_for_every_container_of_the_generation(two):
    names = " ".join(container.inputs["name"] for container in workers(two))
    gate = reveal(two.by_name("dograh-api-healthy").inputs)
    assert gate["environment"]["API_CONTAINERS"] == names
    assert gate["triggers"] == [container.id for container in workers(two)]
    reload = reveal(two.by_name("dograh-gateway-reload").inputs)
    assert reload["environment"]["API_CONTAINERS"] == names
    # Each container is drained on its own when its generation goes.
    for container in workers(two):
        assert container.before_delete_hooks == ["dograh-api-drain"]
        assert container.delete_before_replace is False


def test_recreate_publishes_every_worker_of_the_api_on_its_own_loopback_port():
    declaration = declare(
        "dev",
        {
            "rolloutStrategy": "recreate",
            "publishInternalOnLoopback": "true",
            "fastapiWorkers": "5",
            "apiContainers": "2",
        },
    )
    assert declaration.error is None, declaration.error
    published = [
        (port["internal"], port["external"])
        for container in workers(declaration)
        for port in reveal(container.inputs["ports"])
    ]
    assert published == [(8000, 8000), (8001, 8001), (8002, 8002), (8000, 8003), (8001, 8004)]
    assert [c.inputs["name"] for c in workers(declaration)] == [
        "dograh-dev-api-1",
        "dograh-dev-api-2",
    ]


def test_going_from_one_container_to_two_starts_a_new_generation_beside_the_old():
    one, two = declare("dev"), declare("dev", {"apiContainers": "2"})
    steps = {s.name: s.op for s in plan_changes(recorded(one), two).steps if s.op != "same"}
    (old,) = workers(one)
    assert steps[old.name] == "delete"
    assert all(steps[container.name] == "create" for container in workers(two))
    assert "dograh-api-singletons-container" not in steps
