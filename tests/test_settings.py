"""The settings model: what it accepts, what it refuses and how it says so."""

import json
import re
import typing

import pytest
import yaml

from components.settings import (
    SECRET_KEYS,
    STRUCTURED_KEYS,
    SettingsError,
    StackSettings,
    validate_settings,
)
from offline.declare import PROJECT_DIR


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "4.5", "", "100000", "65"])
def test_bad_worker_counts_are_refused_naming_key_value_and_range(bad):
    with pytest.raises(SettingsError) as refused:
        validate_settings({"fastapiWorkers": bad}, set())
    message = str(refused.value)
    assert "dograh:fastapiWorkers" in message
    assert repr(bad) in message
    assert "from 1 to 64" in message


@pytest.mark.parametrize("good", ["1", "4", "8", "64"])
def test_worker_counts_in_range_are_accepted(good):
    assert validate_settings({"fastapiWorkers": good}, set()).fastapi_workers == int(good)


@pytest.mark.parametrize(
    "key, value, reason",
    [
        ("apiImage", "dograhai/dograh-api", "untagged image means `latest`"),
        ("apiImage", "dograhai/dograh-api:latest", "`latest` changes under you"),
        ("apiImage", "dograhai/dograh-api:1.28.3", "1.29.0 or newer"),
        ("apiImage", "dograhai/dograh-api:v1.45.0", "write dograhai/dograh-api:1.45.0"),
        ("uiImage", "dograhai/dograh-ui:v1.44.1", "write dograhai/dograh-ui:1.44.1"),
        ("apiImage", "dograhai/dograh-api@sha256:" + "a" * 64, "set apiRelease"),
        ("logLevel", "verbose", "'DEBUG', 'INFO'"),
        ("apiEnvironment", "staging", "'local' or 'production'"),
        ("s3AddressingStyle", "sideways", "'auto', 'path' or 'virtual'"),
        ("nginxImage", "nginx:latest", "`latest`"),
        ("publicHost", "not a host!", "DNS host name"),
        ("serverIp", "300.1.1.1", "IPv4 or IPv6"),
        ("tlsMode", "letsencrypt", "selfSigned"),
        ("httpsPort", "70000", "from 1 to 65535"),
        ("enableTurn", "maybe", "true or false"),
    ],
)
def test_each_bad_value_is_named_with_what_is_allowed(key, value, reason):
    with pytest.raises(SettingsError) as refused:
        validate_settings({key: value}, set())
    message = str(refused.value)
    assert f"dograh:{key} = {value!r}" in message
    assert reason in message


def test_all_problems_are_reported_at_once():
    with pytest.raises(SettingsError) as refused:
        validate_settings({"fastapiWorkers": "0", "redisImage": "redis", "arqWorkers": "x"}, set())
    assert len(refused.value.problems) == 3


def test_a_misspelt_key_is_refused_with_a_suggestion():
    with pytest.raises(SettingsError, match=r"fastapiWorker is not a setting.*fastapiWorkers"):
        validate_settings({"fastapiWorker": "8"}, set())


def test_turn_needs_the_servers_public_ip():
    with pytest.raises(SettingsError, match="serverIp"):
        validate_settings({"enableTurn": "true"}, set())
    assert validate_settings({"enableTurn": "true", "serverIp": "203.0.113.7"}, set()).enable_turn


def test_provided_tls_needs_both_certificate_and_key():
    with pytest.raises(SettingsError, match="tlsCertificate and tlsPrivateKey"):
        validate_settings({"tlsMode": "provided"}, {"tlsCertificate"})
    validate_settings({"tlsMode": "provided"}, {"tlsCertificate", "tlsPrivateKey"})


def test_external_s3_needs_its_credentials():
    with pytest.raises(SettingsError, match="s3AccessKeyId"):
        validate_settings({"s3Bucket": "calls"}, set())


def test_empty_string_means_unset_for_optional_settings_only():
    assert validate_settings({"serverIp": "", "s3Bucket": ""}, set()).server_ip is None
    with pytest.raises(SettingsError):
        validate_settings({"publicHost": ""}, set())


def test_pulumi_yaml_declares_every_plain_setting_with_the_models_type_and_default():
    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    # A list of objects (apiHosts) has no project config type; the program validates it.
    fields = {
        field.alias: field
        for field in StackSettings.model_fields.values()
        if field.alias not in STRUCTURED_KEYS
    }
    assert set(declared) == set(fields)
    for key, field in fields.items():
        annotation = field.annotation
        if typing.get_origin(annotation) in (
            typing.Union,
            __import__("types").UnionType,
        ):
            annotation = typing.get_args(annotation)[0]
        expected_type = {int: "integer", bool: "boolean"}.get(annotation, "string")
        assert declared[key]["type"] == expected_type, key
        default = "" if field.default is None else field.default
        assert declared[key]["default"] == default, key
        assert declared[key]["description"], key
    assert not set(declared) & set(SECRET_KEYS)
    assert declared["fastapiWorkers"] == {
        "type": "integer",
        "default": 4,
        "description": declared["fastapiWorkers"]["description"],
    }


@pytest.mark.parametrize(
    "raw, key, needs",
    [
        ({"apiImage": "dograhai/dograh-api:1.44.0"}, "rolloutStrategy", "1.45.0"),
        (
            {
                "apiImage": "dograhai/dograh-api:1.44.0",
                "rolloutStrategy": "recreate",
                "enableCampaignOrchestrator": "false",
            },
            "enableCampaignOrchestrator",
            "1.45.0",
        ),
        (
            {
                "apiImage": "dograhai/dograh-api:1.41.2",
                "rolloutStrategy": "recreate",
                "enableSignup": "false",
            },
            "enableSignup",
            "1.42.0",
        ),
        (
            {
                "apiImage": "dograhai/dograh-api:1.37.0",
                "rolloutStrategy": "recreate",
                "s3Bucket": "calls",
                "s3EndpointUrl": "https://s3.example.net",
            },
            "s3EndpointUrl",
            "1.38.0",
        ),
        (
            {
                "apiImage": "dograhai/dograh-api:1.44.0",
                "rolloutStrategy": "recreate",
                "telephonyWsTokenEnforce": "true",
            },
            "telephonyWsTokenEnforce",
            "1.45.0",
        ),
        (
            {"apiImage": "dograhai/dograh-api@sha256:" + "b" * 64, "apiRelease": "1.40.0"},
            "rolloutStrategy",
            "1.45.0",
        ),
    ],
)
def test_a_setting_the_api_release_cannot_honour_is_refused_naming_the_release_it_needs(
    raw, key, needs
):
    with pytest.raises(SettingsError) as refused:
        validate_settings(raw, {"s3AccessKeyId", "s3SecretAccessKey"})
    (problem,) = refused.value.problems
    assert problem.startswith(f"dograh:{key} = "), problem
    assert f"needs api release {needs} or newer" in problem
    assert "Instead:" in problem


def test_zero_downtime_on_an_old_release_names_recreate_as_the_alternative():
    with pytest.raises(SettingsError) as refused:
        validate_settings({"apiImage": "dograhai/dograh-api:1.40.0"}, set())
    assert "set rolloutStrategy to 'recreate'" in str(refused.value)


def test_an_old_release_with_recreate_and_its_own_defaults_is_accepted():
    settings = validate_settings(
        {"apiImage": "dograhai/dograh-api:1.39.0", "rolloutStrategy": "recreate"}, set()
    )
    assert settings.api_release_number == (1, 39, 0)


def test_a_digest_pinned_image_takes_its_release_from_api_release_which_must_agree_with_a_tag():
    pinned = "dograhai/dograh-api@sha256:" + "c" * 64
    assert validate_settings(
        {"apiImage": pinned, "apiRelease": "1.45.0"}, set()
    ).api_release_number == (1, 45, 0)
    with pytest.raises(SettingsError) as refused:
        validate_settings({"apiImage": "dograhai/dograh-api:1.45.0", "apiRelease": "1.44.0"}, set())
    assert "contradicts apiImage" in str(refused.value)


@pytest.mark.parametrize(
    "raw, environment",
    [
        ({}, "local"),
        ({"publicHost": "10.1.2.3"}, "local"),
        ({"publicHost": "dograh.example.com"}, "production"),
        (
            {"publicHost": "192.168.1.5", "enableTurn": "true", "serverIp": "203.0.113.7"},
            "production",
        ),
        ({"publicHost": "dograh.example.com", "apiEnvironment": "local"}, "local"),
    ],
)
def test_the_api_environment_is_local_only_where_browsers_reach_it_on_a_private_address(
    raw, environment
):
    assert validate_settings(raw, set()).environment == environment


def test_storage_tuning_and_a_session_token_need_an_external_bucket():
    with pytest.raises(SettingsError) as refused:
        validate_settings({"s3AddressingStyle": "path"}, set())
    assert "s3Bucket required when s3AddressingStyle is set" in str(refused.value)
    with pytest.raises(SettingsError) as refused:
        validate_settings({}, {"s3SessionToken"})
    assert "s3SessionToken is set but s3Bucket is not" in str(refused.value)


# Each publisher's documented tag scheme (the closing note of issue 9 cites where each was
# checked): a default that drifts from it names an image that does not exist.
PUBLISHED_TAG_SCHEMES = {
    "apiImage": r"^dograhai/dograh-api:\d+\.\d+\.\d+$",
    "uiImage": r"^dograhai/dograh-ui:\d+\.\d+\.\d+$",
    "postgresImage": r"^pgvector/pgvector:\d+\.\d+\.\d+-pg\d+$",
    "redisImage": r"^redis:\d+\.\d+\.\d+$",
    "minioImage": r"^minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$",
    "nginxImage": r"^nginx:\d+\.\d+\.\d+-alpine$",
    "coturnImage": r"^coturn/coturn:\d+\.\d+\.\d+-r\d+$",
    # certbot's tools/docker/deploy_manifests.sh @v5.6.0: images tagged vX.Y.Z.
    "acmeClientImage": r"^certbot/certbot:v\d+\.\d+\.\d+$",
}


@pytest.mark.parametrize("key", sorted(PUBLISHED_TAG_SCHEMES))
def test_every_default_image_is_spelt_as_its_publisher_tags_releases(key):
    default = StackSettings().model_dump(by_alias=True)[key]
    assert re.match(PUBLISHED_TAG_SCHEMES[key], default), default


LETS_ENCRYPT = {"tlsMode": "letsEncrypt", "acmeEmail": "ops@example.org"}


@pytest.mark.parametrize(
    "host, reason",
    [
        ("localhost", "names under .localhost are private"),
        ("dograh.localhost", "names under .localhost are private"),
        ("dograh.internal", "names under .internal are private"),
        ("voice.home.arpa", "names under .home.arpa"),
        ("dograh", "single-label name"),
        ("203.0.113.7", "it is an IP address"),
        ("2001:db8::7", "it is an IP address"),
    ],
)
def test_lets_encrypt_is_refused_for_a_host_no_public_ca_can_certify(host, reason):
    with pytest.raises(SettingsError) as refused:
        validate_settings({**LETS_ENCRYPT, "publicHost": host}, set())
    message = str(refused.value)
    assert f"publicHost = {host!r}" in message and reason in message
    assert "'selfSigned' or 'provided'" in message


def test_lets_encrypt_needs_a_contact_address_and_takes_a_public_name():
    with pytest.raises(SettingsError, match="acmeEmail is required with tlsMode = 'letsEncrypt'"):
        validate_settings({"tlsMode": "letsEncrypt", "publicHost": "voice.example.org"}, set())
    with pytest.raises(SettingsError, match="acmeEmail = 'ops' is not allowed; expected an e-mail"):
        validate_settings({**LETS_ENCRYPT, "acmeEmail": "ops"}, set())
    settings = validate_settings({**LETS_ENCRYPT, "publicHost": "voice.example.org"}, set())
    assert settings.acme_server == "https://acme-v02.api.letsencrypt.org/directory"


def test_retrying_faster_than_lets_encrypt_allows_is_refused_but_a_private_server_may():
    fast = {**LETS_ENCRYPT, "publicHost": "voice.example.org", "acmeRetrySeconds": "60"}
    for server in (
        "https://acme-v02.api.letsencrypt.org/directory",
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ):
        with pytest.raises(SettingsError, match=r"acmeRetrySeconds = 60 .* use 720 or more"):
            validate_settings({**fast, "acmeServer": server}, set())
    private = validate_settings({**fast, "acmeServer": "https://ca.example.net/acme/dir"}, set())
    assert private.acme_retry_seconds == 60


@pytest.mark.parametrize(
    "key, value, reason",
    [
        ("acmeServer", "http://acme.example.net/dir", "an https:// ACME directory URL"),
        ("acmeServerCaCertificate", "not a pem", "a PEM CA certificate"),
        ("acmeRetrySeconds", "5", "from 10 to 86400"),
        ("acmeClientImage", "certbot/certbot:latest", "`latest`"),
    ],
)
def test_bad_acme_settings_are_named(key, value, reason):
    with pytest.raises(SettingsError) as refused:
        validate_settings({key: value}, set())
    assert f"dograh:{key} = {value!r}" in str(refused.value) and reason in str(refused.value)


def test_a_provided_certificate_left_set_under_lets_encrypt_is_named():
    with pytest.raises(SettingsError, match="tlsMode is 'letsEncrypt'; set tlsMode to 'provided'"):
        validate_settings(
            {**LETS_ENCRYPT, "publicHost": "voice.example.org"}, {"tlsCertificate", "tlsPrivateKey"}
        )


def test_api_containers_share_the_workers_and_need_the_singleton_switches():
    with pytest.raises(SettingsError) as refused:
        validate_settings({"fastapiWorkers": "2", "apiContainers": "3"}, set())
    assert "apiContainers = 3 is more than fastapiWorkers = 2" in str(refused.value)
    with pytest.raises(SettingsError) as refused:
        validate_settings(
            {"apiContainers": "2", "apiImage": "dograhai/dograh-api:1.44.0",
             "rolloutStrategy": "recreate"}, set()
        )  # fmt: skip
    assert "apiContainers = 2 needs api release 1.45.0" in str(refused.value)
    assert (
        validate_settings({"fastapiWorkers": "4", "apiContainers": "4"}, set()).api_containers == 4
    )


def _hosts(*entries: dict) -> str:
    return json.dumps(list(entries))


H2 = {"name": "h2", "dockerHost": "ssh://dograh@10.0.0.12", "address": "10.0.0.12"}


def test_api_hosts_problems_name_their_path_value_and_what_is_allowed():
    with pytest.raises(SettingsError) as refused:
        validate_settings(
            {
                "apiHosts": _hosts(
                    {**H2, "dockerHost": "10.0.0.12"},
                    {"name": "Main Host", "dockerHost": "tcp://h:2376", "address": "0.0.0.0"},
                    {"name": "h4", "address": "10.0.0.14", "fastapiWorkers": 0, "port": 22},
                ),
                "privateAddress": "10.0.0.1",
            },
            set(),
        )
    text = str(refused.value)
    assert (
        "dograh:apiHosts[0].dockerHost = '10.0.0.12' is not allowed; expected a Docker host URL"
        in text
    )
    assert "dograh:apiHosts[1].name = 'Main Host' is not allowed" in text
    assert "dograh:apiHosts[1].address = '0.0.0.0' is not allowed" in text
    assert "dograh:apiHosts[2].dockerHost is required" in text
    assert (
        "dograh:apiHosts[2].fastapiWorkers = 0 is not allowed; expected an integer from 1 to 64"
        in text
    )
    assert "dograh:apiHosts[2].port is not a field of an api host" in text


def test_api_hosts_need_unique_names_and_addresses_a_private_address_and_zero_downtime():
    with pytest.raises(SettingsError) as refused:
        validate_settings(
            {
                "apiHosts": _hosts(H2, {**H2, "address": "10.0.0.1"}, {**H2, "name": "h3"}),
                "rolloutStrategy": "recreate",
            },
            set(),
        )
    text = str(refused.value)
    assert "dograh:apiHosts[1].name = 'h2' is already the name of apiHosts[0]" in text
    assert "dograh:apiHosts[2].address = '10.0.0.12' is already apiHosts[0].address's" in text
    assert "dograh:privateAddress is required with apiHosts" in text
    assert "dograh:rolloutStrategy = 'recreate' is not allowed with apiHosts" in text


def test_api_hosts_settings_are_read_from_pulumis_json_and_default_to_the_stacks_workers():
    settings = validate_settings(
        {"apiHosts": _hosts(H2, {**H2, "name": "h3", "address": "10.0.0.13", "fastapiWorkers": 6}),
         "privateAddress": "10.0.0.1", "fastapiWorkers": "2"},
        set(),
    )  # fmt: skip
    assert [settings.host_workers(h) for h in settings.api_hosts] == [2, 6]
    with pytest.raises(SettingsError, match=r"apiHosts = 'h2' is not allowed; expected a list"):
        validate_settings({"apiHosts": "h2"}, set())
    with pytest.raises(SettingsError, match=r"privateAddress = '10\.0\.0\.1' is set but apiHosts"):
        validate_settings({"privateAddress": "10.0.0.1"}, set())
    with pytest.raises(
        SettingsError, match=r"apiHosts\[0\].fastapiWorkers = 1 is less than apiContainers = 2"
    ):
        validate_settings(
            {"apiHosts": _hosts({**H2, "fastapiWorkers": 1}), "privateAddress": "10.0.0.1",
             "apiContainers": "2"},
            set(),
        )  # fmt: skip
