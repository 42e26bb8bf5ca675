"""tlsMode=letsEncrypt as the program declares it, under Pulumi's mocks (the engine layer
`scripts/test.sh acme` runs it against a real ACME server)."""

import itertools

import pytest

from components.acme import (
    CERTIFICATES_PATH,
    CLIENT_SCRIPT_PATH,
    SERVER_CA_PATH,
    first_report_needs_attention,
)
from components.gateway import CERTIFICATE_PATH, CERTIFICATES_SCRIPT_PATH, PRIVATE_KEY_PATH
from offline.changes import plan_changes, recorded
from offline.declare import COMMAND, VOLUME, Declaration, declare, reveal
from offline.preview import nginx_config
from tests.test_program import envs, uploaded

HOST = "voice.example.org"
LETS_ENCRYPT = {"tlsMode": "letsEncrypt", "publicHost": HOST, "acmeEmail": "ops@example.org"}
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBprivateacme\n-----END CERTIFICATE-----\n"


def declared(**settings: str) -> Declaration:
    declaration = declare("dev", overrides=settings)
    assert declaration.error is None, declaration.error
    return declaration


@pytest.fixture(scope="module")
def lets_encrypt() -> Declaration:
    return declared(**LETS_ENCRYPT)


def mounts(container) -> dict[str, tuple[str, bool]]:
    return {
        volume["containerPath"]: (volume["volumeName"], bool(volume.get("readOnly")))
        for volume in reveal(container.inputs.get("volumes") or [])
    }


def test_certbot_runs_beside_nginx_sharing_the_webroot_and_the_certificate_volume(lets_encrypt):
    containers = lets_encrypt.containers()
    client, gateway = containers["dograh-dev-acme"], containers["dograh-dev-gateway"]
    inputs = reveal(client.inputs)
    assert inputs["entrypoints"] == ["sh"] and inputs["command"] == [CLIENT_SCRIPT_PATH]
    assert uploaded(client, CLIENT_SCRIPT_PATH).startswith("#!/bin/sh")
    assert envs(client) == {
        "ACME_DOMAIN": HOST,
        "ACME_EMAIL": "ops@example.org",
        "ACME_SERVER": "https://acme-v02.api.letsencrypt.org/directory",
        "ACME_WEBROOT": "/var/www/acme",
        "ACME_CHECK_SECONDS": "43200",
        "ACME_RETRY_SECONDS": "900",
    }
    client_mounts, gateway_mounts = mounts(client), mounts(gateway)
    # certbot writes the challenge files and the certificates; nginx only reads them.
    assert client_mounts["/var/www/acme"][0] == gateway_mounts["/var/www/acme"][0]
    assert client_mounts[CERTIFICATES_PATH] == ("dograh-dev-issued-certificates", False)
    assert gateway_mounts[CERTIFICATES_PATH] == ("dograh-dev-issued-certificates", True)
    assert gateway_mounts["/var/www/acme"][1] is True
    # The client starts once nginx (which answers the challenge) runs with its config.
    reload = lets_encrypt.by_name("dograh-gateway-reload")
    assert {gateway.urn, reload.urn} <= set(client.dependencies)


def test_nginx_serves_the_temporary_certificate_until_the_issued_one_is_installed(lets_encrypt):
    gateway = lets_encrypt.containers()["dograh-dev-gateway"]
    command = reveal(gateway.inputs["command"])
    assert command[:2] == ["sh", CERTIFICATES_SCRIPT_PATH]
    assert command[3:] == [f"{CERTIFICATES_PATH}/live/{HOST}", CERTIFICATE_PATH, PRIVATE_KEY_PATH]
    # The paths the script installs into are the ones nginx's config serves...
    config = nginx_config(lets_encrypt) or ""
    assert f"ssl_certificate {CERTIFICATE_PATH};" in config
    assert f"ssl_certificate_key {PRIVATE_KEY_PATH};" in config
    assert "location /.well-known/acme-challenge/" in config
    # ...and what is uploaded there first is the self-signed certificate for publicHost.
    assert uploaded(gateway, CERTIFICATE_PATH).startswith("-----BEGIN CERTIFICATE-----")
    assert uploaded(gateway, CERTIFICATES_SCRIPT_PATH).startswith("#!/bin/sh")


def test_the_other_tls_modes_run_no_acme_client_and_keep_the_gateway_as_it_was(dev_default):
    assert "dograh-dev-acme" not in dev_default.containers()
    gateway = dev_default.containers()["dograh-dev-gateway"]
    assert reveal(gateway.inputs["command"])[1] != CERTIFICATES_SCRIPT_PATH
    assert CERTIFICATES_PATH not in mounts(gateway)


@pytest.fixture(scope="module")
def dev_default() -> Declaration:
    return declared()


def test_the_certificate_volume_is_protected_and_survives_every_switch_of_tls_mode(dev_default):
    (volume,) = [v for v in dev_default.custom(VOLUME) if "issued-certificates" in v.name]
    assert volume.protect
    modes = [
        dev_default,
        declared(**LETS_ENCRYPT),
        declared(publicHost=HOST),
        declared(**LETS_ENCRYPT, acmeServer="https://acme.internal.example.org/dir"),
    ]
    for before, after in itertools.pairwise(modes):
        steps = {s.name: s.op for s in plan_changes(recorded(before), after).steps}
        assert steps[volume.name] == "same", steps


def test_pulumi_up_reports_the_clients_first_outcome(lets_encrypt):
    (report,) = [c for c in lets_encrypt.custom(COMMAND) if c.name == "dograh-acme-first-report"]
    inputs = reveal(report.inputs)
    assert inputs["environment"]["ACME_CONTAINER"] == "dograh-dev-acme"
    # A new client container (new settings, new image) reports again.
    client = lets_encrypt.containers()["dograh-dev-acme"]
    assert inputs["triggers"] == [client.id]
    assert "certificateStatus" in lets_encrypt.outputs


@pytest.mark.parametrize(
    "report, attention",
    [
        ("certificate for a.org issued by CN=R11, valid until Feb 1 2027 GMT; next check", False),
        ("certificate for a.org not issued (Detail: connection refused); nginx serves", True),
        ("no outcome from the ACME client within 180s: see docker logs x", True),
    ],
)
def test_a_failed_or_missing_first_outcome_is_a_warning(report, attention):
    assert first_report_needs_attention(report) is attention


def test_a_private_acme_servers_ca_is_trusted_by_the_client_only():
    declaration = declared(
        **LETS_ENCRYPT, acmeServer="https://acme.example.net/dir", acmeServerCaCertificate=CA_PEM
    )
    client = declaration.containers()["dograh-dev-acme"]
    assert envs(client)["REQUESTS_CA_BUNDLE"] == SERVER_CA_PATH
    assert uploaded(client, SERVER_CA_PATH) == CA_PEM
    assert envs(client)["ACME_SERVER"] == "https://acme.example.net/dir"


def test_a_host_that_cannot_get_a_public_certificate_stops_the_program_first():
    declaration = declare("dev", overrides={**LETS_ENCRYPT, "publicHost": "10.0.0.5"})
    assert declaration.error is not None and "IP address" in declaration.error
    assert not declaration.custom()
