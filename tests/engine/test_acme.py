"""tlsMode=letsEncrypt on a real Docker engine against a real ACME server.

pebble (Let's Encrypt's test CA, Debian's package) runs on this machine
(tests/engine/acme_server.py); its DNS answers `publicHost` with 127.0.0.1, where the stack's
nginx is published, so pebble checks the HTTP-01 challenge through nginx as Let's Encrypt
would through the public address. certbot runs in the stack, from the certbot stand-in
(certbot/certbot's contract, Debian's certbot). In order, on one stack (module scope):
a challenge that cannot succeed (pulumi up says so, the temporary certificate serves, the
client retries), then the certificate issued on a retry and served, a forced renewal picked
up while a call stays open, and re-applying or replacing the gateway and the client without
asking the CA again.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from offline.declare import COMMAND
from tests.engine.acme_server import AcmeServer, acme_server
from tests.engine.harness import HTTP_PORT, EngineStack, engine_stack, standin_only
from tests.engine.images import NEXT_TAGS

HOST = "voice.example.org"
# On this machine, and nothing listens there: pebble's connection for the challenge is refused.
UNREACHABLE = "127.0.0.9"
RETRY_SECONDS = 10


def certificate_facts(pem: str) -> dict[str, str]:
    """issuer, subject, notBefore, notAfter, serial, SAN of a PEM certificate (openssl)."""
    shown = subprocess.run(
        ["openssl", "x509", "-noout", "-issuer", "-subject", "-startdate", "-enddate",
         "-serial", "-ext", "subjectAltName"],
        input=pem, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    facts = {}
    for line in shown.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in {"issuer", "subject", "notBefore", "notAfter", "serial"}:
            facts[key.strip()] = value.strip()
        elif "DNS:" in line or "IP Address:" in line:
            facts["san"] = line.strip()
    return facts


def verifies_against(pem: str, root: str, intermediate: str) -> bool:
    with tempfile.TemporaryDirectory() as directory:
        paths = {name: Path(directory, name) for name in ("cert", "root", "chain")}
        for path, content in zip(paths.values(), (pem, root, intermediate), strict=True):
            path.write_text(content)
        checked = subprocess.run(
            ["openssl", "verify", "-CAfile", str(paths["root"]), "-untrusted",
             str(paths["chain"]), str(paths["cert"])],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return checked.returncode == 0


def served(stack: EngineStack) -> dict[str, str]:
    return certificate_facts(stack.served_certificate())


def first_report(stack: EngineStack) -> str:
    (report,) = [
        resource
        for resource in stack.applier.state.values()
        if resource.type == COMMAND and resource.name.endswith("-acme-first-report")
    ]
    return report.outputs["stdout"]


def client_log(stack: EngineStack) -> str:
    return stack.container("acme").logs().decode(errors="replace")


@pytest.fixture(scope="module")
def acme():
    with acme_server(validation_port=HTTP_PORT) as server:
        server.answer(HOST, UNREACHABLE)
        yield server


@pytest.fixture(scope="module")
def settings(acme: AcmeServer) -> dict[str, str]:
    return {
        "tlsMode": "letsEncrypt",
        "publicHost": HOST,
        "acmeEmail": "ops@example.org",
        "acmeServer": acme.directory_url,
        "acmeServerCaCertificate": acme.tls_ca_pem,
        "acmeRetrySeconds": str(RETRY_SECONDS),
    }


@pytest.fixture(scope="module")
def stack(acme, settings):
    with engine_stack() as (stack, _report):
        stack.apply(**settings)
        yield stack


def test_a_challenge_that_cannot_succeed_is_reported_and_the_temporary_certificate_serves(
    stack, acme
):
    report = first_report(stack)
    assert report.startswith(f"certificate for {HOST} not issued"), report
    assert f"trying again in {RETRY_SECONDS}s" in report
    assert stack.served_certificate() == stack.declared_certificate()
    assert f"DNS:{HOST}" in served(stack)["san"]
    assert acme.issued_count() == 0
    # The client goes on trying, every RETRY_SECONDS.
    assert stack.wait_until(lambda: client_log(stack).count("not issued") >= 2, 60), client_log(
        stack
    )


def test_once_the_challenge_can_succeed_a_retry_gets_the_certificate_and_nginx_serves_it(
    stack, acme
):
    acme.answer(HOST, "127.0.0.1")
    started = time.monotonic()
    assert stack.wait_until(lambda: "Pebble" in served(stack)["issuer"], 90), client_log(stack)
    facts = served(stack)
    print(f"\nserved after {time.monotonic() - started:.1f}s of a fixed DNS answer: {facts}")
    assert f"DNS:{HOST}" in facts["san"]
    assert verifies_against(
        stack.served_certificate(), acme.issuing_root_pem(), acme.issuing_intermediate_pem()
    )
    assert acme.issued_count() == 1
    assert "issued by" in client_log(stack)


@standin_only("the held call is the api stand-in's test-only WebSocket")
def test_a_renewal_is_picked_up_by_nginx_while_a_call_stays_open(stack, acme):
    before = served(stack)
    with stack.calls(1) as (call,):
        assert call.status == 101
        started = time.monotonic()
        renewed = stack.container("acme").exec_run(
            ["certbot", "renew", "--force-renewal", "--no-random-sleep-on-renew"]
        )
        assert renewed.exit_code == 0, renewed.output.decode(errors="replace")
        assert stack.wait_until(lambda: served(stack)["serial"] != before["serial"], 30)
        picked_up = time.monotonic() - started
        assert call.still_open(wait_seconds=1.0), "the renewal's reload cut the open call"
    after = served(stack)
    print(f"\nrenewed and served in {picked_up:.1f}s, the call kept open: {after}")
    assert "Pebble" in after["issuer"] and acme.issued_count() == 2
    gateway_log = stack.container("gateway").logs().decode(errors="replace")
    assert gateway_log.count("serving the certificate issued into") >= 2, gateway_log


def test_applying_again_or_replacing_the_gateway_and_client_asks_the_ca_for_nothing(
    stack, acme, settings
):
    issued, serial = acme.issued_count(), served(stack)["serial"]
    again = stack.apply(**settings)
    assert {step.op for step in again.steps} == {"same"}
    replaced = stack.apply(
        **settings,
        nginxImage=NEXT_TAGS["nginxImage"],
        acmeClientImage=NEXT_TAGS["acmeClientImage"],
    )
    ops = {step.name: step.op for step in replaced.steps if step.op != "same"}
    assert ops.get("dograh-gateway-container") == "replace", ops
    assert ops.get("dograh-acme-container") == "replace", ops
    # The new gateway serves the issued certificate from its first request.
    assert served(stack)["serial"] == serial
    assert first_report(stack).startswith(f"certificate for {HOST} issued by"), first_report(stack)
    assert acme.issued_count() == issued
