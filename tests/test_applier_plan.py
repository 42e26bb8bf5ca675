"""How the engine tests' applier reads a change: the docker provider's replace/update rules,
applied to what the program declares. No engine needed: only planning."""

import dataclasses

import pytest

from offline.declare import Declaration, declare, stack_config
from tests.engine.applier import ApplyError, EngineApplier

CONFIG = stack_config("dev")


def applied(declaration: Declaration) -> EngineApplier:
    applier = EngineApplier(client=None)  # planning never touches the engine
    applier.state = {r.urn: r for r in declaration.custom()}
    return applier


def with_container_inputs(declaration: Declaration, service: str, **inputs) -> Declaration:
    resources = []
    for resource in declaration.resources:
        if (
            resource.type.endswith("Container")
            and resource.inputs["name"] == f"dograh-dev-{service}"
        ):
            resource = dataclasses.replace(resource, inputs={**resource.inputs, **inputs})
        resources.append(resource)
    return dataclasses.replace(declaration, resources=resources)


def test_recreate_a_new_worker_count_replaces_the_api_and_nginx_only():
    recreate = {**CONFIG, "dograh:rolloutStrategy": "recreate"}
    applier = applied(declare("dev", config={**recreate, "dograh:fastapiWorkers": "2"}))
    plan = applier.plan(declare("dev", config={**recreate, "dograh:fastapiWorkers": "3"}))
    assert plan.names("replace", "create", "delete") == {
        "dograh-api-container",
        "dograh-gateway-container",
    }


def test_zero_downtime_a_new_worker_count_replaces_the_generation_and_reruns_the_reload():
    applier = applied(declare("dev", config={**CONFIG, "dograh:fastapiWorkers": "2"}))
    plan = applier.plan(declare("dev", config={**CONFIG, "dograh:fastapiWorkers": "3"}))
    assert plan.names("replace", "create", "delete") == {
        "dograh-api-container",
        "dograh-gateway-reload",
    }
    # The gateway's uploads changed, but the program ignores them: nginx is reloaded instead.
    assert "dograh-gateway-container" in plan.names("same")


def test_a_restart_policy_change_is_an_in_place_update():
    current = declare("dev", config=CONFIG)
    plan = applied(current).plan(with_container_inputs(current, "redis", restart="always"))
    assert plan.names("update") == {"dograh-redis-container"}
    assert not plan.names("replace")


def test_a_health_check_change_is_a_replacement_because_the_program_asks_for_one():
    current = declare("dev", config=CONFIG)
    changed = with_container_inputs(current, "redis", healthcheck={"tests": ["CMD", "true"]})
    plan = applied(current).plan(changed)
    assert plan.names("replace") == {"dograh-redis-container"}


def test_a_protected_volume_is_never_replaced():
    current = declare("dev", config=CONFIG)
    resources = [
        dataclasses.replace(r, inputs={**r.inputs, "name": "renamed"})
        if r.name == "dograh-postgres-data"
        else r
        for r in current.resources
    ]
    with pytest.raises(ApplyError, match="dograh-postgres-data is protected"):
        applied(current).plan(dataclasses.replace(current, resources=resources))


def test_an_input_the_applier_does_not_implement_fails_loudly():
    current = declare("dev", config=CONFIG)
    applier = EngineApplier(client=None)
    container = current.containers()["dograh-dev-ui"]
    with pytest.raises(ApplyError, match=r"inputs \['privileged'\] are not implemented"):
        applier._only(
            dataclasses.replace(container, inputs={**container.inputs, "privileged": True}),
            {"name"} | set(container.inputs),
        )
