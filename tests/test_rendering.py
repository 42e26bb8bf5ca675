"""The rendered nginx and coturn configs, without Pulumi."""

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from components.api import UVICORN_BASE_PORT, worker_ports
from components.rendering import (
    GatewayConfig,
    TurnConfig,
    render_gateway_config,
    render_turn_config,
)

GOLDEN = Path(__file__).parent / "golden"
UPSTREAM_SERVER = re.compile(r"^\s*server (\S+):(\d+) max_fails=3 fail_timeout=10s;$", re.MULTILINE)


def gateway(workers: int, **changes) -> GatewayConfig:
    values = dict(
        api_servers=[f"api:{port}" for port in worker_ports(workers)],
        ui_host="ui",
        ui_port=3010,
        minio_host="minio",
        minio_port=9000,
        server_name="dograh.example.com",
        public_https_port=443,
        certificate_path="/etc/nginx/certs/local.crt",
        private_key_path="/etc/nginx/certs/local.key",
        acme_webroot="/var/www/acme",
    )
    values.update(changes)
    return GatewayConfig(**values)


def upstream_block(config_text: str) -> str:
    return re.search(r"upstream dograh_api \{(.*?)\n    \}", config_text, re.DOTALL).group(1)


@given(st.integers(min_value=1, max_value=64))
def test_one_upstream_server_per_worker_port(workers):
    block = upstream_block(render_gateway_config(gateway(workers)))
    servers = UPSTREAM_SERVER.findall(block)
    assert [int(port) for _, port in servers] == list(range(8000, 8000 + workers))
    assert {host for host, _ in servers} == {"api"}
    assert "least_conn;" in block and "keepalive 32;" in block and "zone dograh_api" in block


def test_worker_ports_start_at_uvicorn_base_port():
    assert worker_ports(3) == [8000, 8001, 8002]


def test_matches_golden_file_for_four_workers():
    # Regenerate after an intended change: python -m tests.regenerate_golden
    assert render_gateway_config(gateway(4)) == (GOLDEN / "nginx-4-workers.conf").read_text()


def test_api_location_keeps_calls_alive_and_retries_dead_workers():
    text = render_gateway_config(gateway(2))
    api = re.search(r"location /api/v1/ \{(.*?)\n        \}", text, re.DOTALL).group(1)
    for directive in (
        "proxy_pass http://dograh_api;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-Proto https;",
        "proxy_read_timeout 3600s;",
        "proxy_buffering off;",
        "proxy_next_upstream error timeout http_502 http_503 http_504;",
    ):
        assert directive in api


def test_plain_http_serves_acme_challenges_and_redirects_the_rest():
    text = render_gateway_config(gateway(1, public_https_port=8443))
    plain = re.search(r"server \{\s+listen 80;(.*?)\n    \}", text, re.DOTALL).group(1)
    assert "location /.well-known/acme-challenge/" in plain
    assert "root /var/www/acme;" in plain
    assert "return 301 https://$host:8443$request_uri;" in plain


def test_external_object_storage_drops_the_minio_route():
    text = render_gateway_config(gateway(2, minio_host=None))
    assert "/voice-audio/" not in text
    assert "minio" not in text


def test_turn_config_advertises_the_public_ip_and_keeps_the_secret_out():
    text = render_turn_config(TurnConfig(realm="dograh.example.com", external_ip="203.0.113.7"))
    assert "external-ip=203.0.113.7" in text
    assert "use-auth-secret" in text
    assert "min-port=49152" in text and "max-port=49200" in text
    assert "static-auth-secret" not in text


def test_the_test_clients_count_workers_from_the_apis_base_port():
    from tests import clients

    assert clients.UVICORN_BASE_PORT == UVICORN_BASE_PORT
