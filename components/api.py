"""The Dograh api: FASTAPI_WORKERS uvicorn processes on 8000+i in one container.

With rolloutStrategy=recreate this is Dograh's own layout: one container named `api`, running
the workers and the two singletons (ari_manager, campaign_orchestrator), replaced in place.

With rolloutStrategy=zeroDowntime (see components/rollout.py) the workers run in a generation
container, `api-<generation>`, that a change starts beside the old one; the singletons, which
must never run twice, move to their own `api-singletons` container. That container does not
depend on the worker count, and when it must change (a new image) it is replaced
delete-first, so the old singletons stop before the new ones start.
"""

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
from components.rollout import drain_api_generation_hook, generation_id

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
class ZeroDowntimeRollout:
    secret_fingerprint: str
    drain_timeout_seconds: int
    docker_host: str | None


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
    health_timeout_seconds: int = 300
    # None: recreate (Dograh's layout). Set: generations, reload and drain.
    zero_downtime: ZeroDowntimeRollout | None = None
    publish_on_loopback: bool = False


def _environment(
    args: ApiArgs, *, workers: int, arq_workers: int, singletons: bool
) -> dict[str, pulumi.Input[str]]:
    envs: dict[str, pulumi.Input[str]] = {
        "ENVIRONMENT": "production",
        "PUBLIC_BASE_URL": args.public_base_url,
        "PUBLIC_HOST": args.public_host,
        "BACKEND_API_ENDPOINT": args.public_base_url,
        "DATABASE_URL": pulumi.Output.secret(args.database_url),
        "REDIS_URL": pulumi.Output.secret(args.redis_url),
        "FASTAPI_WORKERS": str(workers),
        "UVICORN_BASE_PORT": str(UVICORN_BASE_PORT),
        "ARQ_WORKERS": str(arq_workers),
        "ENABLE_ARI_MANAGER": _flag(singletons and args.enable_ari_manager),
        "ENABLE_CAMPAIGN_ORCHESTRATOR": _flag(singletons and args.enable_campaign_orchestrator),
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
    return envs


# Migrations run before the workers start: give them time.
_API_HEALTHCHECK = health_check(_ALL_WORKERS_HEALTHY, start_period="120s")


class Api(pulumi.ComponentResource):
    host: pulumi.Output[str]
    worker_ports: pulumi.Output[list[int]]
    container_id: pulumi.Output[str]
    generation: pulumi.Output[str]
    # The network alias nginx's upstream must name: plain, because the config is rendered
    # from plain values before any resource exists.
    upstream_alias: str

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:Api", name, None, opts)
        ports = worker_ports(args.fastapi_workers)
        rollout = args.zero_downtime
        envs = _environment(
            args,
            workers=args.fastapi_workers,
            arq_workers=args.arq_workers,
            singletons=rollout is None,
        )
        if rollout is None:
            generation, service, hooks = "", API_ALIAS, None
        else:
            generation = generation_id(args.image, envs, rollout.secret_fingerprint)
            service = f"{API_ALIAS}-{generation}"
            hooks = pulumi.ResourceHookBinding(
                before_delete=[
                    drain_api_generation_hook(
                        f"{name}-drain", rollout.docker_host, rollout.drain_timeout_seconds
                    )
                ]
            )
        container = declare_container(
            self,
            name,
            ContainerSpec(
                service=service,
                image=args.image,
                alias=service,
                envs=envs,
                healthcheck=_API_HEALTHCHECK,
                ports=[published_port(port, port) for port in ports]
                if args.publish_on_loopback
                else (),
                # Live calls get this long to finish after SIGTERM (the provider's default is 0).
                destroy_grace_seconds=args.stop_grace_seconds,
                wait_timeout_seconds=args.health_timeout_seconds,
                create_before_delete=rollout is not None,
                hooks=hooks,
            ),
            args.placement,
        )
        if rollout is not None and (args.enable_ari_manager or args.enable_campaign_orchestrator):
            ApiSingletons(f"{name}-singletons", args, opts=pulumi.ResourceOptions(parent=self))
        self.upstream_alias = service
        self.host = ready(container, service)
        self.worker_ports = pulumi.Output.from_input(ports)
        self.container_id = container.id
        self.generation = pulumi.Output.from_input(generation)
        self.register_outputs(
            {
                "host": self.host,
                "worker_ports": self.worker_ports,
                "container_id": self.container_id,
                "generation": self.generation,
            }
        )


class ApiSingletons(pulumi.ComponentResource):
    """ari_manager and campaign_orchestrator in one container of their own, out of nginx's
    upstream (one worker serves its health check)."""

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:ApiSingletons", name, None, opts)
        declare_container(
            self,
            name,
            ContainerSpec(
                service=f"{API_ALIAS}-singletons",
                image=args.image,
                alias=f"{API_ALIAS}-singletons",
                # Fixed counts, so a change of fastapiWorkers or arqWorkers leaves it alone.
                envs=_environment(args, workers=1, arq_workers=1, singletons=True),
                healthcheck=_API_HEALTHCHECK,
                destroy_grace_seconds=args.stop_grace_seconds,
                wait_timeout_seconds=args.health_timeout_seconds,
            ),
            args.placement,
        )
        self.register_outputs({})
