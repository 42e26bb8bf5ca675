"""A running dev stack through its whole life, on the real engine, the way `pulumi up` would
take it (the applier follows the engine's and the provider's rules: see offline/changes.py).

In order, on one stack (module scope):
- every setting in Pulumi.yaml and every secret setting changed under load: the apply
  succeeds, the steps are those the offline preview predicted, nginx serves through the
  current api generation with the current certificate, the row and the object written at the
  start are still there, the singletons never ran twice, and applying again changes nothing;
- a rollout whose new generation never gets healthy, retried, then rolled back;
- the Docker engine restarted under load;
- `pulumi destroy --run-program --exclude-protected`, and `pulumi up` again on the kept data.

What each change did (containers replaced, updated, nginx reloaded, requests failed, calls cut)
is written to docs/setting-changes.json, from which tools/setting_changes_table.py renders the
README's table. The kinds of steps must match the committed file (the README must stay
true); the interruption numbers are measurements and are only recorded.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import SECRET_KEYS
from offline.changes import Plan, plan_changes, recorded
from offline.declare import PROJECT_DIR, reveal
from tests.clients import https_get
from tests.engine.acme_server import ACME_ADDRESS, ACME_PORT, AcmeServer, acme_server
from tests.engine.applier import ApplyError
from tests.engine.dockerd import restart_engine
from tests.engine.harness import PREFIX, EngineStack, engine_stack
from tests.engine.images import (
    COMMIT_API_TAG,
    NEXT_API_TAG,
    NEXT_TAGS,
    REAL_IMAGES,
    UNHEALTHY_API_TAG,
    standin_tags,
)
from tests.engine.load import LoadReport, RolloutLoad
from tests.engine.observe import SingletonWatch
from tools.setting_changes_table import RESULTS_PATH, step_kinds

# Quick stops and drains: every change here ends its calls within seconds.
BASE = {"apiStopGraceSeconds": "5", "drainTimeoutSeconds": "30", "apiHealthTimeoutSeconds": "60"}
ROW_NOTE = "lifecycle row"
MARKER_TABLE = "lifecycle_test_marker"
OBJECT_KEY = "lifecycle/before.wav"
EXTERNAL_PASSWORD = "external0password0for0tests"


def self_signed(host: str) -> tuple[str, str]:
    """A certificate and key as a user would provide them (made with openssl)."""
    with tempfile.TemporaryDirectory() as directory:
        key, cert = Path(directory, "key.pem"), Path(directory, "cert.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={host}",
             "-addext", f"subjectAltName=DNS:{host}"],
            check=True, capture_output=True,
        )  # fmt: skip
        return cert.read_text(), key.read_text()


@dataclass(frozen=True)
class Change:
    """One `pulumi config set` (or several that go together) on the running stack."""

    setting: str
    description: str
    settings: dict[str, str | None] = field(default_factory=dict)  # None: `config rm`
    secrets: dict[str, str | None] = field(default_factory=dict)
    # Checked after the apply, beyond what every change is checked for.
    check: str | None = None


FIRST_CERT, FIRST_KEY = self_signed("localhost")
SECOND_CERT, SECOND_KEY = self_signed("localhost")
EXTERNAL_DATABASE = (
    f"postgresql+asyncpg://postgres:{EXTERNAL_PASSWORD}@external-postgres:5432/postgres"
)
EXTERNAL_REDIS = f"redis://:{EXTERNAL_PASSWORD}@external-redis:6379"
EXTERNAL_S3 = {
    "s3Bucket": "dograh-external",
    "s3Region": "us-east-1",
    "s3EndpointUrl": "http://external-s3:9000",
}
EXTERNAL_S3_KEYS = {"s3AccessKeyId": "external-key", "s3SecretAccessKey": EXTERNAL_PASSWORD}
EXTERNAL_S3_TUNING = {"s3SignatureVersion": "s3v4", "s3AddressingStyle": "path"}
# From the httpPort change on: where pebble checks HTTP-01 challenges for the letsEncrypt ones.
LATER_HTTP_PORT = "18081"
ACME_HOST = "voice.example.org"
ACME_DIRECTORY_URL = f"https://{ACME_ADDRESS}:{ACME_PORT}/dir"
# Stands for pebble's TLS CA, made when the module starts (Lifecycle.with_change puts it in).
PEBBLE_TLS_CA = "<pebble's TLS CA>"
LETS_ENCRYPT: dict[str, str | None] = {
    "tlsMode": "letsEncrypt",
    "publicHost": ACME_HOST,
    "acmeEmail": "ops@example.org",
    "acmeServer": ACME_DIRECTORY_URL,
    "acmeServerCaCertificate": PEBBLE_TLS_CA,
    "acmeRetrySeconds": "10",
}

CHANGES = [
    Change("fastapiWorkers", "2 -> 3", {"fastapiWorkers": "3"}),
    Change("apiContainers", "1 -> 2 (the 3 workers as 2 + 1)", {"apiContainers": "2"}),
    Change("apiContainers", "2 -> 1", {"apiContainers": "1"}),
    Change("arqWorkers", "1 -> 2", {"arqWorkers": "2"}),
    Change("apiImage", "a new release", {"apiImage": NEXT_API_TAG}),
    Change("apiRelease", "the same release by its commit tag", {"apiImage": COMMIT_API_TAG,
           "apiRelease": "1.46.0"}),
    Change("apiRelease", "back to the release tag", {"apiImage": NEXT_API_TAG, "apiRelease": None}),
    Change("logLevel", "INFO -> WARNING", {"logLevel": "WARNING"}),
    Change("apiEnvironment", "unset (local here) -> production", {"apiEnvironment": "production"}),
    Change("enableSignup", "true -> false", {"enableSignup": "false"}),
    Change("telephonyWsTokenEnforce", "false -> true", {"telephonyWsTokenEnforce": "true"}),
    Change("telephonyWsTokenSecret", "set with --secret",
           secrets={"telephonyWsTokenSecret": "telephony0secret0set0by0user"}),
    Change("uiImage", "a new release", {"uiImage": NEXT_TAGS["uiImage"]}),
    Change("postgresImage", "a new image", {"postgresImage": NEXT_TAGS["postgresImage"]},
           check="clean_postgres_shutdown"),
    Change("redisImage", "a new image", {"redisImage": NEXT_TAGS["redisImage"]}),
    Change("minioImage", "a new image", {"minioImage": NEXT_TAGS["minioImage"]}),
    Change("nginxImage", "a new image", {"nginxImage": NEXT_TAGS["nginxImage"]}),
    Change("publicHost", "localhost -> dograh.test", {"publicHost": "dograh.test"}),
    Change("serverIp", "unset -> an address", {"serverIp": "203.0.113.7"}),
    Change("enableTurn", "false -> true", {"enableTurn": "true"}, check="coturn_running"),
    Change("coturnImage", "a new image", {"coturnImage": NEXT_TAGS["coturnImage"]},
           check="coturn_running"),
    Change("turnSecret", "set with --secret", secrets={"turnSecret": "turn0secret0set0by0user"},
           check="coturn_running"),
    Change("enableTurn", "true -> false", {"enableTurn": "false"}),
    Change("httpPort", "18080 -> 18081", {"httpPort": LATER_HTTP_PORT}),
    Change("httpsPort", "18443 -> 18444", {"httpsPort": "18444"}),
    Change("gatewayBindAddress", "127.0.0.1 -> 0.0.0.0", {"gatewayBindAddress": "0.0.0.0"}),
    Change("gatewayBindAddress", "0.0.0.0 -> 127.0.0.1", {"gatewayBindAddress": "127.0.0.1"}),
    Change("publishInternalOnLoopback", "false -> true", {"publishInternalOnLoopback": "true"},
           check="postgres_on_loopback"),
    Change("publishInternalOnLoopback", "true -> false", {"publishInternalOnLoopback": "false"}),
    Change("enableAriManager", "true -> false", {"enableAriManager": "false"}),
    Change("enableCampaignOrchestrator", "true -> false",
           {"enableCampaignOrchestrator": "false"}, check="no_singletons"),
    Change("enableAriManager", "both back to true",
           {"enableAriManager": "true", "enableCampaignOrchestrator": "true"}),
    Change("apiStopGraceSeconds", "5 -> 10", {"apiStopGraceSeconds": "10"}),
    Change("apiHealthTimeoutSeconds", "60 -> 90", {"apiHealthTimeoutSeconds": "90"}),
    Change("drainTimeoutSeconds", "30 -> 45", {"drainTimeoutSeconds": "45"}),
    Change("tlsMode", "selfSigned -> provided (tlsCertificate, tlsPrivateKey)",
           {"tlsMode": "provided"}, {"tlsCertificate": FIRST_CERT, "tlsPrivateKey": FIRST_KEY}),
    Change("tlsCertificate", "rotated (with tlsPrivateKey)", {},
           {"tlsCertificate": SECOND_CERT, "tlsPrivateKey": SECOND_KEY}),
    Change("tlsMode", "provided -> selfSigned", {"tlsMode": "selfSigned"},
           {"tlsCertificate": None, "tlsPrivateKey": None}),
    Change("tlsMode", "selfSigned -> letsEncrypt (publicHost, acmeEmail, acmeServer, "
           "acmeServerCaCertificate, acmeRetrySeconds), from pebble", LETS_ENCRYPT,
           check="lets_encrypt_issued"),
    Change("acmeEmail", "another address", {"acmeEmail": "dograh-ops@example.org"},
           check="acme_contact"),
    Change("acmeRetrySeconds", "10 -> 20", {"acmeRetrySeconds": "20"}),
    Change("acmeClientImage", "a new image", {"acmeClientImage": NEXT_TAGS["acmeClientImage"]}),
    Change("tlsMode", "letsEncrypt -> selfSigned", {"tlsMode": "selfSigned",
           "publicHost": "dograh.test"}),
    Change("postgresPassword", "set with --secret",
           secrets={"postgresPassword": "postgres0password0set0by0user"}),
    Change("redisPassword", "set with --secret",
           secrets={"redisPassword": "redis0password0set0by0user"}),
    Change("minioRootPassword", "set with --secret",
           secrets={"minioRootPassword": "minio0password0set0by0user"}),
    Change("ossJwtSecret", "set with --secret", secrets={"ossJwtSecret": "jwt0secret0set0by0user"}),
    Change("devopsSecret", "set with --secret",
           secrets={"devopsSecret": "devops0secret0set0by0user"}),
    Change("externalDatabaseUrl", "bundled -> external", secrets={"externalDatabaseUrl": EXTERNAL_DATABASE}),
    Change("externalDatabaseUrl", "external -> bundled", secrets={"externalDatabaseUrl": None}),
    Change("externalRedisUrl", "bundled -> external", secrets={"externalRedisUrl": EXTERNAL_REDIS}),
    Change("externalRedisUrl", "external -> bundled", secrets={"externalRedisUrl": None}),
    Change("s3Bucket", "minio -> external S3 (s3Region, s3EndpointUrl, s3AccessKeyId, "
           "s3SecretAccessKey)", EXTERNAL_S3, EXTERNAL_S3_KEYS),
    Change("s3Region", "us-east-1 -> eu-west-1", {"s3Region": "eu-west-1"}),
    Change("s3EndpointUrl", "another name of the same endpoint",
           {"s3EndpointUrl": "http://external-s3-alias:9000"}),
    Change("s3SignatureVersion", "unset -> s3v4 (and s3AddressingStyle unset -> path)",
           EXTERNAL_S3_TUNING),
    Change("s3SessionToken", "set with --secret", secrets={"s3SessionToken": "session0token"}),
    Change("s3Bucket", "external S3 -> minio", dict.fromkeys({**EXTERNAL_S3, **EXTERNAL_S3_TUNING}),
           dict.fromkeys({**EXTERNAL_S3_KEYS, "s3SessionToken": None})),
    Change("rolloutStrategy", "zeroDowntime -> recreate", {"rolloutStrategy": "recreate"}),
    Change("fastapiWorkers", "3 -> 2 (recreate)", {"fastapiWorkers": "2"}),
    Change("rolloutStrategy", "recreate -> zeroDowntime", {"rolloutStrategy": "zeroDowntime"}),
]  # fmt: skip


class Lifecycle:
    """The stack under test, the settings and secrets it has now, and what each change did."""

    def __init__(self, stack: EngineStack, acme: AcmeServer):
        self.stack = stack
        self.acme = acme
        self.settings: dict[str, str] = dict(BASE)
        self.secrets: dict[str, str] = {}
        self.results: list[dict[str, Any]] = []

    def with_change(self, change: Change) -> tuple[dict[str, str], dict[str, str]]:
        settings, secrets = dict(self.settings), dict(self.secrets)
        for target, delta in ((settings, change.settings), (secrets, change.secrets)):
            for key, value in delta.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = self.acme.tls_ca_pem if value == PEBBLE_TLS_CA else value
        return settings, secrets

    def apply(self, settings: dict[str, str], secrets: dict[str, str]) -> Plan:
        plan = self.stack.apply_declaration(self.stack.declare(secrets, **settings), settings)
        self.settings, self.secrets = settings, secrets
        return plan


@pytest.fixture(scope="module")
def life():
    with (
        acme_server(validation_port=int(LATER_HTTP_PORT)) as acme,
        engine_stack() as (stack, _report),
    ):
        lifecycle = Lifecycle(stack, acme)
        lifecycle.apply(dict(BASE), {})
        start_externals(stack)
        stack.psql(f"CREATE TABLE {MARKER_TABLE} (note text)")
        stack.psql(f"INSERT INTO {MARKER_TABLE} (note) VALUES ('{ROW_NOTE}')")
        stack.s3(f"s3.put_object(Bucket=bucket, Key='{OBJECT_KEY}', Body=b'RIFF-lifecycle')")
        yield lifecycle
        write_results(lifecycle.results)


def start_externals(stack: EngineStack) -> None:
    """An external postgres, redis and S3 endpoint on the stack network (the same stand-ins),
    for the changes that move the api to external services."""
    tags = standin_tags()
    externals = {
        "external-postgres": (tags["postgres"][0], {"POSTGRES_PASSWORD": EXTERNAL_PASSWORD}, None),
        "external-redis": (
            tags["redis"][0],
            {},
            ["redis-server", "--requirepass", EXTERNAL_PASSWORD],
        ),
        "external-s3": (
            tags["minio"][0],
            {"MINIO_ROOT_USER": "external-key", "MINIO_ROOT_PASSWORD": EXTERNAL_PASSWORD},
            ["server", "/data"],
        ),
    }
    network = stack.client.networks.get(f"{PREFIX}-net")
    for name, (image, environment, command) in externals.items():
        container = stack.client.containers.create(
            image, command=command, environment=environment, name=f"{PREFIX}-{name}",
            detach=True,
        )  # fmt: skip
        aliases = [name, "external-s3-alias"] if name == "external-s3" else [name]
        network.connect(container, aliases=aliases)
        container.start()
    # An operator creates the external bucket (Dograh's api only creates minio's): here with
    # boto3 from the api container, which ships it.
    create = (
        "import boto3, time\n"
        "s3 = boto3.client('s3', endpoint_url='http://external-s3:9000', region_name="
        f"'us-east-1', aws_access_key_id='external-key', aws_secret_access_key='{EXTERNAL_PASSWORD}')\n"
        "for _ in range(30):\n"
        "    try:\n"
        f"        s3.create_bucket(Bucket='{EXTERNAL_S3['s3Bucket']}'); break\n"
        "    except Exception:\n"
        "        time.sleep(1)\n"
        "else:\n"
        "    raise SystemExit('external S3 never answered')\n"
    )
    made = stack.container("api").exec_run(["python", "-c", create])
    assert made.exit_code == 0, made.output


def remove_externals(stack: EngineStack) -> None:
    for container in stack.client.containers.list(
        all=True, filters={"name": f"{PREFIX}-external-"}
    ):
        container.remove(force=True)


def step_ops(plan: Plan) -> dict[str, str]:
    return {step.name: step.op for step in plan.steps if step.op != "same"}


def serving_current_generation(stack: EngineStack) -> bool:
    return stack.serving(8) == {container.name for container in stack.api_containers()}


def assert_serving(stack: EngineStack) -> None:
    """nginx answers through the api generation that is current, with the declared cert; on
    the stand-in, the workers reach their services with the credentials they were given."""
    assert stack.wait_until(lambda: serving_current_generation(stack), timeout=60), (
        f"nginx does not serve through {stack.container('api').name}: {stack.health()}"
    )
    if stack.settings.get("tlsMode") == "letsEncrypt":
        # The issued certificate (from the first letsEncrypt change on), not the temporary one.
        assert stack.wait_until(lambda: "Pebble" in served_issuer(stack), 60), served_issuer(stack)
    else:
        served = ssl.PEM_cert_to_DER_cert(stack.served_certificate())
        assert served == ssl.PEM_cert_to_DER_cert(stack.declared_certificate())
    if "apiImage" not in REAL_IMAGES:  # a test-only endpoint of the stand-in
        checks = https_get(stack.https_port, "/api/v1/standin-test/dependencies")[1]
        assert (checks["postgres"], checks["redis"], checks["s3"]) == ("ok", "ok", "ok"), checks


def served_issuer(stack: EngineStack) -> str:
    return subprocess.run(
        ["openssl", "x509", "-noout", "-issuer"],
        input=stack.served_certificate(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def assert_data_kept(life: Lifecycle) -> None:
    stack = life.stack
    volumes = {v.name for v in stack.client.volumes.list(filters={"name": PREFIX})}
    assert {f"{PREFIX}-{s}-data" for s in ("postgres", "redis", "minio")} <= volumes
    if "externalDatabaseUrl" not in life.secrets:
        assert ROW_NOTE in stack.psql(f"SELECT note FROM {MARKER_TABLE}").splitlines()
    if "s3Bucket" not in life.settings:
        body = stack.s3(
            f"print(s3.get_object(Bucket=bucket, Key='{OBJECT_KEY}')['Body'].read().decode())"
        )
        assert body == "RIFF-lifecycle"


def extra_check(life: Lifecycle, check: str | None) -> None:
    stack = life.stack
    if check == "clean_postgres_shutdown":
        logs = stack.container("postgres").logs().decode(errors="replace")
        assert "database system was shut down at" in logs, logs
        assert "not properly shut down" not in logs and "automatic recovery" not in logs, logs
    elif check == "coturn_running":
        coturn = stack.container("coturn")
        assert stack.wait_until(lambda: coturn.reload() or coturn.status == "running", 10)
        assert coturn.attrs["RestartCount"] == 0, coturn.logs(tail=20)
        assert "turnserver" in str(coturn.top()["Processes"])
    elif check == "postgres_on_loopback":
        ports = stack.container("postgres").attrs["NetworkSettings"]["Ports"]["5432/tcp"]
        assert ports == [{"HostIp": "127.0.0.1", "HostPort": "5432"}]
    elif check == "lets_encrypt_issued":
        # Issued once, whatever changes follow (re-applying asks the CA for nothing).
        assert life.acme.issued_count() == 1
        assert stack.container("acme").attrs["RestartCount"] == 0
    elif check == "acme_contact":
        # What the ACME server has (certbot asks it), and still no new certificate.
        server = life.settings["acmeServer"]
        shown = stack.container("acme").exec_run(["certbot", "show_account", "--server", server])
        assert "Email contact: dograh-ops@example.org" in shown.output.decode(), shown.output
        assert life.acme.issued_count() == 1
    elif check == "no_singletons":
        assert not stack.client.containers.list(filters={"name": f"{PREFIX}-api-singletons"})


def record(life: Lifecycle, change: Change, plan: Plan, report: LoadReport, seconds: float):
    life.results.append(
        {
            "setting": change.setting,
            "change": change.description,
            **step_kinds(step_ops(plan)),
            "seconds": round(seconds, 1),
            "requests": report.requests,
            "failed_requests": report.failed_requests,
            "longest_gap_ms": round(report.longest_gap_ms),
            "calls": report.calls,
            "calls_cut": report.calls_cut_early,
        }
    )


# Settings that need more than this stack's one engine, changed in another layer.
CHANGED_ELSEWHERE = {
    "privateAddress": "tests/engine/test_hosts.py (only used with apiHosts, which need api hosts)",
}


def test_every_setting_and_every_secret_setting_is_changed_here():
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    changed = {key for change in CHANGES for key in (*change.settings, *change.secrets)}
    assert set(project["config"]) | set(SECRET_KEYS) <= changed | set(CHANGED_ELSEWHERE)


def test_a_new_stack_applied_again_changes_nothing(life):
    stack = life.stack
    again = stack.apply_declaration(stack.declare(life.secrets, **life.settings), life.settings)
    assert step_ops(again) == {}
    assert_serving(stack)


@pytest.mark.parametrize("change", CHANGES, ids=[f"{c.setting}: {c.description}" for c in CHANGES])
def test_a_setting_change_on_the_running_stack(life, change):
    stack = life.stack
    settings, secrets = life.with_change(change)
    before = stack.declaration
    after = stack.declare(secrets, **settings)
    assert after.error is None, after.error
    predicted = plan_changes(recorded(before), after)  # what offline/preview.py shows
    started = time.monotonic()
    with (
        SingletonWatch(stack.client, PREFIX) as watch,
        RolloutLoad(stack, requests_per_second=20, calls=10) as load,
    ):
        executed = stack.apply_declaration(after, settings)
        load.end_calls()
        report = load.stop()
    life.settings, life.secrets = settings, secrets
    record(life, change, executed, report, time.monotonic() - started)
    print(f"\n{change.setting} ({change.description}): {step_ops(executed)} {report.as_dict()}")

    assert step_ops(executed) == step_ops(predicted)
    assert_serving(stack)
    assert_data_kept(life)
    assert max(watch.most.values(), default=0) <= 1, f"singletons ran twice: {dict(watch.most)}"
    extra_check(life, change.check)
    again = stack.apply_declaration(stack.declare(secrets, **settings), settings)
    assert step_ops(again) == {}, "applying the same declaration again changed something"


def test_a_generation_that_never_gets_healthy_fails_again_on_retry_and_rolls_back_cleanly(life):
    stack = life.stack
    serving = stack.container("api")
    failing = {**life.settings, "apiImage": UNHEALTHY_API_TAG, "apiHealthTimeoutSeconds": "20"}
    with RolloutLoad(stack, requests_per_second=20, calls=10) as load:
        with pytest.raises(ApplyError, match="did not become healthy"):
            stack.apply(life.secrets, **failing)
        # The same `pulumi up` again: the engine clears the failed create's error with an
        # empty update; the reload step checks health itself and refuses.
        with pytest.raises(ApplyError, match="not healthy: nginx stays on the generation"):
            stack.apply(life.secrets, **failing)
        assert stack.serving() == {serving.name}
        load.end_calls()
        report = load.stop()
    print(f"\nunhealthy generation, twice: {report.as_dict()}")
    assert (report.failed_requests, report.calls_cut_early) == (0, 0)
    assert report.generations_seen == [serving.name]

    with RolloutLoad(stack, requests_per_second=20, calls=10) as load:
        rollback = life.apply(dict(life.settings), dict(life.secrets))
        report = load.stop()
    print(f"\nrolled back: {step_ops(rollback)} {report.as_dict()}")
    assert (report.failed_requests, report.calls_cut_early) == (0, 0)
    # The healthy generation was never touched; the failed one is deleted.
    assert stack.container("api").id == serving.id
    generations = stack.client.containers.list(all=True, filters={"name": f"{PREFIX}-api-"})
    assert {c.name for c in generations if "-api-migrate-" not in c.name} == {
        serving.name,
        f"{PREFIX}-api-singletons",
    }
    assert_serving(stack)


def test_the_engine_restarted_under_load_comes_back_by_itself(life):
    stack = life.stack
    stack.psql(f"INSERT INTO {MARKER_TABLE} (note) VALUES ('committed before the restart')")
    stack.s3("s3.put_object(Bucket=bucket, Key='restart/before.wav', Body=b'RIFF-restart')")
    with RolloutLoad(stack, requests_per_second=20, calls=10) as load:
        started = time.monotonic()
        restart_engine()
        back = stack.wait_until(lambda: serving_current_generation(stack), timeout=240)
        serving_after = time.monotonic() - started
        report = load.stop()
    print(f"\nengine restart: serving again after {serving_after:.1f} s; {report.as_dict()}")
    assert back, "nginx did not serve through the api again after the engine restart"
    expected = {
        name
        for name, container in stack.declaration.containers().items()
        if not reveal(container.inputs).get("attach")  # a one-off job has ended, as it should
    }
    running = {c.name for c in stack.client.containers.list(filters={"name": PREFIX})}
    assert expected <= running
    assert "committed before the restart" in stack.psql(f"SELECT note FROM {MARKER_TABLE}")
    assert (
        stack.s3(
            "print(s3.get_object(Bucket=bucket, Key='restart/before.wav')['Body'].read().decode())"
        )
        == "RIFF-restart"
    )
    again = stack.apply_declaration(stack.declare(life.secrets, **life.settings), life.settings)
    assert step_ops(again) == {}
    life.results.append(
        {
            "setting": "(Docker engine restarted)",
            "change": "dockerd stopped and started, as on a reboot or an upgrade",
            "replaced": [], "updated": [], "created": [], "deleted": [], "nginx": "",
            "what": "every container stopped, then started again by its restart policy; "
            "nginx finds the api at its new address",
            "seconds": round(serving_after, 1),
            "requests": report.requests,
            "failed_requests": report.failed_requests,
            "longest_gap_ms": round(report.longest_gap_ms),
            "calls": report.calls,
            "calls_cut": report.calls_cut_early,
        }
    )  # fmt: skip


def test_destroy_as_the_readme_says_keeps_the_data_and_up_finds_it_again(life):
    stack = life.stack
    # `pulumi destroy` alone: refused, the api generation has a drain hook.
    with pytest.raises(ApplyError, match="--run-program; nothing was deleted"):
        stack.applier.destroy()
    assert stack.client.containers.list(filters={"name": f"{PREFIX}-gateway"})
    # `pulumi destroy --run-program --exclude-protected`: everything but the data volumes.
    remove_externals(stack)  # not the stack's: they would keep its network in use
    stack.applier.destroy(stack.declaration, exclude_protected=True)
    assert not stack.client.containers.list(all=True, filters={"name": PREFIX})
    kept = {v.name for v in stack.client.volumes.list(filters={"name": PREFIX})}
    assert {f"{PREFIX}-{s}-data" for s in ("postgres", "redis", "minio")} <= kept
    # `pulumi up` again: the volumes are adopted as they are, the data is there.
    plan = life.apply(dict(life.settings), dict(life.secrets))
    assert not {name for name, op in step_ops(plan).items() if name.endswith("-data")}
    assert_serving(stack)
    assert_data_kept(life)


def write_results(results: list[dict[str, Any]]) -> None:
    """Keep the measurements; fail when the kinds of steps differ from the committed file,
    which the README's table is rendered from."""
    if not results:
        return
    if not RESULTS_PATH.exists():
        RESULTS_PATH.write_text(json.dumps(results, indent=1) + "\n")
        return
    committed = json.loads(RESULTS_PATH.read_text())
    RESULTS_PATH.write_text(json.dumps(results, indent=1) + "\n")
    kinds = ("setting", "change", "replaced", "updated", "created", "deleted", "nginx")
    observed = [{k: row[k] for k in kinds} for row in results]
    expected = [{k: row[k] for k in kinds} for row in committed]
    if len(results) == len(CHANGES) + 1 and observed != expected:
        pytest.fail(
            f"what the setting changes did differs from {RESULTS_PATH.name}: the file is "
            "rewritten now; commit it and run `python -m tools.setting_changes_table --write`"
        )
