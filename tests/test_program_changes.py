"""Changes to a running stack as real `pulumi up` plans them (offline/changes.py: the engine's
and the docker provider's rules), for the defects a home-made diff used to hide."""

import pytest

from offline.changes import cut_by_timeouts, plan_changes, recorded
from offline.declare import CONTAINER, Declaration, DeclaredResource, declare, reveal, stack_config
from tests.engine.images import NEXT_API_TAG

CONFIG = stack_config("dev")
DATA_SERVICES = ("postgres", "redis", "minio")


def dev(**settings: str) -> Declaration:
    config = {**CONFIG, **{f"dograh:{key}": value for key, value in settings.items()}}
    declaration = declare("dev", config=config)
    assert declaration.error is None, declaration.error
    return declaration


def workers_containers(declaration: Declaration) -> list[DeclaredResource]:
    """The containers of uvicorn workers (one, or apiContainers of them)."""
    return [r for r in declaration.custom(CONTAINER) if r.name.startswith("dograh-api-")
            and "singletons" not in r.name and "-migrate-" not in r.name]  # fmt: skip


def workers_container(declaration: Declaration) -> DeclaredResource:
    (container,) = workers_containers(declaration)
    return container


def changes(before: Declaration, after: Declaration) -> dict[str, str]:
    return {
        step.name: step.op
        for step in plan_changes(recorded(before), after).steps
        if step.op != "same"
    }


# Every kind of plain setting change a zeroDowntime stack can take, with a value it accepts.
SETTING_CHANGES = [
    ("fastapiWorkers", "3"),
    ("arqWorkers", "2"),
    ("apiContainers", "2"),
    ("apiImage", NEXT_API_TAG),
    ("publicHost", "dograh.example.com"),
    ("serverIp", "203.0.113.7"),
    ("httpsPort", "9443"),
    ("httpPort", "9080"),
    ("gatewayBindAddress", "0.0.0.0"),
    ("publishInternalOnLoopback", "true"),
    ("enableAriManager", "false"),
    ("apiStopGraceSeconds", "30"),
    ("apiHealthTimeoutSeconds", "200"),
    ("drainTimeoutSeconds", "60"),
    ("postgresImage", "pgvector/pgvector:0.8.1-pg17"),
    ("redisImage", "redis:7.4.3"),
    ("minioImage", "minio/minio:RELEASE.2025-05-24T17-08-30Z"),
    ("nginxImage", "nginx:1.27.6-alpine"),
]


@pytest.mark.parametrize(("key", "value"), SETTING_CHANGES)
def test_an_api_generation_is_never_replaced_under_its_own_docker_name(key, value):
    """Create-before-delete under an unchanged Docker name is a name conflict: whatever would
    make the provider replace the generation must give it a new name (a new resource)."""
    before, after = dev(), dev(**{key: value})
    step = changes(before, after).get(workers_container(before).name)
    assert step != "replace", f"{key}: the generation would be replaced under its own name"
    if step == "delete":
        new_names = {container.inputs["name"] for container in workers_containers(after)}
        assert workers_container(before).inputs["name"] not in new_names


def test_loopback_publishing_never_binds_two_generations_to_one_port():
    loopback = dev(publishInternalOnLoopback="true")
    assert reveal(workers_container(loopback).inputs).get("ports") is None
    published = {
        (port["ip"], port["external"])
        for r in loopback.custom(CONTAINER)
        for port in reveal(r.inputs).get("ports") or []
    }
    assert ("127.0.0.1", 5432) in published


def test_a_rotated_certificate_reaches_nginx_through_a_new_gateway():
    first = {"tlsCertificate": "-----BEGIN CERTIFICATE-----\none", "tlsPrivateKey": "key one"}
    second = {"tlsCertificate": "-----BEGIN CERTIFICATE-----\ntwo", "tlsPrivateKey": "key two"}
    config = {**CONFIG, "dograh:tlsMode": "provided"}
    before = declare("dev", config=config, secrets=first)
    after = declare("dev", config=config, secrets=second)
    planned = changes(before, after)
    assert planned["dograh-gateway-container"] == "replace"
    assert planned["dograh-gateway-reload"] == "replace"  # writes the config into the new one


def test_switching_to_recreate_registers_the_hook_the_last_generation_is_deleted_with():
    zero_downtime, recreate = dev(), dev(rolloutStrategy="recreate")
    deleted = workers_container(zero_downtime)
    assert changes(zero_downtime, recreate)[deleted.name] == "delete"
    assert deleted.before_delete_hooks
    assert set(deleted.before_delete_hooks) <= set(recreate.hooks)


@pytest.mark.parametrize("service", DATA_SERVICES)
def test_a_data_service_image_change_touches_that_service_alone(service):
    images = {
        "postgres": "pgvector/pgvector:0.8.1-pg17",
        "redis": "redis:7.4.3",
        "minio": "minio/minio:RELEASE.2025-05-24T17-08-30Z",
    }
    planned = changes(dev(), dev(**{f"{service}Image": images[service]}))
    assert planned == {
        f"dograh-{service}-image": "replace",
        f"dograh-{service}-container": "replace",
    }


@pytest.mark.parametrize("service", DATA_SERVICES)
def test_data_services_get_a_clean_shutdown(service):
    declared = dev().containers()[f"dograh-dev-{service}"]
    assert reveal(declared.inputs)["destroyGraceSeconds"] >= 30


@pytest.mark.parametrize("strategy", ["zeroDowntime", "recreate"])
def test_no_wait_the_settings_allow_is_cut_by_the_providers_timeouts(strategy):
    longest = dev(
        rolloutStrategy=strategy, apiHealthTimeoutSeconds="3600", apiStopGraceSeconds="3600"
    )
    cut = {r.name: cut_by_timeouts(r) for r in longest.custom(CONTAINER) if cut_by_timeouts(r)}
    assert cut == {}


def test_a_provided_certificate_and_back_serves_the_same_self_signed_one():
    secrets = {"tlsCertificate": "-----BEGIN CERTIFICATE-----\none", "tlsPrivateKey": "key"}
    self_signed = dev()
    provided = declare("dev", config={**CONFIG, "dograh:tlsMode": "provided"}, secrets=secrets)
    back = dev()
    generated = {"tls:index/privateKey:PrivateKey", "tls:index/selfSignedCert:SelfSignedCert"}
    for before, after in ((self_signed, provided), (provided, back)):
        steps = plan_changes(recorded(before), after).steps
        assert not [
            s.name
            for s in steps
            if s.op != "same" and s.urn.split("::")[-2].split("$")[-1] in generated
        ]

    def served(declaration: Declaration) -> str:
        gateway = declaration.containers()["dograh-dev-gateway"]
        return next(
            u["content"] for u in reveal(gateway.inputs["uploads"]) if u["file"].endswith(".crt")
        )

    assert served(back) == served(self_signed) != served(provided)


def test_a_wait_or_grace_change_updates_in_place_and_reloads_nothing():
    """An in-place update keeps the container's id, so nothing that names the id (nginx's
    reload step) runs again."""
    planned = changes(dev(), dev(apiStopGraceSeconds="30", apiHealthTimeoutSeconds="200"))
    assert planned == {
        workers_container(dev()).name: "update",
        "dograh-api-singletons-container": "update",
    }


def test_the_last_generation_is_drained_on_the_stacks_docker_host_after_switching_to_recreate(
    monkeypatch,
):
    """recreate deletes the last generation with the hook its own run registered: that hook
    must ask the stack's Docker host, and wait as long as the settings say."""
    from components import rollout
    from tests.engine.applier import EngineApplier

    asked: list[tuple[str, str | None]] = []

    def probe(container_name: str, docker_host: str | None) -> rollout.CallsProbe:
        asked.append((container_name, docker_host))
        return rollout.CallsProbe(calls=0)

    monkeypatch.setattr(rollout, "probe_active_calls", probe)
    remote = {"docker:host": "ssh://deploy@dograh.example.com"}
    zero_downtime = declare("dev", config={**CONFIG, **remote})
    recreate = declare("dev", config={**CONFIG, **remote, "dograh:rolloutStrategy": "recreate"})
    applier = EngineApplier(client=None)
    applier.hooks = dict(recreate.hooks)
    applier._run_before_delete_hooks(workers_container(zero_downtime))
    assert asked == [
        (reveal(workers_container(zero_downtime).inputs)["name"], remote["docker:host"])
    ]
