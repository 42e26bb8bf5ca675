"""The engine's and the providers' rules that offline/changes.py and the engine tests' applier
follow, one test (at least) per rule, each on a declaration of the real program. No engine
needed: only planning, and the applier's hook call.

Every rule test fails when its rule is taken out: it sets up the case the rule decides.
"""

import dataclasses

import pytest

from components.container import go_duration_string
from offline.changes import (
    cut_by_timeouts,
    inputs_after_ignore_changes,
    parse_duration_ns,
    plan_changes,
    recorded,
)
from offline.declare import CONTAINER, Declaration, DeclaredResource, declare, stack_config
from tests.engine.applier import ApplyError, EngineApplier

CONFIG = stack_config("dev")


def applied(declaration: Declaration) -> EngineApplier:
    """An applier whose state is `declaration` as the provider would have recorded it."""
    applier = EngineApplier(client=None)  # planning never touches the engine
    applier.state = recorded(declaration)
    return applier


def container(declaration: Declaration, service: str) -> DeclaredResource:
    return declaration.containers()[f"dograh-dev-{service}"]


def with_resource(declaration: Declaration, changed: DeclaredResource) -> Declaration:
    resources = [changed if r.urn == changed.urn else r for r in declaration.resources]
    return dataclasses.replace(declaration, resources=resources)


def with_container_inputs(declaration: Declaration, service: str, **inputs) -> Declaration:
    """The declaration with these inputs, and the outputs a provider would echo for them."""
    resource = container(declaration, service)
    return with_resource(
        declaration,
        dataclasses.replace(
            resource,
            inputs={**resource.inputs, **inputs},
            outputs={**resource.outputs, **inputs},
        ),
    )


# ---- rule 1: state is what the provider read back -----------------------------------------


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(0, "0s"), (5, "5s"), (90, "1m30s"), (120, "2m0s"), (3600, "1h0m0s"), (3725, "1h2m5s")],
)
def test_durations_are_written_back_as_go_does(seconds, written):
    assert go_duration_string(seconds * 1_000_000_000) == written
    assert parse_duration_ns(written) == seconds * 1_000_000_000
    assert go_duration_string(1_500_000_000) == "1.5s"
    assert go_duration_string(500_000_000) == "500ms"


def test_a_health_check_written_120s_is_replaced_on_every_run():
    """The old program's api check: unchanged, yet replaced, because state says "2m0s"."""
    current = declare("dev", config=CONFIG)
    redis = container(current, "redis")
    check = {**redis.inputs["healthcheck"], "startPeriod": "120s"}
    written_120s = with_container_inputs(current, "redis", healthcheck=check)
    plan = applied(written_120s).plan(written_120s)
    assert plan.step("dograh-redis-container").op == "replace"
    assert plan.step("dograh-redis-container").changed == ["healthcheck"]


@pytest.mark.parametrize("strategy", ["zeroDowntime", "recreate"])
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_program_applied_twice_is_a_no_op(stack, strategy):
    config = {**stack_config(stack), "dograh:rolloutStrategy": strategy}
    secrets = {"tlsCertificate": "PEM", "tlsPrivateKey": "PEM"} if stack == "prod" else None
    first = declare(stack, config=config, secrets=secrets)
    again = declare(stack, config=config, secrets=secrets)
    plan = plan_changes(recorded(first), again)
    assert {step.name: step.changed for step in plan.steps if step.op != "same"} == {}


def test_ports_compare_as_the_provider_suppresses_them_in_any_order():
    current = declare("dev", config=CONFIG)
    gateway = container(current, "gateway")
    applier = applied(current)
    state = applier.state[gateway.urn]
    applier.state[gateway.urn] = dataclasses.replace(
        state, outputs={**state.outputs, "ports": list(reversed(state.outputs["ports"]))}
    )
    assert applier.plan(current).step("dograh-gateway-container").op == "same"


# ---- rule 2: ignore_changes keeps old inputs in the diff, not in a replacement ---------------


def ignoring_uploads(declaration: Declaration) -> Declaration:
    gateway = container(declaration, "gateway")
    return with_resource(declaration, dataclasses.replace(gateway, ignore_changes=["uploads"]))


def test_an_ignored_input_alone_changes_nothing():
    before = ignoring_uploads(declare("dev", config=CONFIG))
    rotated = with_container_inputs(before, "gateway", uploads=[{"file": "/x", "content": "new"}])
    assert applied(before).plan(rotated).step("dograh-gateway-container").op == "same"


def test_an_ignored_input_is_put_back_for_the_diff_and_the_update():
    before = ignoring_uploads(declare("dev", config=CONFIG))
    after = with_container_inputs(before, "gateway", uploads=[{"file": "/x", "content": "new"}])
    merged = inputs_after_ignore_changes(container(after, "gateway"), container(before, "gateway"))
    assert merged["uploads"] == container(before, "gateway").inputs["uploads"]


def test_a_replacement_is_created_with_the_programs_value_of_an_ignored_input():
    """step_generator.go re-checks goal.Properties once it decides to replace."""
    before = ignoring_uploads(declare("dev", config=CONFIG))
    after = with_container_inputs(
        before, "gateway", uploads=[{"file": "/x", "content": "new"}], image="nginx:other"
    )
    step = applied(before).plan(after).step("dograh-gateway-container")
    assert (step.op, step.changed) == ("replace", ["image"])
    # The applier creates from the declared inputs, not the merged ones.
    assert container(after, "gateway").inputs["uploads"] == [{"file": "/x", "content": "new"}]


# ---- rule 3: a failed create stays in state with an init error -------------------------------


def test_a_failed_create_is_updated_without_a_diff_which_clears_its_error():
    current = declare("dev", config=CONFIG)
    applier = applied(current)
    redis = container(current, "redis")
    applier.state[redis.urn] = dataclasses.replace(
        applier.state[redis.urn], init_error="container failed to be in healthy state"
    )
    step = applier.plan(current).step("dograh-redis-container")
    assert (step.op, step.changed) == ("update", [])
    assert "init error" in step.reason


def test_the_old_half_of_a_failed_replacement_is_deleted_at_the_end_of_the_next_run():
    current = declare("dev", config=CONFIG)
    applier = applied(current)
    old_redis = applier.state[container(current, "redis").urn]
    applier.pending_deletes = [old_redis]
    steps = applier.plan(current).steps
    assert steps[-1].op == "delete" and steps[-1].pending and steps[-1].urn == old_redis.urn
    assert all(step.op == "same" for step in steps[:-1])


# ---- rule 4: hooks are called by name, and must be registered by this run --------------------


def test_a_delete_whose_hook_this_run_did_not_register_fails():
    current = declare("dev", config=CONFIG)
    generation = next(r for r in current.custom(CONTAINER) if r.before_delete_hooks)
    applier = EngineApplier(client=None)
    applier.hooks = {}
    with pytest.raises(ApplyError, match="hook 'dograh-api-drain' was not registered"):
        applier._run_before_delete_hooks(generation)


def test_destroy_without_the_program_fails_on_a_resource_with_hooks():
    current = declare("dev", config=CONFIG)
    applier = applied(current)
    with pytest.raises(ApplyError, match="run with --run-program; nothing was deleted"):
        applier.destroy(exclude_protected=True)


def test_destroy_stops_on_protected_volumes_unless_they_are_excluded():
    current = declare("dev", config=CONFIG)
    with pytest.raises(ApplyError, match=r"dograh-postgres-data.* are protected"):
        applied(current).destroy(current)


def test_exclude_protected_keeps_the_protected_and_what_they_depend_on():
    kept = applied(declare("dev", config=CONFIG))._protected_and_their_dependencies()
    assert {urn.split("::")[-1] for urn in kept} == {
        "dograh-postgres-data",
        "dograh-redis-data",
        "dograh-minio-data",
        "dograh-gateway-issued-certificates",
        "dograh-docker-host",  # the provider that manages them
    }


# ---- rule 5: a delete-before-replace replacement takes down what is built from it ------------


def with_env_from(declaration: Declaration, service: str, source: str) -> Declaration:
    """The old program's wiring: the api's environment built from a data container's id."""
    target = next(
        r for r in declaration.custom(CONTAINER) if r.name.startswith(f"dograh-{service}-")
    )
    deps = {**target.property_dependencies}
    deps["envs"] = [*deps.get("envs", []), container(declaration, source).urn]
    return with_resource(declaration, dataclasses.replace(target, property_dependencies=deps))


def test_replacing_a_container_first_deletes_containers_whose_inputs_come_from_it():
    before = with_env_from(declare("dev", config=CONFIG), "api-singletons", "postgres")
    after = with_env_from(
        declare("dev", config={**CONFIG, "dograh:postgresImage": "pgvector/pgvector:0.8.1-pg17"}),
        "api-singletons",
        "postgres",
    )
    plan = applied(before).plan(after)
    singletons = plan.step("dograh-api-singletons-container")
    assert (singletons.op, singletons.delete_first) == ("replace", True)
    assert "dograh-postgres-container" in singletons.reason


def test_a_depends_on_edge_alone_does_not_cascade():
    before = declare("dev", config=CONFIG)
    after = declare(
        "dev", config={**CONFIG, "dograh:postgresImage": "pgvector/pgvector:0.8.1-pg17"}
    )
    api = next(r for r in after.custom(CONTAINER) if r.before_delete_hooks)
    assert container(after, "postgres").urn in api.dependencies
    assert applied(before).plan(after).names("replace", "create", "delete") == {
        "dograh-postgres-image",
        "dograh-postgres-container",
    }


# ---- limits: waits the provider would cut ---------------------------------------------------


def test_a_health_wait_beyond_the_default_create_timeout_would_be_cut():
    current = declare("dev", config=CONFIG)
    redis = container(current, "redis")
    long_wait = dataclasses.replace(
        redis, inputs={**redis.inputs, "waitTimeout": 1500}, custom_timeouts={}
    )
    assert "create timeout is 1200s" in cut_by_timeouts(long_wait)


# ---- the docker provider's replace/update rules (unchanged) ---------------------------------


def test_recreate_a_new_worker_count_replaces_the_api_and_nginx_only():
    recreate = {**CONFIG, "dograh:rolloutStrategy": "recreate"}
    applier = applied(declare("dev", config={**recreate, "dograh:fastapiWorkers": "2"}))
    plan = applier.plan(declare("dev", config={**recreate, "dograh:fastapiWorkers": "3"}))
    assert plan.names("replace", "create", "delete") == {
        "dograh-api-container",
        "dograh-gateway-container",
    }


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
    ui = container(current, "ui")
    with pytest.raises(ApplyError, match=r"inputs \['privileged'\] are not implemented"):
        applier._only(
            dataclasses.replace(ui, inputs={**ui.inputs, "privileged": True}),
            {"name"} | set(ui.inputs),
        )


HOSTS = {
    "privateAddress": "10.0.0.11",
    "apiHosts": '[{"name": "h2", "dockerHost": "tcp://10.0.0.12:2375", "address": "10.0.0.12"}]',
}


class _Unreachable:
    """A Docker client whose host does not answer."""

    def ping(self):
        raise __import__("docker").errors.DockerException("connection refused")


def test_a_resource_goes_to_its_providers_host_and_an_unreachable_host_fails_naming_it():
    declaration = declare("dev", HOSTS)
    applier = applied(declaration)
    applier.pending = declaration
    local = container(declaration, "postgres")
    remote = declaration.by_name("dograh-host-h2-container")
    assert applier._engine(local) is None  # the local engine (client=None here)
    applier.remote_engines["tcp://10.0.0.12:2375"] = _Unreachable()
    with pytest.raises(ApplyError) as refused:
        applier._engine(remote)
    assert str(refused.value).startswith(
        "dograh-host-h2-container: Error pinging Docker server, please make sure that "
        "tcp://10.0.0.12:2375 is reachable"
    )


def test_a_host_removed_from_the_program_is_still_reached_through_the_provider_in_state():
    with_host, without = declare("dev", HOSTS), declare("dev")
    applier = applied(with_host)
    applier.pending = without
    remote = with_host.by_name("dograh-host-h2-container")
    answering = object.__new__(_Unreachable)
    answering.ping = lambda: True  # type: ignore[method-assign]
    applier.remote_engines["tcp://10.0.0.12:2375"] = answering
    assert applier._engine(remote) is answering
    # ... and deleted before its provider: the provider is one of its dependencies.
    provider = next(urn for urn in applier.state if urn.endswith("::dograh-host-h2-docker"))
    order = applier._topological([remote.urn, provider], applier.state, reverse=True)
    assert order == [remote.urn, provider]


def test_a_step_waits_for_a_changing_resource_it_depends_on_through_unchanged_ones():
    # nginx's reload depends on the api container, which depends on minio: with the api
    # unchanged and minio replaced, the reload still runs after minio is back (the SDK
    # registers the api container only once minio's registration has returned).
    declaration = declare("dev")
    by_urn = {r.urn: r for r in declaration.custom()}
    reload = declaration.by_name("dograh-gateway-reload")
    minio = container(declaration, "minio")
    assert minio.urn not in reload.dependencies  # only through the api container
    order: list[str] = []
    applied(declaration)._run_in_dependency_order(
        [reload.urn, minio.urn], by_urn, lambda resource: order.append(resource.name)
    )
    assert order == [minio.name, reload.name]
