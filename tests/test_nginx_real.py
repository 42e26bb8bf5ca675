"""The nginx.conf the program uploads, checked and served by Debian's real nginx.

The config is taken from what `__main__.py` declares (under mocks) for the gateway container,
with only the certificate and ACME webroot paths pointed at throwaway files. tests/realnginx/
probe.py runs nginx and stand-in worker processes in private namespaces.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from components.gateway import (
    ACME_WEBROOT,
    CERTIFICATE_PATH,
    PRIVATE_KEY_PATH,
)
from offline.declare import declare
from offline.preview import nginx_config

PROBE = Path(__file__).parent / "realnginx" / "probe.py"


def program_nginx_config(workers: int) -> str:
    """The config nginx runs: the gateway's upload (recreate) or what the reload step writes
    (zeroDowntime)."""
    config = nginx_config(declare("dev", {"fastapiWorkers": str(workers)}))
    assert config is not None
    return config


def run_probe(tmp_path: Path, workers: int, mode: str) -> dict:
    for tool in ("nginx", "unshare", "ip", "openssl"):
        assert shutil.which(tool), f"{tool} is missing: run scripts/test.sh, which installs it"
    certificate, key = tmp_path / "local.crt", tmp_path / "local.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    # nginx's worker processes run as an unprivileged user: the webroot must be world-readable.
    acme = Path(tempfile.mkdtemp(prefix="dograh-acme-"))
    acme.chmod(0o755)
    config = (
        program_nginx_config(workers)
        .replace(CERTIFICATE_PATH, str(certificate))
        .replace(PRIVATE_KEY_PATH, str(key))
        .replace(ACME_WEBROOT, str(acme))
    )
    config_path = tmp_path / "nginx.conf"
    config_path.write_text(config)
    try:
        completed = subprocess.run(
            [
                "unshare",
                "--mount",
                "--net",
                sys.executable,
                str(PROBE),
                str(config_path),
                str(workers),
                mode,
                str(acme),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(acme)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("workers", [1, 4, 64])
def test_generated_config_passes_nginx_t(tmp_path, workers):
    result = run_probe(tmp_path, workers, "syntax")
    assert result["syntax_ok"], result["nginx_t"]
    assert "[warn]" not in result["nginx_t"], result["nginx_t"]


@pytest.mark.parametrize("workers", [1, 4])
def test_nginx_serves_every_worker_and_routes_like_dograhs_gateway(tmp_path, workers):
    seen = run_probe(tmp_path, workers, "serve")
    assert seen["syntax_ok"], seen["nginx_t"]
    assert seen["health_workers"] == list(range(workers))
    assert seen["forwarded_proto"] == ["https"]
    assert seen["ui"] == "ui"
    # The unpublished port the ui uses reaches every worker too, and nothing else.
    assert seen["internal_api"] == list(range(workers))
    assert seen["internal_other"] == 404
    assert seen["voice_audio"] == "/voice-audio/call-1.wav"
    assert seen["acme"] == [200, "token123.proof"]
    assert seen["redirect"] == [301, "https://localhost:8443/calls?id=7"]
    assert seen["websocket_status"] == [101]
    # least_conn with a shared zone: held calls spread evenly, two per worker.
    assert seen["websockets_per_worker"] == [2] * workers
    if workers > 1:
        assert seen["refill_workers"] == [0, 0]
        assert seen["after_worker_0_died"] == {
            "statuses": [200],
            "workers": list(range(1, workers)),
        }
