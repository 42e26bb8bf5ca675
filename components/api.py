"""The Dograh api: one container running FASTAPI_WORKERS uvicorn processes on 8000+i."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from components.container import (
    ContainerSpec,
    Placement,
    declare_container,
    health_check,
    published_port,
    ready,
)
from components.rendering import UVICORN_BASE_PORT, worker_ports

API_ALIAS = "api"

# Healthy means every worker answers, not just the first: the check reads the same
# FASTAPI_WORKERS the start script does, so its text never depends on the worker count.
_ALL_WORKERS_HEALTHY = (
    'python -c "import os, urllib.request; '
    "base = int(os.environ['UVICORN_BASE_PORT']); "
    "[urllib.request.urlopen(f'http://127.0.0.1:{base + i}/api/v1/health', timeout=4) "
    "for i in range(int(os.environ['FASTAPI_WORKERS']))]\""
)


def _flag(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True, kw_only=True)
class ApiArgs:
    placement: Placement
    image: str
    fastapi_workers: int
    arq_workers: int
    enable_ari_manager: bool
    enable_campaign_orchestrator: bool
    public_base_url: str
    public_host: str
    database_url: pulumi.Input[str]
    redis_url: pulumi.Input[str]
    # MINIO_* for the bundled minio, or ENABLE_AWS_S3 and S3_* for external storage.
    storage_env: Mapping[str, pulumi.Input[str]]
    oss_jwt_secret: pulumi.Input[str]
    devops_secret: pulumi.Input[str]
    turn_secret: pulumi.Input[str] | None
    server_ip: str | None
    stop_grace_seconds: int
    publish_on_loopback: bool = False


class Api(pulumi.ComponentResource):
    host: pulumi.Output[str]
    # For callers that must not wait on (or be replaced with) the api container, like the ui.
    internal_url: pulumi.Output[str]
    worker_ports: pulumi.Output[list[int]]
    container_id: pulumi.Output[str]

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:Api", name, None, opts)
        ports = worker_ports(args.fastapi_workers)
        envs: dict[str, pulumi.Input[str]] = {
            "ENVIRONMENT": "production",
            "PUBLIC_BASE_URL": args.public_base_url,
            "PUBLIC_HOST": args.public_host,
            "BACKEND_API_ENDPOINT": args.public_base_url,
            "DATABASE_URL": pulumi.Output.secret(args.database_url),
            "REDIS_URL": pulumi.Output.secret(args.redis_url),
            "FASTAPI_WORKERS": str(args.fastapi_workers),
            "UVICORN_BASE_PORT": str(UVICORN_BASE_PORT),
            "ARQ_WORKERS": str(args.arq_workers),
            "ENABLE_ARI_MANAGER": _flag(args.enable_ari_manager),
            "ENABLE_CAMPAIGN_ORCHESTRATOR": _flag(args.enable_campaign_orchestrator),
            # Only nginx reaches the workers (nothing is published publicly), so uvicorn may
            # trust its X-Forwarded-Proto; webhook signature checks depend on it.
            "FORWARDED_ALLOW_IPS": "*",
            "OSS_JWT_SECRET": pulumi.Output.secret(args.oss_jwt_secret),
            "DOGRAH_DEVOPS_SECRET": pulumi.Output.secret(args.devops_secret),
            "ENABLE_COTURN": _flag(args.turn_secret is not None),
            **args.storage_env,
        }
        if args.turn_secret is not None:
            envs["TURN_HOST"] = args.public_host
            envs["TURN_SECRET"] = pulumi.Output.secret(args.turn_secret)
        if args.server_ip is not None:
            envs["SERVER_IP"] = args.server_ip
        container = declare_container(
            self,
            name,
            ContainerSpec(
                image=args.image,
                service="api",
                alias=API_ALIAS,
                envs=envs,
                # Migrations run before the workers start: give them time.
                healthcheck=health_check(_ALL_WORKERS_HEALTHY, start_period="120s"),
                ports=[published_port(port, port) for port in ports]
                if args.publish_on_loopback
                else (),
                # Live calls get this long to finish after SIGTERM (the provider's default is 0).
                destroy_grace_seconds=args.stop_grace_seconds,
                wait_timeout_seconds=300,
            ),
            args.placement,
        )
        self.host = ready(container, API_ALIAS)
        self.internal_url = pulumi.Output.from_input(f"http://{API_ALIAS}:{UVICORN_BASE_PORT}")
        self.worker_ports = pulumi.Output.from_input(ports)
        self.container_id = container.id
        self.register_outputs(
            {
                "host": self.host,
                "internal_url": self.internal_url,
                "worker_ports": self.worker_ports,
                "container_id": self.container_id,
            }
        )
