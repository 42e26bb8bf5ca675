"""Pure functions that render the files the program uploads into containers.

Plain, validated values in; text out. No Pulumi here, so every rendering is testable directly
(and against golden files) and by real servers (Debian's nginx in tests/test_nginx_real.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

# nginx's unpublished plain-HTTP port for the ui's server-side api calls.
GATEWAY_INTERNAL_PORT = 8080

# Dograh's start script binds uvicorn worker i to UVICORN_BASE_PORT + i.
UVICORN_BASE_PORT = 8000

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


def worker_ports(fastapi_workers: int, base_port: int = UVICORN_BASE_PORT) -> list[int]:
    """The ports the api's uvicorn processes listen on: base, base+1, ..., base+N-1."""
    if fastapi_workers < 1:
        raise ValueError(f"fastapi_workers must be at least 1, got {fastapi_workers}")
    return [base_port + index for index in range(fastapi_workers)]


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """What nginx needs to know. Host names are the containers' network aliases."""

    api_host: str
    fastapi_workers: int
    ui_host: str
    ui_port: int
    minio_host: str | None
    minio_port: int
    server_name: str
    public_https_port: int
    certificate_path: str
    private_key_path: str
    acme_webroot: str
    http_port: int = 80
    https_port: int = 443
    internal_port: int = GATEWAY_INTERNAL_PORT
    pid_path: str = "/var/run/nginx.pid"
    mime_types_path: str = "/etc/nginx/mime.types"


def render_gateway_config(config: GatewayConfig) -> str:
    """The complete nginx.conf for the gateway container."""
    suffix = "" if config.public_https_port == 443 else f":{config.public_https_port}"
    return _TEMPLATES.get_template("nginx.conf.j2").render(
        api_host=config.api_host,
        worker_ports=worker_ports(config.fastapi_workers),
        ui_host=config.ui_host,
        ui_port=config.ui_port,
        minio_host=config.minio_host,
        minio_port=config.minio_port,
        server_name=config.server_name,
        public_https_port_suffix=suffix,
        certificate_path=config.certificate_path,
        private_key_path=config.private_key_path,
        acme_webroot=config.acme_webroot,
        http_port=config.http_port,
        https_port=config.https_port,
        internal_port=config.internal_port,
        pid_path=config.pid_path,
        mime_types_path=config.mime_types_path,
    )


@dataclass(frozen=True, kw_only=True)
class TurnConfig:
    """What coturn needs; the shared secret is read from the environment, never rendered."""

    realm: str
    external_ip: str
    listening_port: int = 3478
    tls_listening_port: int = 5349
    min_relay_port: int = 49152
    max_relay_port: int = 49200


def render_turn_config(config: TurnConfig) -> str:
    """turnserver.conf for coturn, using TURN REST API (shared secret) authentication."""
    return _TEMPLATES.get_template("turnserver.conf.j2").render(
        realm=config.realm,
        external_ip=config.external_ip,
        listening_port=config.listening_port,
        tls_listening_port=config.tls_listening_port,
        min_relay_port=config.min_relay_port,
        max_relay_port=config.max_relay_port,
    )
