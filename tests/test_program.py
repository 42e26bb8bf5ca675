"""The program as a user runs it (`__main__.py` + stack config), under Pulumi's mocks."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.gateway import API_CONTAINER_LABEL, NGINX_CONFIG_PATH
from offline.changes import plan_changes, recorded
from offline.declare import (
    CONTAINER,
    VOLUME,
    Declaration,
    DeclaredResource,
    declare,
    has_secret,
    reveal,
)
from offline.preview import nginx_config

UPSTREAM_SERVER = re.compile(r"^\s*server (\S+):(\d+) max_fails=3 fail_timeout=10s;$", re.MULTILINE)
RECREATE = {"rolloutStrategy": "recreate"}


API_WORKERS_RESOURCE = re.compile(r"^dograh-api(-[0-9a-f]{6})?-container$")


def api(declaration: Declaration) -> DeclaredResource:
    """The container running the uvicorn workers (`api`, or `api-<generation>`)."""
    (workers,) = [r for r in declaration.custom(CONTAINER) if API_WORKERS_RESOURCE.match(r.name)]
    return workers


def migrations(declaration: Declaration) -> DeclaredResource:
    """The one-off `alembic upgrade head` job."""
    (job,) = [r for r in declaration.custom(CONTAINER) if r.name.startswith("dograh-api-migrate-")]
    return job


def envs(container: DeclaredResource) -> dict[str, str]:
    return dict(item.split("=", 1) for item in reveal(container.inputs.get("envs") or []))


def uploaded(container: DeclaredResource, path: str) -> str:
    files = {upload["file"]: upload["content"] for upload in reveal(container.inputs["uploads"])}
    return files[path]


def upstream(declaration: Declaration) -> list[tuple[str, int]]:
    """The api servers in the config nginx runs (after its reload, under zeroDowntime)."""
    servers = UPSTREAM_SERVER.findall(nginx_config(declaration) or "")
    return [(host, int(port)) for host, port in servers]


def declaration_stack(declaration: Declaration) -> str:
    return declaration.resources[0].urn.split("::")[0].split(":")[-1]


def changed(before: Declaration, after: Declaration) -> set[str]:
    """Resources added, removed, or whose declared inputs differ (less ignore_changes)."""
    plan = plan_changes(recorded(before), after)
    return {step.name for step in plan.steps if step.op != "same"}


@pytest.fixture(scope="module")
def dev() -> Declaration:
    declaration = declare("dev")
    assert declaration.error is None
    return declaration


def test_dev_stack_declares_every_service_container(dev):
    generation = api(dev).inputs["name"].removeprefix("dograh-dev-api-")
    assert re.fullmatch(r"[0-9a-f]{6}", generation)
    services = (
        "postgres",
        "redis",
        "minio",
        f"api-{generation}",
        "api-singletons",
        "ui",
        "gateway",
    )
    services_and_migrations = {f"dograh-dev-{service}" for service in services} | {
        migrations(dev).inputs["name"]
    }
    assert set(dev.containers()) == services_and_migrations
    recreate = declare("dev", RECREATE)
    assert set(recreate.containers()) == {
        f"dograh-dev-{service}"
        for service in ("postgres", "redis", "minio", "api", "api-singletons", "ui", "gateway")
    } | {migrations(recreate).inputs["name"]}
    # Each generation is a resource of its own; recreate's one api keeps its name.
    assert api(dev).name == f"dograh-api-{generation}-container"
    assert api(recreate).name == "dograh-api-container"


@settings(max_examples=64, deadline=None)
@given(workers=st.integers(min_value=1, max_value=64))
def test_the_api_env_and_the_nginx_upstream_agree_for_every_worker_count(workers):
    declaration = declare("dev", {"fastapiWorkers": str(workers)})
    workers_container = api(declaration)
    assert envs(workers_container)["FASTAPI_WORKERS"] == str(workers)
    alias = reveal(workers_container.inputs["networksAdvanced"])[0]["aliases"][0]
    assert upstream(declaration) == [(alias, port) for port in range(8000, 8000 + workers)]


def test_recreate_changing_workers_changes_only_the_api_and_nginx_containers():
    four = declare("dev", {**RECREATE, "fastapiWorkers": "4"})
    eight = declare("dev", {**RECREATE, "fastapiWorkers": "8"})
    assert changed(four, eight) == {"dograh-api-container", "dograh-gateway-container"}


def test_recreate_an_api_image_change_also_replaces_nginx_so_it_cannot_keep_the_old_address():
    before = declare("dev", RECREATE)
    after = declare("dev", {**RECREATE, "apiImage": "dograhai/dograh-api:1.46.0"})
    assert changed(before, after) == {
        "dograh-api-image",
        "dograh-api-container",
        "dograh-api-singletons-image",
        "dograh-api-singletons-container",
        "dograh-api-migrations-image",
        migrations(before).name,
        migrations(after).name,
        "dograh-gateway-container",
    }
    # nginx is tied to the api container it resolved: a new api container id is a new label.
    for declaration in (before, after):
        gateway = declaration.containers()["dograh-dev-gateway"]
        labels = {item["label"]: item["value"] for item in gateway.inputs["labels"]}
        assert labels[API_CONTAINER_LABEL] == api(declaration).id


def reload_config(declaration: Declaration) -> str:
    return reveal(declaration.by_name("dograh-gateway-reload").inputs["stdin"])


def test_zero_downtime_changing_workers_starts_a_new_generation_and_reloads_nginx():
    four = declare("dev", {"fastapiWorkers": "4"})
    six = declare("dev", {"fastapiWorkers": "6"})
    # nginx itself stays: its config is reloaded in place; the singletons are not touched.
    # The new generation is a new resource, the old one is deleted at the end.
    # The new generation's health is checked again before nginx and the singletons move.
    assert changed(four, six) == {
        api(four).name,
        api(six).name,
        "dograh-api-healthy",
        "dograh-gateway-reload",
    }
    old_name, new_name = api(four).inputs["name"], api(six).inputs["name"]
    assert old_name != new_name  # a new name: created beside the old one, no clash
    new_alias = new_name.removeprefix("dograh-dev-")
    assert f"server {new_alias}:8005 " in reload_config(six)
    assert old_name.removeprefix("dograh-dev-") not in reload_config(six)


def test_zero_downtime_image_change_moves_nginx_to_the_new_generation():
    before = declare("dev")
    after = declare("dev", {"apiImage": "dograhai/dograh-api:1.46.0"})
    assert changed(before, after) == {
        "dograh-api-image",
        api(before).name,
        api(after).name,
        "dograh-api-singletons-image",
        "dograh-api-singletons-container",
        "dograh-api-migrations-image",
        migrations(before).name,
        migrations(after).name,
        "dograh-api-healthy",
        "dograh-gateway-reload",
    }
    # The reload runs again for the new api container, and its config names only it.
    new_alias = api(after).inputs["name"].removeprefix("dograh-dev-")
    assert api(after).id in reveal(after.by_name("dograh-gateway-reload").inputs["triggers"])
    assert {host for host, _ in UPSTREAM_SERVER.findall(reload_config(after))} == {new_alias}


def test_zero_downtime_declares_create_first_generations_with_a_drain_hook(dev):
    workers_container = api(dev)
    assert not workers_container.delete_before_replace
    assert workers_container.before_delete_hooks == ["dograh-api-drain"]
    assert "dograh-api-drain" in dev.hooks
    singletons = dev.by_name("dograh-api-singletons-container")
    assert singletons.delete_before_replace  # old singletons stop before new ones start
    gateway = dev.containers()["dograh-dev-gateway"]
    # Nothing it is created with can go stale: no ignore_changes, and no nginx.conf naming an
    # api generation (the reload step writes the current one into every new gateway).
    assert gateway.ignore_changes == []
    assert API_CONTAINER_LABEL not in str(gateway.inputs.get("labels"))
    assert NGINX_CONFIG_PATH not in {u["file"] for u in reveal(gateway.inputs["uploads"])}
    reload = dev.by_name("dograh-gateway-reload")
    assert gateway.id in reveal(reload.inputs["triggers"])


def test_singletons_run_in_exactly_one_container(dev):
    assert envs(api(dev))["ENABLE_ARI_MANAGER"] == "false"
    assert envs(api(dev))["ENABLE_CAMPAIGN_ORCHESTRATOR"] == "false"
    singletons = envs(dev.by_name("dograh-api-singletons-container"))
    assert singletons["ENABLE_ARI_MANAGER"] == "true"
    assert singletons["ENABLE_CAMPAIGN_ORCHESTRATOR"] == "true"
    assert singletons["FASTAPI_WORKERS"] == "1"
    # The same container with recreate, so switching strategies never runs them twice.
    recreate = declare("dev", RECREATE)
    assert envs(api(recreate))["ENABLE_ARI_MANAGER"] == "false"
    assert recreate.by_name("dograh-api-singletons-container").inputs == (
        dev.by_name("dograh-api-singletons-container").inputs
    )


def test_a_changed_secret_gives_the_api_a_new_generation_name():
    first = declare("dev", secrets={"ossJwtSecret": "first-secret-value-0123456789abcdef"})
    second = declare("dev", secrets={"ossJwtSecret": "second-secret-value-0123456789abcdef"})
    assert api(first).inputs["name"] != api(second).inputs["name"]


def test_rerunning_the_program_declares_the_same_inputs_and_secrets(dev):
    again = declare("dev")
    assert changed(dev, again) == set()
    for key in ("ossJwtSecret", "postgresPassword", "turnSecret", "devopsSecret"):
        assert reveal(again.outputs[key]) == reveal(dev.outputs[key])


def test_generated_secrets_do_not_depend_on_any_setting():
    before = declare("dev")
    after = declare(
        "dev",
        {
            "fastapiWorkers": "12",
            "apiImage": "dograhai/dograh-api:1.46.2",
            "publicHost": "x.example",
        },
    )
    passwords = "random:index/randomPassword:RandomPassword"
    assert {r.name: reveal(r.inputs) for r in before.custom(passwords)} == {
        r.name: reveal(r.inputs) for r in after.custom(passwords)
    }
    for key in (
        "ossJwtSecret",
        "postgresPassword",
        "redisPassword",
        "minioRootPassword",
    ):
        assert reveal(after.outputs[key]) == reveal(before.outputs[key])


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "4.5", "", "100000"])
def test_bad_worker_counts_stop_the_program_before_anything_is_declared(bad):
    declaration = declare("dev", {"fastapiWorkers": bad})
    assert declaration.resources == []
    assert "dograh:fastapiWorkers" in declaration.error
    assert repr(bad) in declaration.error
    assert "from 1 to 64" in declaration.error


def test_a_secret_setting_in_plain_text_is_refused():
    declaration = declare("dev", {"ossJwtSecret": "hunter2"})
    assert declaration.resources == []
    assert "set it with `pulumi config set --secret ossJwtSecret" in declaration.error
    assert "hunter2" not in declaration.error


def test_more_than_eight_workers_warns_with_the_sizing_rule():
    assert not declare("dev", {"fastapiWorkers": "8"}).warnings
    warnings = declare("dev", {"fastapiWorkers": "9"}).warnings
    assert len(warnings) == 1
    assert "one worker per vCPU" in warnings[0] and "2700-4500 MB" in warnings[0]


def test_only_the_gateway_publishes_ports_and_dev_keeps_it_on_loopback(dev):
    for name, container in dev.containers().items():
        ports = container.inputs.get("ports") or []
        if name == "dograh-dev-gateway":
            assert {(p["internal"], p["external"], p["ip"]) for p in ports} == {
                (80, 8080, "127.0.0.1"),
                (443, 8443, "127.0.0.1"),
            }
        else:
            assert ports == [], name


def test_internal_services_publish_on_loopback_only_when_asked():
    declaration = declare("dev", {"publishInternalOnLoopback": "true", "fastapiWorkers": "3"})
    published = {
        name: {(p["external"], p["ip"]) for p in container.inputs.get("ports") or []}
        for name, container in declaration.containers().items()
    }
    assert published["dograh-dev-postgres"] == {(5432, "127.0.0.1")}
    assert published["dograh-dev-redis"] == {(6379, "127.0.0.1")}
    # Two generations side by side cannot bind the same ports: workers are published only
    # with recreate, where one api container exists at a time.
    assert published[api(declaration).inputs["name"]] == set()
    recreate = declare(
        "dev", {**RECREATE, "publishInternalOnLoopback": "true", "fastapiWorkers": "3"}
    )
    assert {(p["external"], p["ip"]) for p in api(recreate).inputs["ports"]} == {
        (8000, "127.0.0.1"),
        (8001, "127.0.0.1"),
        (8002, "127.0.0.1"),
    }


def test_every_container_restarts_logs_boundedly_and_uses_the_explicit_provider(dev):
    providers = dev.custom("pulumi:providers:docker")
    assert len(providers) == 1
    for container in dev.containers().values():
        one_off = container is migrations(dev)
        assert container.inputs["restart"] == ("no" if one_off else "unless-stopped")
        assert container.inputs["logDriver"] == "json-file"
        assert container.inputs["logOpts"] == {"max-size": "10m", "max-file": "5"}
        assert container.provider.startswith(providers[0].urn)
        assert "healthcheck" in container.replace_on_changes


def test_every_resource_is_parented_under_the_stack_component(dev):
    stack = dev.by_name("dograh")
    by_urn = {r.urn: r for r in dev.resources}
    for resource in dev.resources:
        ancestor = resource
        while ancestor is not stack:
            assert ancestor.parent in by_urn, f"{resource.name} is not under the stack component"
            ancestor = by_urn[ancestor.parent]


def test_data_volumes_are_protected(dev):
    volumes = {r.inputs["name"]: r for r in dev.custom(VOLUME)}
    for name in (
        "dograh-dev-postgres-data",
        "dograh-dev-redis-data",
        "dograh-dev-minio-data",
    ):
        assert volumes[name].protect, name


def test_health_checks_match_the_services_contracts(dev):
    checks = {
        name: " ".join(c.inputs["healthcheck"]["tests"])
        for name, c in dev.containers().items()
        if c.inputs.get("healthcheck")
    }
    assert "pg_isready -U postgres" in checks["dograh-dev-postgres"]
    assert "redis-cli ping" in checks["dograh-dev-redis"]
    api_check = checks[api(dev).inputs["name"]]
    assert "/api/v1/health" in api_check
    assert "FASTAPI_WORKERS" in api_check  # every worker, not just the first


def test_the_api_is_wired_from_the_other_components_outputs(dev):
    api_env = envs(api(dev))
    postgres_env = envs(dev.containers()["dograh-dev-postgres"])
    redis_env = envs(dev.containers()["dograh-dev-redis"])
    minio_env = envs(dev.containers()["dograh-dev-minio"])
    assert api_env["DATABASE_URL"] == (
        f"postgresql+asyncpg://postgres:{postgres_env['POSTGRES_PASSWORD']}@postgres:5432/postgres"
    )
    assert api_env["REDIS_URL"] == f"redis://:{redis_env['REDISCLI_AUTH']}@redis:6379"
    assert api_env["MINIO_ENDPOINT"] == "minio:9000"
    assert api_env["MINIO_ACCESS_KEY"] == minio_env["MINIO_ROOT_USER"]
    assert api_env["MINIO_SECRET_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]
    assert api_env["OSS_JWT_SECRET"] == reveal(dev.outputs["ossJwtSecret"])
    assert api_env["DOGRAH_DEVOPS_SECRET"] == reveal(dev.outputs["devopsSecret"])
    assert api_env["PUBLIC_BASE_URL"] == "https://localhost:8443"
    assert api(dev).inputs["destroyGraceSeconds"] == 60


def test_no_well_known_default_password_anywhere(dev):
    well_known = {"postgres", "redissecret", "minioadmin", "password", "admin"}
    for container in dev.containers().values():
        for key, value in envs(container).items():
            if "PASSWORD" in key or "SECRET" in key:
                assert value not in well_known and len(value) >= 32, key


def test_secrets_stay_secret_in_container_env_and_exports(dev):
    sensitive = ("PASSWORD", "SECRET", "DATABASE_URL", "REDIS_URL", "AUTH")
    for name, container in dev.containers().items():
        if any(word in key for key in envs(container) for word in sensitive):
            assert has_secret(container.inputs["envs"]), name
        # Commands and health checks are never secret, so they must never carry one.
        assert not has_secret(container.inputs.get("command")), name
        assert not has_secret(container.inputs.get("healthcheck")), name
    for key in (
        "ossJwtSecret",
        "devopsSecret",
        "postgresPassword",
        "redisPassword",
        "minioRootPassword",
        "turnSecret",
    ):
        assert has_secret(dev.outputs[key]), key
    assert has_secret(dev.containers()["dograh-dev-gateway"].inputs["uploads"])  # the TLS key


def test_a_secret_set_with_config_wins_over_the_generated_one():
    declaration = declare("dev", secrets={"ossJwtSecret": "operator-chosen-jwt-secret-0123456789"})
    assert envs(api(declaration))["OSS_JWT_SECRET"] == ("operator-chosen-jwt-secret-0123456789")


def test_external_services_replace_the_bundled_containers():
    declaration = declare(
        "dev",
        {"s3Bucket": "dograh-recordings", "s3Region": "eu-west-1"},
        secrets={
            "externalDatabaseUrl": "postgresql+asyncpg://dograh:pw@db.internal:5432/dograh",
            "externalRedisUrl": "rediss://:pw@cache.internal:6380",
            "s3AccessKeyId": "AKIAEXAMPLE",
            "s3SecretAccessKey": "secret-example",
        },
    )
    assert set(declaration.containers()) == {
        api(declaration).inputs["name"],
        migrations(declaration).inputs["name"],
        "dograh-dev-api-singletons",
        "dograh-dev-ui",
        "dograh-dev-gateway",
    }
    api_env = envs(api(declaration))
    assert api_env["DATABASE_URL"] == "postgresql+asyncpg://dograh:pw@db.internal:5432/dograh"
    assert api_env["REDIS_URL"] == "rediss://:pw@cache.internal:6380"
    assert api_env["ENABLE_AWS_S3"] == "true" and api_env["S3_BUCKET"] == "dograh-recordings"
    assert "MINIO_ENDPOINT" not in api_env


def test_prod_stack_runs_turn_over_ssh_with_the_provided_certificate():
    declaration = declare(
        "prod",
        secrets={
            "tlsCertificate": "-----BEGIN CERTIFICATE-----\nprod\n",
            "tlsPrivateKey": "-----BEGIN PRIVATE KEY-----\nprod\n",
        },
    )
    assert declaration.error is None, declaration.error
    provider = declaration.custom("pulumi:providers:docker")[0]
    assert provider.inputs["host"] == "ssh://deploy@dograh.example.com"
    containers = declaration.containers()
    coturn = containers["dograh-prod-coturn"]
    published = {(p["external"], p["protocol"], p["ip"]) for p in coturn.inputs["ports"]}
    assert {
        (3478, "udp", "0.0.0.0"),
        (3478, "tcp", "0.0.0.0"),
        (5349, "tcp", "0.0.0.0"),
    } <= published
    assert len([p for p in published if 49152 <= p[0] <= 49200]) == 49
    # coturn's entrypoint runs turnserver for '-' arguments; the secret is in the config file,
    # secret in state, and on no command line.
    assert coturn.inputs["command"] == ["-c", "/etc/coturn/turnserver.conf"]
    assert has_secret(coturn.inputs["uploads"])
    secret = reveal(declaration.outputs["turnSecret"])
    assert f"static-auth-secret={secret}\n" in uploaded(coturn, "/etc/coturn/turnserver.conf")
    assert secret not in str(reveal(coturn.inputs.get("envs")))
    api_env = envs(api(declaration))
    assert api_env["ENABLE_COTURN"] == "true" and api_env["SERVER_IP"] == "203.0.113.10"
    gateway = containers["dograh-prod-gateway"]
    assert uploaded(gateway, "/etc/nginx/certs/local.crt").endswith("prod\n")
    # The self-signed one stays declared (unused), so switching back serves the same one.
    (self_signed,) = declaration.custom("tls:index/selfSignedCert:SelfSignedCert")
    assert self_signed.outputs["cert_pem"] not in uploaded(gateway, "/etc/nginx/certs/local.crt")
    assert {(p["external"], p["ip"]) for p in gateway.inputs["ports"]} == {
        (80, "0.0.0.0"),
        (443, "0.0.0.0"),
    }


@pytest.mark.parametrize("settings", [{}, RECREATE])
def test_migrations_run_once_as_a_job_every_api_container_waits_for(settings):
    declaration = declare("dev", settings)
    job = migrations(declaration)
    inputs = reveal(job.inputs)
    assert inputs["command"] == ["alembic", "-c", "/app/api/alembic.ini", "upgrade", "head"]
    # A one-off: the provider waits for it to exit, leaves it stopped, never restarts it.
    assert (inputs["attach"], inputs["mustRun"], inputs["restart"]) == (True, False, "no")
    assert set(envs(job)) == {"DATABASE_URL", "REDIS_URL", "ENVIRONMENT", "LOG_LEVEL"}
    assert envs(job)["DATABASE_URL"] == envs(api(declaration))["DATABASE_URL"]
    for container in (api(declaration), declaration.containers()["dograh-dev-api-singletons"]):
        assert job.urn in container.dependencies, container.name
    # A new release runs it again, beside the old job (a new Docker name, so create-first).
    newer = migrations(declare("dev", {**settings, "apiImage": "dograhai/dograh-api:1.46.0"}))
    assert newer.inputs["name"] != job.inputs["name"] and not newer.delete_before_replace
    # A setting the migrations do not read leaves it alone.
    more_workers = migrations(declare("dev", {**settings, "fastapiWorkers": "7"}))
    assert reveal(more_workers.inputs) == inputs


def test_an_old_release_runs_its_singletons_in_the_one_api_container_and_says_so():
    declaration = declare("dev", {**RECREATE, "apiImage": "dograhai/dograh-api:1.44.0"})
    assert "dograh-dev-api-singletons" not in declaration.containers()
    env = envs(api(declaration))
    assert (env["ENABLE_ARI_MANAGER"], env["ENABLE_CAMPAIGN_ORCHESTRATOR"]) == ("true", "true")
    newest = envs(api(declare("dev", RECREATE)))
    assert (newest["ENABLE_ARI_MANAGER"], newest["ENABLE_CAMPAIGN_ORCHESTRATOR"]) == (
        "false",
        "false",
    )


def test_zero_downtime_with_an_api_release_that_ignores_the_switches_declares_nothing():
    declaration = declare("dev", {"apiImage": "dograhai/dograh-api:1.44.0"})
    assert declaration.error is not None and not declaration.resources
    assert "rolloutStrategy = 'zeroDowntime' needs api release 1.45.0" in declaration.error


def test_the_real_containers_needs_are_in_their_environment(dev):
    api_env = envs(api(dev))
    assert api_env["ENVIRONMENT"] == "local"  # dev: localhost, no TURN
    assert api_env["LOG_LEVEL"] == "INFO"
    assert api_env["UI_APP_URL"] == api_env["PUBLIC_BASE_URL"] == "https://localhost:8443"
    assert api_env["ENABLE_SIGNUP"] == "true"
    assert api_env["TELEPHONY_WS_TOKEN_ENFORCE"] == "false"
    assert len(api_env["TELEPHONY_WS_TOKEN_SECRET"]) == 40
    assert envs(dev.containers()["dograh-dev-ui"])["HOSTNAME"] == "0.0.0.0"
    prod = envs(api(declare("dev", {"publicHost": "dograh.example.com", "logLevel": "WARNING"})))
    assert (prod["ENVIRONMENT"], prod["LOG_LEVEL"]) == ("production", "WARNING")


def test_no_secret_is_on_any_command_line(dev):
    """Command lines show in `ps`, `docker inspect` and the state in plain text."""
    secrets = {value for container in dev.containers().values() for key, value in
               envs(container).items() if "PASSWORD" in key or "SECRET" in key or "AUTH" in key}  # fmt: skip
    assert secrets
    for container in dev.containers().values():
        command = " ".join(reveal(container.inputs.get("command") or []))
        healthcheck = " ".join((reveal(container.inputs.get("healthcheck")) or {}).get("tests", []))
        for secret in secrets:
            assert secret not in command and secret not in healthcheck, container.name


def test_redis_starts_through_its_image_entrypoint_with_the_password_in_its_config(dev):
    redis = dev.containers()["dograh-dev-redis"]
    inputs = reveal(redis.inputs)
    assert inputs["command"][0] == "redis-server"  # the entrypoint drops to the redis user
    (config,) = [u for u in inputs["uploads"] if u["file"] == inputs["command"][1]]
    assert f'requirepass "{envs(redis)["REDISCLI_AUTH"]}"' in config["content"]
    assert "uploads" in redis.additional_secret_outputs


def test_the_singletons_move_only_after_the_new_generation_is_checked_healthy(dev):
    """A retried `pulumi up` clears a failed generation's error without a health check: the
    singletons wait for a step that checks it, so they are never replaced by a broken image."""
    gate = dev.by_name("dograh-api-healthy")
    assert api(dev).id in reveal(gate.inputs["triggers"])
    assert reveal(gate.inputs["environment"])["API_CONTAINERS"] == api(dev).inputs["name"]
    singletons = dev.containers()["dograh-dev-api-singletons"]
    assert gate.urn in singletons.dependencies
