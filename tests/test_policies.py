"""The policy pack (policy/): each policy on passing and failing resources, and all of them
on the stacks the program really declares."""

import dataclasses
import sys
from pathlib import Path

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from offline.declare import Declaration, DeclaredResource, declare, reveal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "policy"))
import dograh_policies as policies

PROD_SECRETS = {
    "tlsCertificate": "-----BEGIN CERTIFICATE-----\nx\n",
    "tlsPrivateKey": "-----BEGIN PRIVATE KEY-----\nx\n",
}


def options(resource: DeclaredResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=resource.protect,
        ignore_changes=resource.ignore_changes,
        delete_before_replace=resource.delete_before_replace,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=resource.additional_secret_outputs,
    )


def violations(declaration: Declaration) -> list[str]:
    """Every violation the pack reports for a declaration, through the pack's own policies."""
    found: list[str] = []
    report = lambda message, urn=None: found.append(message)  # noqa: E731
    resources = [r for r in declaration.custom()]
    for policy in policies.ALL_POLICIES:
        if isinstance(policy, policies.StackValidationPolicy):
            stack_resources = [
                PolicyResource(
                    r.type, reveal(r.inputs), r.urn, r.name, options(r), None, None, [], {}
                )
                for r in resources
            ]
            policy.validate(StackValidationArgs(stack_resources), report)
        else:
            for r in resources:
                policy.validate(
                    ResourceValidationArgs(
                        r.type, reveal(r.inputs), r.urn, r.name, options(r), None
                    ),
                    report,
                )
    return found


API_HOSTS = {
    "fastapiWorkers": "2",
    "privateAddress": "10.0.0.11",
    "apiHosts": '[{"name": "h2", "dockerHost": "ssh://d@10.0.0.12", "address": "10.0.0.12"}]',
}


@pytest.mark.parametrize(
    "stack, settings, secrets",
    [
        ("dev", {}, {}),
        ("dev", {"rolloutStrategy": "recreate", "fastapiWorkers": "8"}, {}),
        ("dev", {"fastapiWorkers": "5", "apiContainers": "2"}, {}),
        ("dev", {"rolloutStrategy": "recreate", "fastapiWorkers": "3", "apiContainers": "3"}, {}),
        ("prod", {}, PROD_SECRETS),
        ("dev", API_HOSTS, {}),
    ],
)
def test_the_stacks_the_program_declares_pass_every_policy(stack, settings, secrets):
    declaration = declare(stack, settings, secrets=secrets)
    assert declaration.error is None
    assert violations(declaration) == []


def test_a_stack_whose_nginx_upstream_disagrees_with_the_workers_is_stopped():
    declaration = declare("dev", {"fastapiWorkers": "4"})
    reload = declaration.by_name("dograh-gateway-reload")
    stale = reveal(reload.inputs["stdin"]).replace(":8003 max_fails", ":8003x max_fails")
    broken = dataclasses.replace(reload, inputs={**reload.inputs, "stdin": stale})
    resources = [broken if r is reload else r for r in declaration.resources]
    found = violations(dataclasses.replace(declaration, resources=resources))
    assert len(found) == 1 and "lists 3 server(s)" in found[0] and "FASTAPI_WORKERS=4" in found[0]


def test_each_of_several_api_containers_is_checked_against_the_upstream():
    declaration = declare("dev", {"fastapiWorkers": "5", "apiContainers": "2"})
    reload = declaration.by_name("dograh-gateway-reload")
    second = next(c for c in declaration.custom() if c.name.endswith("-2-container"))
    alias = reveal(second.inputs["networksAdvanced"])[0]["aliases"][0]
    stale = reveal(reload.inputs["stdin"]).replace(f"{alias}:8001 max_fails", "gone:8001 max_fails")
    broken = dataclasses.replace(reload, inputs={**reload.inputs, "stdin": stale})
    resources = [broken if r is reload else r for r in declaration.resources]
    found = violations(dataclasses.replace(declaration, resources=resources))
    assert len(found) == 1 and f"lists 1 server(s) for {alias}" in found[0], found


def test_an_api_hosts_worker_missing_from_the_upstream_is_stopped():
    declaration = declare("dev", API_HOSTS)
    reload = declaration.by_name("dograh-gateway-reload")
    stale = reveal(reload.inputs["stdin"]).replace(
        "10.0.0.12:8001 max_fails", "10.0.0.12:9 max_fails"
    )
    broken = dataclasses.replace(reload, inputs={**reload.inputs, "stdin": stale})
    resources = [broken if r is reload else r for r in declaration.resources]
    found = violations(dataclasses.replace(declaration, resources=resources))
    assert len(found) == 1 and "lacks ['10.0.0.12:8001']" in found[0], found


def test_workers_out_of_range_are_stopped():
    container = (
        "docker:index/container:Container",
        {"name": "dograh-dev-api", "envs": ["FASTAPI_WORKERS=65"]},
    )
    assert "allowed: 1 to 64" in policies.check_workers([container])[0]
    container[1]["envs"] = ["FASTAPI_WORKERS=0"]
    assert policies.check_workers([container])
    container[1]["envs"] = ["FASTAPI_WORKERS=8"]
    assert policies.check_workers([container]) == []


def test_only_gateway_and_coturn_publish_beyond_loopback():
    public = [{"internal": 5432, "external": 5432, "ip": "0.0.0.0"}]
    assert policies.check_public_ports({"name": "dograh-dev-postgres", "ports": public})
    assert (
        policies.check_public_ports(
            {"name": "dograh-dev-postgres", "ports": [{**public[0], "ip": "127.0.0.1"}]}
        )
        == []
    )
    assert policies.check_public_ports({"name": "dograh-dev-gateway", "ports": public}) == []
    private = [{**public[0], "ip": "10.0.0.11"}]
    assert policies.check_public_ports({"name": "dograh-dev-postgres", "ports": private}) == []
    internet = [{**public[0], "ip": "93.184.216.34"}]
    assert policies.check_public_ports({"name": "dograh-dev-api", "ports": internet})
    assert policies.check_public_ports({"name": "dograh-prod-coturn", "ports": public}) == []


@pytest.mark.parametrize(
    "reference", ["redis", "redis:latest", "registry.local:5000/redis", "ghcr.io/x/y:latest"]
)
def test_untagged_or_latest_images_are_stopped(reference):
    assert policies.check_pinned_image(policies.REMOTE_IMAGE, {"name": reference})


@pytest.mark.parametrize(
    "reference", ["redis:7.4.2", "registry.local:5000/redis:7", "redis@sha256:" + "a" * 64]
)
def test_pinned_images_pass(reference):
    assert policies.check_pinned_image(policies.REMOTE_IMAGE, {"name": reference}) == []


def test_containers_need_a_restart_policy_and_bounded_logs():
    good = {
        "name": "x",
        "restart": "unless-stopped",
        "logDriver": "json-file",
        "logOpts": {"max-size": "10m"},
    }
    assert policies.check_restart_and_logs(good) == []
    assert "stays down" in policies.check_restart_and_logs({**good, "restart": "no"})[0]
    assert "unbounded logs" in policies.check_restart_and_logs({**good, "logOpts": {}})[0]


def test_data_volumes_must_be_protected():
    assert policies.check_data_volume({"name": "dograh-dev-postgres-data"}, protected=False)
    assert policies.check_data_volume({"name": "dograh-dev-postgres-data"}, protected=True) == []
    assert policies.check_data_volume({"name": "dograh-dev-acme-webroot"}, protected=False) == []
    certificates = {"name": "dograh-dev-issued-certificates"}
    assert policies.check_data_volume(certificates, protected=False)
    assert policies.check_data_volume(certificates, protected=True) == []


def test_secret_env_and_keys_must_stay_secret():
    props = {"name": "dograh-dev-redis", "envs": ["REDIS_PASSWORD=abc", "TZ=UTC"]}
    assert "REDIS_PASSWORD" in policies.check_secret_properties(props, [])[0]
    assert policies.check_secret_properties(props, ["envs"]) == []
    uploads = {"name": "g", "uploads": [{"file": "/k", "content": "-----BEGIN PRIVATE KEY-----"}]}
    assert policies.check_secret_properties(uploads, [])
    assert policies.check_secret_properties(uploads, ["uploads"]) == []
