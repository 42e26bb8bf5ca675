"""A real ACME server on this machine, for the engine tests only: Let's Encrypt's test CA, pebble.

`acme_server()` runs Debian bookworm's `pebble` package (2.4.0, `apt-get install -y pebble`;
the same package ships `pebble-challtestsrv`) as root and yields an `AcmeServer`. Certbot in
a container reaches the ACME API at https://10.203.0.1:14000/dir: the fixture puts that
address on `lo` (a container's packets to it leave through the bridge gateway and are
delivered locally), so it never needs the host's 127.0.0.1. Nothing here is for production.

What pebble does with it:
- validates HTTP-01 challenges at http://<name>:<validation_port>/.well-known/acme-challenge/…,
  where <name> is resolved through pebble-challtestsrv's DNS on 127.0.0.1:8053 (`-dnsserver`):
  every name gets `default_answer` unless `AcmeServer.answer()` says otherwise. Pebble asks
  for AAAA before A and dials the first address, so challtestsrv answers no AAAA at all;
- serves its ACME API and its management API (127.0.0.1:15000: /roots/0, /intermediates/0)
  with a TLS certificate made here with the openssl CLI, signed by a throw-away CA whose PEM is
  `AcmeServer.tls_ca_pem` (clients trust it through REQUESTS_CA_BUNDLE);
- issues certificates from its own random "Pebble Root CA …" / "Pebble Intermediate CA …",
  valid for pebble 2.4's default 157766400 s (about five years), and logs
  "Issued certificate serial <serial> for order <id>" for each (ca/ca.go), which
  `AcmeServer.issued_count()` counts.

Checked facts (pebble 2.4.0+ds1 on Debian 12):
- config keys (cmd/pebble/main.go, JSON under "pebble"): listenAddress,
  managementListenAddress, certificate, privateKey, httpPort, tlsPort, ocspResponderURL,
  externalAccountBindingRequired; flags `-config FILE -dnsserver HOST:PORT`;
- environment: PEBBLE_VA_NOSLEEP=1 (no random 0-15 s sleep before validating),
  PEBBLE_WFE_NONCEREJECT=0 (no 5% of good nonces rejected), PEBBLE_AUTHZREUSE=0 (every order
  is validated afresh, so a changed `answer()` takes effect; pebble reuses a valid
  authorization half the time by default); PEBBLE_VA_ALWAYS_VALID is never passed on;
- `pebble-challtestsrv` flags: -defaultIPv4, -defaultIPv6 ("" = no default answer), -dns01,
  -http01, -https01, -tlsalpn01 ("" = that server off), -management; this build has no -doh.
  Its management API is plain HTTP: POST {"host": …, "addresses": […]} to /add-a, and
  {"host": …} to /clear-a (/add-a appends to a host's earlier addresses);
- pebble has no public-suffix or CAA policy: it issues for localhost, voice.test,
  voice.internal as for voice.example.org, and refuses only malformed names (an "_", an IP
  address as a DNS name, a trailing dot, a misplaced "*");
- a container on Docker's default bridge and one on a user-defined bridge network both reach
  https://10.203.0.1:14000/dir (Docker 20.10, bookworm).

The logs are kept after the fixture ends, for a failed test's post-mortem: PEBBLE_LOG and
CHALLTESTSRV_LOG, truncated when the next server starts. Only one such server runs at a time
on a machine: its ports are fixed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ACME_ADDRESS = "10.203.0.1"
ACME_PORT = 14000
MANAGEMENT_PORT = 15000
CHALLTESTSRV_DNS_PORT = 8053
CHALLTESTSRV_MANAGEMENT_PORT = 8055
# Pebble dials this port for TLS-ALPN-01, which these tests never use; nothing listens there.
UNUSED_TLS_ALPN_PORT = 15001

PEBBLE_LOG = Path("/tmp/dograh-tests-pebble.log")
CHALLTESTSRV_LOG = Path("/tmp/dograh-tests-pebble-challtestsrv.log")
ISSUED_LOG_MARK = "Issued certificate serial "

START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0
LOG_TAIL_LINES = 40

_LOOPBACK = "127.0.0.1"
_TLS_CERTIFICATE_DAYS = "7"
_CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
_SERVER_EXTENSIONS = f"""\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:{ACME_ADDRESS}, IP:{_LOOPBACK}, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass
class AcmeServer:
    directory_url: str
    tls_ca_pem: str
    log_path: Path
    tls_ca_path: Path  # tls_ca_pem as a file, while the server runs (for REQUESTS_CA_BUNDLE)

    def _management_get(self, path: str) -> str:
        response = _local_request(
            "GET", f"https://{_LOOPBACK}:{MANAGEMENT_PORT}{path}", verify=str(self.tls_ca_path)
        )
        response.raise_for_status()
        return response.text

    def issuing_root_pem(self) -> str:
        """The root that signs the certificates pebble issues (new on every pebble start)."""
        return self._management_get("/roots/0")

    def issuing_intermediate_pem(self) -> str:
        """The intermediate between that root and the issued certificates."""
        return self._management_get("/intermediates/0")

    def answer(self, host: str, address: str) -> None:
        """Have challtestsrv's DNS answer A queries for `host` with `address` only, instead of
        the default answer or an earlier answer() for it."""
        _challtestsrv_post("/clear-a", {"host": host})
        _challtestsrv_post("/add-a", {"host": host, "addresses": [address]})

    def issued_count(self) -> int:
        """How many certificates pebble has issued since it started."""
        with self.log_path.open(encoding="utf-8", errors="replace") as log:
            return sum(ISSUED_LOG_MARK in line for line in log)


def _local_request(
    method: str, url: str, timeout: float = 10.0, **options: Any
) -> requests.Response:
    """A request straight to this machine: no proxy, .netrc or CA bundle from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        return session.request(method, url, timeout=timeout, **options)


def _challtestsrv_post(path: str, body: dict[str, object]) -> None:
    response = _local_request(
        "POST", f"http://{_LOOPBACK}:{CHALLTESTSRV_MANAGEMENT_PORT}{path}", data=json.dumps(body)
    )
    response.raise_for_status()


def _run(*command: str) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr.strip()}"
        )


def _new_key_and_request(key: Path, request: Path, subject: str) -> None:
    _run(
        *("openssl", "req", "-new", "-noenc", "-subj", subject),
        *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-keyout", str(key), "-out", str(request)),
    )


def _sign(request: Path, extensions: Path, certificate: Path, *signer: str) -> None:
    """`signer` is ("-key", CA key) to self-sign, ("-CA", cert, "-CAkey", key) otherwise."""
    _run(
        *("openssl", "x509", "-req", "-in", str(request), *signer),
        *("-days", _TLS_CERTIFICATE_DAYS, "-set_serial", str(secrets.randbits(63))),
        *("-extfile", str(extensions), "-out", str(certificate)),
    )


def _make_tls_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate it signs for ACME_ADDRESS, 127.0.0.1 and
    localhost: returns (CA certificate, server certificate, server key) paths."""
    ca_key, ca_request = directory / "tls-ca.key", directory / "tls-ca.csr"
    ca_extensions, ca_certificate = directory / "tls-ca.ext", directory / "tls-ca.pem"
    server_key, server_request = directory / "tls.key", directory / "tls.csr"
    server_extensions, server_certificate = directory / "tls.ext", directory / "tls.pem"
    ca_extensions.write_text(_CA_EXTENSIONS)
    server_extensions.write_text(_SERVER_EXTENSIONS)
    _new_key_and_request(ca_key, ca_request, "/CN=dograh engine tests ACME server TLS CA")
    _sign(ca_request, ca_extensions, ca_certificate, "-key", str(ca_key))
    _new_key_and_request(server_key, server_request, f"/CN={ACME_ADDRESS}")
    _sign(
        server_request,
        server_extensions,
        server_certificate,
        *("-CA", str(ca_certificate), "-CAkey", str(ca_key)),
    )
    return ca_certificate, server_certificate, server_key


def _write_pebble_config(
    directory: Path, certificate: Path, private_key: Path, validation_port: int
) -> Path:
    config = {
        "pebble": {
            "listenAddress": f"{ACME_ADDRESS}:{ACME_PORT}",
            "managementListenAddress": f"{_LOOPBACK}:{MANAGEMENT_PORT}",
            "certificate": str(certificate),
            "privateKey": str(private_key),
            "httpPort": validation_port,
            "tlsPort": UNUSED_TLS_ALPN_PORT,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    path = directory / "pebble-config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty log)"


def _dns_answers(port: int) -> bool:
    """Whether a DNS server on 127.0.0.1:`port` answers an A query over UDP."""
    query_id = secrets.randbits(16)
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # recursion desired, 1 question
    name = b"".join(bytes([len(label)]) + label for label in (b"probe", b"test")) + b"\0"
    question = name + struct.pack("!HH", 1, 1)  # type A, class IN
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.sendto(header + question, (_LOOPBACK, port))
            reply, _ = probe.recvfrom(512)
        except OSError:
            return False
    return len(reply) >= 2 and struct.unpack("!H", reply[:2])[0] == query_id


def _answering(tls_ca_path: Path) -> bool:
    if not _dns_answers(CHALLTESTSRV_DNS_PORT):
        return False
    checks = [
        (f"https://{ACME_ADDRESS}:{ACME_PORT}/dir", str(tls_ca_path)),
        (f"https://{_LOOPBACK}:{MANAGEMENT_PORT}/roots/0", str(tls_ca_path)),
        # Any HTTP answer will do: the management server's root is a 404.
        (f"http://{_LOOPBACK}:{CHALLTESTSRV_MANAGEMENT_PORT}/", True),
    ]
    for url, verify in checks:
        try:
            _local_request("GET", url, timeout=1.0, verify=verify)
        except requests.RequestException:
            return False
    return True


def _wait_until_answering(
    tls_ca_path: Path, processes: dict[str, tuple[subprocess.Popen[bytes], Path]]
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _answering(tls_ca_path):
        for name, (process, log) in processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited ({process.returncode}) while starting; {log}:\n{_log_tail(log)}"
                )
        if time.monotonic() > deadline:
            tails = "\n".join(f"{log}:\n{_log_tail(log)}" for _, log in processes.values())
            raise RuntimeError(
                f"pebble did not answer within {START_TIMEOUT_SECONDS:.0f} s:\n{tails}"
            )
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _pebble_environment() -> dict[str, str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("PEBBLE_")
    }
    environment.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
    return environment


@contextlib.contextmanager
def acme_server(validation_port: int, default_answer: str = "127.0.0.1") -> Iterator[AcmeServer]:
    """pebble listening on ACME_ADDRESS:ACME_PORT (ACME API), management on 127.0.0.1 only;
    pebble validates HTTP-01 challenges by connecting to port `validation_port` of whatever
    address challtestsrv answers (default_answer for every name unless answer() said
    otherwise). Everything stopped and cleaned up on exit (processes killed, temp dir removed,
    address removed from lo)."""
    for program in ("pebble", "pebble-challtestsrv", "openssl", "ip"):
        if shutil.which(program) is None:
            raise RuntimeError(f"{program} is missing: apt-get install -y pebble openssl iproute2")
    directory = Path(tempfile.mkdtemp(prefix="dograh-tests-acme-"))
    processes: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    address_added = False
    try:
        tls_ca_path, certificate, private_key = _make_tls_certificate(directory)
        config = _write_pebble_config(directory, certificate, private_key, validation_port)
        # `replace` also adopts the address a killed run may have left behind.
        _run("ip", "address", "replace", f"{ACME_ADDRESS}/32", "dev", "lo")
        address_added = True

        challtestsrv_command = [
            "pebble-challtestsrv",
            f"-defaultIPv4={default_answer}",
            "-defaultIPv6=",
            f"-dns01={_LOOPBACK}:{CHALLTESTSRV_DNS_PORT}",
            f"-management={_LOOPBACK}:{CHALLTESTSRV_MANAGEMENT_PORT}",
            "-http01=",
            "-https01=",
            "-tlsalpn01=",
        ]
        pebble_command = [
            "pebble",
            "-config",
            str(config),
            "-dnsserver",
            f"{_LOOPBACK}:{CHALLTESTSRV_DNS_PORT}",
        ]
        for name, command, log, environment in (
            ("pebble-challtestsrv", challtestsrv_command, CHALLTESTSRV_LOG, None),
            ("pebble", pebble_command, PEBBLE_LOG, _pebble_environment()),
        ):
            with log.open("wb") as log_file:
                processes[name] = (
                    subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        env=environment,
                    ),
                    log,
                )
        _wait_until_answering(tls_ca_path, processes)
        yield AcmeServer(
            directory_url=f"https://{ACME_ADDRESS}:{ACME_PORT}/dir",
            tls_ca_pem=tls_ca_path.read_text(),
            log_path=PEBBLE_LOG,
            tls_ca_path=tls_ca_path,
        )
    finally:
        for process, _ in reversed(processes.values()):
            _stop(process)
        if address_added:  # not checked: an error here must not hide the test's own
            subprocess.run(
                ["ip", "address", "del", f"{ACME_ADDRESS}/32", "dev", "lo"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(directory, ignore_errors=True)
