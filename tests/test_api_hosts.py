"""apiHosts: api workers on more Docker hosts behind the one gateway, under Pulumi's mocks.
The hosts layer (tests/engine/test_hosts.py) runs them on real engines."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offline.changes import plan_changes, recorded
from offline.declare import (
    COMMAND,
    CONTAINER,
    DOCKER_PROVIDER,
    Declaration,
    DeclaredResource,
    declare,
    reveal,
)
from tests.test_program import envs, upstream

PRIVATE = "10.0.0.1"


def hosts_setting(*hosts: dict[str, Any]) -> dict[str, str]:
    return {"apiHosts": json.dumps(list(hosts)), "privateAddress": PRIVATE}


def host(name: str, address: str, workers: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "dockerHost": f"ssh://dograh@{address}",
        "address": address,
    }
    if workers is not None:
        entry["fastapiWorkers"] = workers
    return entry


def declared(**overrides: str) -> Declaration:
    declaration = declare("dev", overrides)
    assert declaration.error is None, declaration.error
    return declaration


def by_name(declaration: Declaration, name: str) -> DeclaredResource:
    (found,) = [r for r in declaration.resources if r.name == name]
    return found


def provider_host(declaration: Declaration, resource: DeclaredResource) -> str | None:
    urn = resource.provider.rpartition("::")[0]
    (provider,) = [r for r in declaration.custom(DOCKER_PROVIDER) if r.urn == urn]
    return reveal(provider.inputs).get("host")


def host_containers(declaration: Declaration, name: str) -> list[DeclaredResource]:
    prefix = f"dograh-host-{name}-"
    return sorted(
        (r for r in declaration.custom(CONTAINER) if r.name.startswith(prefix)),
        key=lambda r: r.name,
    )


def published(container: DeclaredResource) -> list[tuple[str, int, int]]:
    return sorted(
        (port["ip"], int(port["internal"]), int(port["external"]))
        for port in reveal(container.inputs.get("ports") or [])
    )


@pytest.fixture(scope="module")
def three() -> Declaration:
    return declared(
        fastapiWorkers="2",
        **hosts_setting(host("h2", "10.0.0.12"), host("h3", "10.0.0.13", workers=3)),
    )


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_worker_of_every_host_is_in_the_one_upstream_as_its_host_publishes_it(data):
    main = data.draw(st.integers(1, 6), label="fastapiWorkers")
    counts = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3), label="hosts")
    containers = data.draw(st.integers(1, min(main, *counts)), label="apiContainers")
    hosts = [host(f"h{i}", f"10.0.0.{20 + i}", n) for i, n in enumerate(counts)]
    declaration = declared(
        fastapiWorkers=str(main), apiContainers=str(containers), **hosts_setting(*hosts)
    )
    servers = upstream(declaration)
    remote = [server for server in servers if server[0].startswith("10.0.0.")]
    assert len(servers) - len(remote) == main
    expected = []
    for entry in hosts:
        running = host_containers(declaration, entry["name"])
        assert len(running) == containers
        assert sum(int(envs(c)["FASTAPI_WORKERS"]) for c in running) == entry["fastapiWorkers"]
        ports = [p for c in running for p in published(c)]
        # Each worker on its own port of the host's address only, as nginx lists it.
        assert {ip for ip, _, _ in ports} == {entry["address"]}
        expected += sorted((ip, external) for ip, _, external in ports)
    assert remote == expected


def test_each_host_is_reached_through_its_own_docker_provider(three):
    for name, address in (("h2", "10.0.0.12"), ("h3", "10.0.0.13")):
        for resource in three.custom():
            if resource.name.startswith(f"dograh-host-{name}-") and resource.type not in (
                COMMAND,
                DOCKER_PROVIDER,
            ):
                assert provider_host(three, resource) == f"ssh://dograh@{address}", resource.name
    main = [r for r in three.custom(CONTAINER) if not r.name.startswith("dograh-host-")]
    assert {provider_host(three, r) for r in main} == {None}  # docker:host unset in dev


def test_singletons_and_arq_run_once_in_the_whole_deployment(three):
    containers = three.custom(CONTAINER)
    singleton_runs = [
        c.name
        for c in containers
        for switch in ("ENABLE_ARI_MANAGER", "ENABLE_CAMPAIGN_ORCHESTRATOR")
        if envs(c).get(switch) == "true"
    ]
    assert singleton_runs == ["dograh-api-singletons-container"] * 2
    arq = {c.name: int(envs(c)["ARQ_WORKERS"]) for c in containers if "ARQ_WORKERS" in envs(c)}
    remote = {name: count for name, count in arq.items() if name.startswith("dograh-host-")}
    assert len(remote) == 2 and set(remote.values()) == {0}


def test_the_other_hosts_reach_the_data_services_on_the_private_address_only(three):
    for service, port in (("postgres", 5432), ("redis", 6379), ("minio", 9000)):
        assert published(by_name(three, f"dograh-{service}-container")) == [(PRIVATE, port, port)]
    remote = envs(host_containers(three, "h2")[0])
    assert f"@{PRIVATE}:5432/" in remote["DATABASE_URL"]
    assert remote["REDIS_URL"].endswith(f"@{PRIVATE}:6379")
    assert remote["MINIO_ENDPOINT"] == f"{PRIVATE}:9000"
    single = declared()
    for service in ("postgres", "redis", "minio"):
        assert published(by_name(single, f"dograh-{service}-container")) == []


def test_hosts_roll_one_after_the_other_once_the_gateway_serves_the_new_generation(three):
    reload = by_name(three, "dograh-gateway-reload")
    h2, h3 = host_containers(three, "h2")[0], host_containers(three, "h3")[0]
    h2_back = by_name(three, "dograh-host-h2-in-upstream")
    assert reload.urn in h2.dependencies
    assert h2_back.urn in h3.dependencies
    assert h2.urn in h2_back.dependencies
    # Replaced delete first (a published port is bound once), out of nginx and drained first.
    assert h2.delete_before_replace and h2.before_delete_hooks == ["dograh-api-hosts-drain"]
    assert reveal(h2_back.inputs["stdin"]) == reveal(reload.inputs["stdin"])  # the whole config


def test_changing_one_hosts_workers_replaces_only_that_hosts_containers(three):
    after = declared(
        fastapiWorkers="2",
        **hosts_setting(host("h2", "10.0.0.12", workers=4), host("h3", "10.0.0.13", workers=3)),
    )
    steps = {s.name: s.op for s in plan_changes(recorded(three), after).steps if s.op != "same"}
    containers = {name for name in steps if name.endswith("-container")}
    assert containers == {"dograh-host-h2-container"}
    assert steps["dograh-host-h2-container"] == "replace"
    assert {"dograh-gateway-reload", "dograh-host-h2-in-upstream"} <= set(steps)


def test_removing_a_host_deletes_its_resources_with_the_drain_hook_still_registered(three):
    after = declared(fastapiWorkers="2", **hosts_setting(host("h2", "10.0.0.12")))
    steps = {s.name: s.op for s in plan_changes(recorded(three), after).steps if s.op != "same"}
    assert steps["dograh-host-h3-container"] == "delete"
    assert steps["dograh-host-h3-docker"] == "delete"
    assert "dograh-api-hosts-drain" in after.hooks
    assert ("10.0.0.13", 8000) not in upstream(after)


def test_without_api_hosts_the_hook_is_registered_but_nothing_is_declared_for_hosts():
    single = declared()
    assert "dograh-api-hosts-drain" in single.hooks
    assert not [r for r in single.resources if "-host-" in r.name]
    assert "proxy_connect_timeout" not in reveal(
        by_name(single, "dograh-gateway-reload").inputs["stdin"]
    )
