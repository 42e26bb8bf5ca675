"""Pure functions that render the files the program uploads into containers.

Plain, validated values in; text out. No Pulumi here, so every rendering is testable directly
(and against golden files) and by real servers (Debian's nginx in tests/test_nginx_real.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

# nginx's unpublished plain-HTTP port for the ui's server-side api calls.
GATEWAY_INTERNAL_PORT = 8080

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    """What nginx needs to know. Host names are the containers' network aliases."""

    # host:port of every uvicorn worker, as the api hands them over (Api.upstream_servers).
    api_servers: Sequence[str]
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
    # With apiHosts (workers on other machines): how long nginx waits to connect to a worker
    # before it tries the next one, so a host that stops answering costs seconds, not nginx's
    # default minute. None: nginx's default (every worker on this host's own network).
    api_connect_timeout_seconds: int | None = None


def render_gateway_config(config: GatewayConfig) -> str:
    """The complete nginx.conf for the gateway container."""
    if not config.api_servers:
        raise ValueError("the api upstream needs at least one server")
    suffix = "" if config.public_https_port == 443 else f":{config.public_https_port}"
    return _TEMPLATES.get_template("nginx.conf.j2").render(
        config=config, public_https_port_suffix=suffix
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
    return _TEMPLATES.get_template("turnserver.conf.j2").render(config=config)
