"""The Dograh api: fastapiWorkers uvicorn processes, on 8000+i in one container or shared
over apiContainers containers of the same generation (each its share on 8000+i at its own
address, the ARQ workers in the first only, every worker in nginx's one upstream). Dograh's
start script ends when any of its processes dies and Docker restarts the whole container: more
containers, less lost at once.

The singletons (ari_manager, campaign_orchestrator), which must never run twice, always run in
their own `api-singletons` container. It does not depend on the worker count or the rollout
strategy, and when it must change (a new image) it is replaced delete-first, so the old
singletons stop before the new ones start, and switching strategies never runs them twice.

With rolloutStrategy=recreate the workers run in `api` (or `api-1` ... `api-K`), replaced in
place (delete first: an outage, and live calls are cut).

With rolloutStrategy=zeroDowntime (see components/rollout.py) they run in a generation,
`api-<generation>` (or `api-<generation>-1` ... `-K`), resources of their own that a change
starts beside the old ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi
import pulumi_command as command

from components.container import (
    LOOPBACK,
    ContainerSpec,
    Placement,
    declare_container,
    health_check,
    published_port,
    pull_image,
)
from components.rollout import (
    API_HEALTHY_SCRIPT,
    docker_cli_environment,
    drain_api_generation_hook,
    generation_id,
)

API_ALIAS = "api"

# Dograh's start script binds uvicorn worker i to UVICORN_BASE_PORT + i.
UVICORN_BASE_PORT = 8000


def worker_ports(fastapi_workers: int) -> list[int]:
    """The ports the api's uvicorn processes listen on: base, base+1, ..., base+N-1."""
    if fastapi_workers < 1:
        raise ValueError(f"fastapi_workers must be at least 1, got {fastapi_workers}")
    return [UVICORN_BASE_PORT + index for index in range(fastapi_workers)]


@dataclass(frozen=True, kw_only=True)
class BundledStorage:
    """The stack's minio (MINIO_*): reached inside the network, its bucket's objects handed to
    browsers under the public URL."""

    endpoint: pulumi.Input[str]
    access_key: pulumi.Input[str]
    secret_key: pulumi.Input[str]
    bucket: pulumi.Input[str]


@dataclass(frozen=True, kw_only=True)
class ExternalStorage:
    """An S3 bucket elsewhere (ENABLE_AWS_S3, S3_*, AWS_* for boto's credential chain)."""

    bucket: str
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]
    session_token: pulumi.Input[str] | None = None
    region: str | None = None
    endpoint_url: str | None = None
    signature_version: str | None = None
    addressing_style: str | None = None


def _storage_environment(
    storage: BundledStorage | ExternalStorage, public_base_url: str
) -> dict[str, pulumi.Input[str]]:
    if isinstance(storage, BundledStorage):
        return {
            "ENABLE_AWS_S3": "false",
            "MINIO_ENDPOINT": storage.endpoint,
            "MINIO_PUBLIC_ENDPOINT": public_base_url,
            "MINIO_ACCESS_KEY": storage.access_key,
            "MINIO_SECRET_KEY": storage.secret_key,
            "MINIO_BUCKET": storage.bucket,
            "MINIO_SECURE": "false",
        }
    envs: dict[str, pulumi.Input[str]] = {
        "ENABLE_AWS_S3": "true",
        "S3_BUCKET": storage.bucket,
        "AWS_ACCESS_KEY_ID": pulumi.Output.secret(storage.access_key_id),
        "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(storage.secret_access_key),
    }
    for key, value in (
        ("S3_REGION", storage.region),
        ("S3_ENDPOINT_URL", storage.endpoint_url),
        ("S3_SIGNATURE_VERSION", storage.signature_version),
        ("S3_ADDRESSING_STYLE", storage.addressing_style),
    ):
        if value is not None:
            envs[key] = value
    if storage.session_token is not None:
        envs["AWS_SESSION_TOKEN"] = pulumi.Output.secret(storage.session_token)
    return envs


# From this release the start script reads ENABLE_ARI_MANAGER / ENABLE_CAMPAIGN_ORCHESTRATOR
# (Dograh commit a9379406); before it, every api container starts both singletons.
SINGLETON_SWITCHES_RELEASE = (1, 45, 0)

# Healthy means every worker answers, not just the first. The workers are asked at once, each
# within 4 s, so the check fits its 5 s timeout whatever the count; it reads the same
# FASTAPI_WORKERS the start script does, so its text never depends on the worker count.
_ALL_WORKERS_HEALTHY = (
    'python -c "import os, urllib.request, concurrent.futures as c; '
    "base = int(os.environ['UVICORN_BASE_PORT']); n = int(os.environ['FASTAPI_WORKERS']); "
    "ask = lambda i: urllib.request.urlopen(f'http://127.0.0.1:{base + i}/api/v1/health', "
    'timeout=4).close(); list(c.ThreadPoolExecutor(n).map(ask, range(n)))"'
)

# Dograh's migrations, as its Helm chart's migrate Job runs them (scripts/run_migrate.sh from
# 1.40.0; the same alembic call as the start script in every release from 1.29.0).
MIGRATE_COMMAND = ["alembic", "-c", "/app/api/alembic.ini", "upgrade", "head"]
# How long the job may run (the Helm chart's migrate.activeDeadlineSeconds is 600).
MIGRATE_TIMEOUT_SECONDS = 1200


def _flag(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True, kw_only=True)
class ApiArgs:
    placement: Placement
    image: str
    # The Dograh release of `image` (settings: from its tag, or apiRelease).
    release: tuple[int, int, int]
    fastapi_workers: int
    # How many containers of one generation share the workers (apiContainers).
    api_containers: int
    arq_workers: int
    enable_ari_manager: bool
    enable_campaign_orchestrator: bool
    public_base_url: str
    public_host: str
    environment: str
    log_level: str
    enable_signup: bool
    # Built from plain host names (see components/postgres.py): never a container's outputs.
    database_url: pulumi.Input[str]
    redis_url: pulumi.Input[str]
    storage: BundledStorage | ExternalStorage
    oss_jwt_secret: pulumi.Input[str]
    devops_secret: pulumi.Input[str]
    telephony_ws_token_secret: pulumi.Input[str]
    telephony_ws_token_enforce: bool
    turn_secret: pulumi.Input[str] | None
    server_ip: str | None
    stop_grace_seconds: int
    health_timeout_seconds: int = 300
    # rolloutStrategy=zeroDowntime: generations, reload and drain; else one `api`, replaced.
    zero_downtime: bool = False
    # A digest of the secret settings (see rollout.generation_id): a rotated secret names a
    # new generation and a new migration job.
    secret_fingerprint: str = ""
    # The drain of a generation being deleted, in either mode (recreate deletes the last one):
    # the Docker host it asks, and how long it waits.
    docker_host: str | None = None
    drain_timeout_seconds: int = 0
    # Workers are published on 127.0.0.1 with rolloutStrategy=recreate only: two generations
    # side by side cannot bind the same host ports.
    publish_on_loopback: bool = False
    # The services the api needs running first (postgres, redis, minio components).
    depends_on: Sequence[pulumi.Resource] = ()

    @property
    def singletons_apart(self) -> bool:
        """Whether the singletons run in `api-singletons` (their switches exist), rather than
        in the one api container (older releases, rolloutStrategy=recreate only)."""
        return self.release >= SINGLETON_SWITCHES_RELEASE


def _environment(
    args: ApiArgs, *, workers: int, arq_workers: int, singletons: bool
) -> dict[str, pulumi.Input[str]]:
    envs: dict[str, pulumi.Input[str]] = {
        **_migration_environment(args),
        "PUBLIC_BASE_URL": args.public_base_url,
        "PUBLIC_HOST": args.public_host,
        "BACKEND_API_ENDPOINT": args.public_base_url,
        # The embed snippet and billing return URLs point here (default localhost:3010).
        "UI_APP_URL": args.public_base_url,
        "FASTAPI_WORKERS": str(workers),
        "UVICORN_BASE_PORT": str(UVICORN_BASE_PORT),
        "ARQ_WORKERS": str(arq_workers),
        "ENABLE_ARI_MANAGER": _flag(singletons and args.enable_ari_manager),
        "ENABLE_CAMPAIGN_ORCHESTRATOR": _flag(singletons and args.enable_campaign_orchestrator),
        "ENABLE_SIGNUP": _flag(args.enable_signup),
        # Only nginx reaches the workers (nothing is published publicly), so uvicorn may
        # trust its X-Forwarded-Proto; webhook signature checks depend on it.
        "FORWARDED_ALLOW_IPS": "*",
        "OSS_JWT_SECRET": pulumi.Output.secret(args.oss_jwt_secret),
        "DOGRAH_DEVOPS_SECRET": pulumi.Output.secret(args.devops_secret),
        "TELEPHONY_WS_TOKEN_SECRET": pulumi.Output.secret(args.telephony_ws_token_secret),
        "TELEPHONY_WS_TOKEN_ENFORCE": _flag(args.telephony_ws_token_enforce),
        "ENABLE_COTURN": _flag(args.turn_secret is not None),
        **_storage_environment(args.storage, args.public_base_url),
    }
    if args.turn_secret is not None:
        envs["TURN_HOST"] = args.public_host
        envs["TURN_SECRET"] = pulumi.Output.secret(args.turn_secret)
    if args.server_ip is not None:
        envs["SERVER_IP"] = args.server_ip
    return envs


def _migration_environment(args: ApiArgs) -> dict[str, pulumi.Input[str]]:
    """What Dograh's alembic env.py needs: api.constants reads DATABASE_URL and REDIS_URL at
    import. Nothing else, so other settings never re-run the job."""
    return {
        "ENVIRONMENT": args.environment,
        "LOG_LEVEL": args.log_level,
        "DATABASE_URL": pulumi.Output.secret(args.database_url),
        "REDIS_URL": pulumi.Output.secret(args.redis_url),
    }


# Migrations run before the workers start: give them time.
_API_HEALTHCHECK = health_check(_ALL_WORKERS_HEALTHY, start_period_seconds=120)

# With a localhost or private BACKEND_API_ENDPOINT, every /api/v1/health call asks
# http://cloudflared:2000/metrics for a tunnel URL (api/routes/main.py, 5 s timeout). This stack
# runs no cloudflared: the name resolves to loopback, so the answer is an immediate refusal
# rather than a DNS lookup, which stalls for glibc's 5 s retry whenever a query is lost
# (measured: 2 of 60 health calls through nginx took 5.0 s), longer than a worker's 4 s probe.
_NO_CLOUDFLARED = {"cloudflared": "127.0.0.1"}


def worker_shares(fastapi_workers: int, containers: int) -> list[int]:
    """How many workers each of a generation's api containers runs: as even as possible, the
    larger shares first; every container runs at least one."""
    if not 1 <= containers <= fastapi_workers:
        raise ValueError(f"{containers} api containers cannot share {fastapi_workers} workers")
    base, extra = divmod(fastapi_workers, containers)
    return [base + (1 if index < extra else 0) for index in range(containers)]


class Api(pulumi.ComponentResource):
    # The generation's health check (zeroDowntime) or its containers.
    ready: list[pulumi.Resource]
    # The ids of the containers serving the workers, joined: a new one is a new value.
    container_id: pulumi.Output[str]
    # The Docker names (and network aliases) of the containers serving the workers.
    container_names: list[str]
    # Every worker as host:port, for nginx's upstream: the one place the ports are derived.
    # Plain, because the config is rendered before any resource exists.
    upstream_servers: list[str]

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:Api", name, None, opts)
        # Registered in every run, whatever the strategy: the engine calls a deleted
        # generation's hook by name, and fails if this run did not register it (switching to
        # recreate deletes the last generation).
        drain = drain_api_generation_hook(
            f"{name}-drain", args.docker_host, args.drain_timeout_seconds
        )
        migrations = _declare_migrations(self, name, args)
        needs = [*args.depends_on, migrations]
        shares = worker_shares(args.fastapi_workers, args.api_containers)
        specs = worker_specs(
            args,
            shares,
            published_on=LOOPBACK if args.publish_on_loopback and not args.zero_downtime else None,
            arq_workers=args.arq_workers,
        )
        if args.zero_downtime:
            # One id for the generation, from every container's spec.
            others = "".join(generation_id(spec, "") for spec in specs[1:])
            generation = generation_id(specs[0], args.secret_fingerprint + others)
            specs = [
                replace(
                    spec,
                    service=spec.service.replace(API_ALIAS, f"{API_ALIAS}-{generation}", 1),
                    alias=spec.alias.replace(API_ALIAS, f"{API_ALIAS}-{generation}", 1),
                    create_before_delete=True,
                    hooks=pulumi.ResourceHookBinding(before_delete=[drain]),
                )
                for spec in specs
            ]
        image = pull_image(self, name, args.image)
        containers = [
            declare_container(
                self,
                name,
                spec,
                args.placement,
                depends_on=needs,
                image=image,
                # `<name>-container`, `<name>-<generation>-container`, `<name>-2-container`...
                resource_name=f"{name}{spec.service.removeprefix(API_ALIAS)}-container",
            )
            for spec in specs
        ]
        # The singletons come after the workers: when an older release's api (which runs them
        # itself) is replaced by one that reads the switches, its deletion comes first, so the
        # two never overlap. With generations, only after the new one is checked healthy: a
        # retried `pulumi up` clears a failed generation's error without a health check, and
        # must not go on to replace healthy singletons with the same broken image.
        ready: list[pulumi.Resource] = list(containers)
        if args.zero_downtime:
            ready = [
                command.local.Command(
                    f"{name}-healthy",
                    create=API_HEALTHY_SCRIPT,
                    environment={
                        "API_CONTAINERS": " ".join(
                            args.placement.docker_name(spec.service) for spec in specs
                        ),
                        **docker_cli_environment(args.docker_host),
                    },
                    triggers=[container.id for container in containers],
                    opts=pulumi.ResourceOptions(parent=self),
                )
            ]
        if args.singletons_apart and (args.enable_ari_manager or args.enable_campaign_orchestrator):
            ApiSingletons(
                f"{name}-singletons",
                replace(args, depends_on=[*needs, *ready]),
                opts=pulumi.ResourceOptions(parent=self),
            )
        # What an api host's rollout waits for: this generation, checked healthy.
        self.ready = ready
        self.container_names = [args.placement.docker_name(spec.service) for spec in specs]
        self.upstream_servers = [
            f"{spec.alias}:{UVICORN_BASE_PORT + index}"
            for spec, share in zip(specs, shares, strict=True)
            for index in range(share)
        ]
        ids = [container.id for container in containers]
        self.container_id = ids[0] if len(ids) == 1 else pulumi.Output.all(*ids).apply(",".join)
        self.register_outputs({"container_id": self.container_id})


def worker_specs(
    args: ApiArgs,
    shares: list[int],
    *,
    published_on: str | None,
    arq_workers: int,
) -> list[ContainerSpec]:
    """The containers that run the uvicorn workers (`api`, or `api-1` ... `api-K` with
    apiContainers K): each its share on 8000+i at its own address, the ARQ workers in the
    first only. With `published_on`, worker i of the whole set is published on that address's
    port 8000+i (loopback under recreate with publishInternalOnLoopback; an api host's private
    address)."""
    specs, first_worker = [], 0
    for index, share in enumerate(shares):
        service = API_ALIAS if len(shares) == 1 else f"{API_ALIAS}-{index + 1}"
        specs.append(
            ContainerSpec(
                service=service,
                image=args.image,
                alias=service,
                envs=_environment(
                    args,
                    workers=share,
                    arq_workers=arq_workers if index == 0 else 0,
                    # Older releases start them here whatever the switches say: say so.
                    singletons=not args.singletons_apart,
                ),
                healthcheck=_API_HEALTHCHECK,
                extra_hosts=_NO_CLOUDFLARED,
                ports=[
                    published_port(port, UVICORN_BASE_PORT + first_worker + offset, ip=published_on)
                    for offset, port in enumerate(worker_ports(share))
                ]
                if published_on is not None
                else (),
                # Live calls get this long to finish after SIGTERM (the provider's default is 0).
                destroy_grace_seconds=args.stop_grace_seconds,
                wait_timeout_seconds=args.health_timeout_seconds,
            )
        )
        first_worker += share
    return specs


def _declare_migrations(
    owner: pulumi.ComponentResource, name: str, args: ApiArgs
) -> pulumi.Resource:
    """`alembic upgrade head` once, before any api container starts: Dograh's migrations take
    no lock (api/alembic/env.py), so two containers migrating one database at once collide
    (DuplicateTableError). Each job is a resource of its own, `<name>-migrate-<id>`, its id a
    digest of its spec and the secrets: a new release (or a rotated database password) runs a
    new job, and the old one, no longer declared, is removed at the end of the update. Like an
    api generation, a job of a failed update stays in state apart, and rolling the settings
    back declares the old job again unchanged (one resource whose Docker name changed back
    would be created while its old half still held that name). The api containers still run
    the same upgrade when they start: by then it finds the database at head and does nothing.
    A failed job stops nothing by itself (the provider records the exit code); the api
    containers' own upgrade then fails the same way, and their health wait fails the update."""
    spec = ContainerSpec(
        service=f"{API_ALIAS}-migrate",
        image=args.image,
        alias=f"{API_ALIAS}-migrate",
        envs=_migration_environment(args),
        command=MIGRATE_COMMAND,
        run_once=True,
        wait_timeout_seconds=MIGRATE_TIMEOUT_SECONDS,
    )
    job_id = generation_id(spec, args.secret_fingerprint)
    job = replace(spec, service=f"{spec.service}-{job_id}", create_before_delete=True)
    return declare_container(
        owner,
        f"{name}-migrations",
        job,
        args.placement,
        depends_on=args.depends_on,
        resource_name=f"{name}-migrate-{job_id}",
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
                extra_hosts=_NO_CLOUDFLARED,
                destroy_grace_seconds=args.stop_grace_seconds,
                wait_timeout_seconds=args.health_timeout_seconds,
            ),
            args.placement,
            depends_on=args.depends_on,
        )
        self.register_outputs({})
