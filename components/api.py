"""The Dograh api: FASTAPI_WORKERS uvicorn processes on 8000+i in one container.

The singletons (ari_manager, campaign_orchestrator), which must never run twice, always run in
their own `api-singletons` container. It does not depend on the worker count or the rollout
strategy, and when it must change (a new image) it is replaced delete-first, so the old
singletons stop before the new ones start, and switching strategies never runs them twice.

With rolloutStrategy=recreate the workers run in one container named `api`, replaced in
place (delete first: an outage, and live calls are cut).

With rolloutStrategy=zeroDowntime (see components/rollout.py) they run in a generation
container, `api-<generation>`, a resource of its own that a change starts beside the old one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pulumi

from components.container import (
    ContainerSpec,
    Placement,
    declare_container,
    health_check,
    published_port,
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
    # A digest of the secret settings, part of the generation id (see rollout.generation_id).
    secret_fingerprint: str


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
    # Built from plain host names (see components/postgres.py): never a container's outputs.
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
    # None: recreate (one `api` container, replaced). Set: generations, reload and drain.
    zero_downtime: ZeroDowntimeRollout | None = None
    # The drain of a generation being deleted, in either mode (recreate deletes the last one):
    # the Docker host it asks, and how long it waits.
    docker_host: str | None = None
    drain_timeout_seconds: int = 0
    # Workers are published on 127.0.0.1 with rolloutStrategy=recreate only: two generations
    # side by side cannot bind the same host ports.
    publish_on_loopback: bool = False
    # The services the api needs running first (postgres, redis, minio components).
    depends_on: Sequence[pulumi.Resource] = ()


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
_API_HEALTHCHECK = health_check(_ALL_WORKERS_HEALTHY, start_period_seconds=120)


class Api(pulumi.ComponentResource):
    worker_ports: pulumi.Output[list[int]]
    container_id: pulumi.Output[str]
    # The Docker name (and network alias) of the container serving the workers: nginx's
    # upstream names it. Plain, because the config is rendered before any resource exists.
    upstream_alias: str

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:Api", name, None, opts)
        ports = worker_ports(args.fastapi_workers)
        rollout = args.zero_downtime
        # Registered in every run, whatever the strategy: the engine calls a deleted
        # generation's hook by name, and fails if this run did not register it (switching to
        # recreate deletes the last generation).
        drain = drain_api_generation_hook(
            f"{name}-drain", args.docker_host, args.drain_timeout_seconds
        )
        spec = ContainerSpec(
            service=API_ALIAS,
            image=args.image,
            alias=API_ALIAS,
            envs=_environment(
                args, workers=args.fastapi_workers, arq_workers=args.arq_workers, singletons=False
            ),
            healthcheck=_API_HEALTHCHECK,
            ports=[published_port(port, port) for port in ports]
            if args.publish_on_loopback and rollout is None
            else (),
            # Live calls get this long to finish after SIGTERM (the provider's default is 0).
            destroy_grace_seconds=args.stop_grace_seconds,
            wait_timeout_seconds=args.health_timeout_seconds,
        )
        resource_name = None
        if rollout is not None:
            generation = generation_id(spec, rollout.secret_fingerprint)
            spec = replace(
                spec,
                service=f"{API_ALIAS}-{generation}",
                alias=f"{API_ALIAS}-{generation}",
                create_before_delete=True,
                hooks=pulumi.ResourceHookBinding(before_delete=[drain]),
            )
            resource_name = f"{name}-{generation}-container"
        container = declare_container(
            self,
            name,
            spec,
            args.placement,
            depends_on=args.depends_on,
            resource_name=resource_name,
        )
        if args.enable_ari_manager or args.enable_campaign_orchestrator:
            ApiSingletons(f"{name}-singletons", args, opts=pulumi.ResourceOptions(parent=self))
        self.upstream_alias = spec.alias
        self.worker_ports = pulumi.Output.from_input(ports)
        self.container_id = container.id
        self.register_outputs(
            {"worker_ports": self.worker_ports, "container_id": self.container_id}
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
            depends_on=args.depends_on,
        )
        self.register_outputs({})
