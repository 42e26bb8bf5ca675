"""The settings model: what it accepts, what it refuses and how it says so."""

import typing

import pytest
import yaml

from components.settings import (
    SECRET_KEYS,
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
        ("apiImage", "dograhai/dograh-api:v1.28.3", "v1.29.0 or newer"),
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
    fields = {field.alias: field for field in StackSettings.model_fields.values()}
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
