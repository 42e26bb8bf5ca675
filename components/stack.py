"""The whole Dograh deployment on one Docker host, composed from the service components."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.api import Api, ApiArgs
from components.config import LoadedSettings
from components.container import Placement
from components.gateway import (
    ACME_WEBROOT,
    CERTIFICATE_PATH,
    PRIVATE_KEY_PATH,
    Gateway,
    GatewayArgs,
)
from components.minio import MINIO_API_PORT, MINIO_HOST, Minio, MinioArgs
from components.network import StackNetwork, StackNetworkArgs
from components.postgres import Postgres, PostgresArgs
from components.redis import Redis, RedisArgs
from components.rendering import GATEWAY_INTERNAL_PORT, GatewayConfig, TurnConfig
from components.secrets import StackCredentials, StackCredentialsArgs
from components.tls import GatewayCertificate, GatewayCertificateArgs
from components.turn import TurnServer, TurnServerArgs
from components.ui import UI_PORT, Ui, UiArgs


@dataclass(frozen=True, kw_only=True)
class DograhStackArgs:
    loaded: LoadedSettings
    # Docker names (containers, volumes, network) start with this: one host can run stacks
    # side by side.
    name_prefix: str


class DograhStack(pulumi.ComponentResource):
    public_url: pulumi.Output[str]
    fastapi_workers: pulumi.Output[int]
    api_upstream: pulumi.Output[list[str]]
    nginx_config: pulumi.Output[str]
    credentials: StackCredentials

    def __init__(
        self,
        name: str,
        args: DograhStackArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("dograh:index:DograhStack", name, None, opts)
        settings, secrets = args.loaded.settings, args.loaded.secrets
        prefix = args.name_prefix
        provider = docker.Provider(
            f"{name}-docker-host",
            host=args.loaded.docker_host,
            ssh_opts=args.loaded.docker_ssh_opts,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Every docker resource below inherits this provider through its parents.
        child = pulumi.ResourceOptions(parent=self, providers=[provider])
        network = StackNetwork(
            f"{name}-network",
            StackNetworkArgs(name_prefix=prefix),
            opts=child,
        )
        credentials = StackCredentials(
            f"{name}-credentials", StackCredentialsArgs(overrides=secrets), opts=child
        )
        placement = Placement(network_name=network.network_name, name_prefix=prefix)
        loopback = settings.publish_internal_on_loopback
        zero_downtime = settings.rollout_strategy == "zeroDowntime"
        release = settings.api_release_number
        assert release is not None  # the settings refuse an api image of unknown release

        # Data services are declared even when an external one replaces them: their volumes
        # stay (protected, data kept), so switching to an external URL and back loses nothing.
        postgres = Postgres(
            f"{name}-postgres",
            PostgresArgs(
                placement=placement,
                image=settings.postgres_image,
                password=credentials.postgres_password,
                external_url=secrets.get("externalDatabaseUrl"),
                publish_on_loopback=loopback,
            ),
            opts=child,
        )
        redis = Redis(
            f"{name}-redis",
            RedisArgs(
                placement=placement,
                image=settings.redis_image,
                password=credentials.redis_password,
                external_url=secrets.get("externalRedisUrl"),
                publish_on_loopback=loopback,
            ),
            opts=child,
        )
        minio = Minio(
            f"{name}-minio",
            MinioArgs(
                placement=placement,
                image=settings.minio_image,
                root_password=credentials.minio_root_password,
                bundled=settings.s3_bucket is None,
                publish_on_loopback=loopback,
            ),
            opts=child,
        )
        database_url, redis_url = postgres.database_url, redis.redis_url
        # What the api needs running before it starts.
        api_needs: list[pulumi.Resource] = [postgres, redis, minio]

        storage_env: dict[str, pulumi.Input[str]]
        if settings.s3_bucket is not None:
            storage_env = {
                "ENABLE_AWS_S3": "true",
                "S3_BUCKET": settings.s3_bucket,
                "AWS_ACCESS_KEY_ID": pulumi.Output.secret(secrets.values["s3AccessKeyId"]),
                "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(secrets.values["s3SecretAccessKey"]),
            }
            if settings.s3_region is not None:
                storage_env["S3_REGION"] = settings.s3_region
            for key, value in (
                ("S3_ENDPOINT_URL", settings.s3_endpoint_url),
                ("S3_SIGNATURE_VERSION", settings.s3_signature_version),
                ("S3_ADDRESSING_STYLE", settings.s3_addressing_style),
            ):
                if value is not None:
                    storage_env[key] = value
            session_token = secrets.get("s3SessionToken")
            if session_token is not None:
                storage_env["AWS_SESSION_TOKEN"] = pulumi.Output.secret(session_token)
        else:
            storage_env = {
                "ENABLE_AWS_S3": "false",
                "MINIO_ENDPOINT": minio.endpoint,
                "MINIO_PUBLIC_ENDPOINT": settings.public_base_url,
                "MINIO_ACCESS_KEY": minio.access_key,
                "MINIO_SECRET_KEY": minio.secret_key,
                "MINIO_BUCKET": minio.bucket,
                "MINIO_SECURE": "false",
            }

        api = Api(
            f"{name}-api",
            ApiArgs(
                placement=placement,
                image=settings.api_image,
                release=release,
                fastapi_workers=settings.fastapi_workers,
                arq_workers=settings.arq_workers,
                enable_ari_manager=settings.enable_ari_manager,
                enable_campaign_orchestrator=settings.enable_campaign_orchestrator,
                public_base_url=settings.public_base_url,
                public_host=settings.public_host,
                environment=settings.environment,
                log_level=settings.log_level,
                enable_signup=settings.enable_signup,
                database_url=database_url,
                redis_url=redis_url,
                storage_env=storage_env,
                oss_jwt_secret=credentials.oss_jwt_secret,
                devops_secret=credentials.devops_secret,
                telephony_ws_token_secret=credentials.telephony_ws_token_secret,
                telephony_ws_token_enforce=settings.telephony_ws_token_enforce,
                turn_secret=credentials.turn_secret if settings.enable_turn else None,
                server_ip=settings.server_ip,
                stop_grace_seconds=settings.api_stop_grace_seconds,
                health_timeout_seconds=settings.api_health_timeout_seconds,
                zero_downtime=zero_downtime,
                secret_fingerprint=args.loaded.secret_fingerprint,
                docker_host=args.loaded.docker_host,
                drain_timeout_seconds=settings.drain_timeout_seconds,
                publish_on_loopback=loopback,
                depends_on=api_needs,
            ),
            opts=child,
        )
        ui = Ui(
            f"{name}-ui",
            # Through nginx's internal port, so the ui follows the api through rollouts.
            UiArgs(
                placement=placement,
                image=settings.ui_image,
                api_url=f"http://gateway:{GATEWAY_INTERNAL_PORT}",
            ),
            opts=child,
        )

        certificate = GatewayCertificate(
            f"{name}-certificate",
            GatewayCertificateArgs(
                public_host=settings.public_host,
                provided_certificate=secrets.get("tlsCertificate"),
                provided_private_key=secrets.get("tlsPrivateKey"),
            ),
            opts=child,
        )
        gateway = Gateway(
            f"{name}-gateway",
            GatewayArgs(
                placement=placement,
                image=settings.nginx_image,
                config=GatewayConfig(
                    api_host=api.upstream_alias,
                    fastapi_workers=settings.fastapi_workers,
                    ui_host="ui",
                    ui_port=UI_PORT,
                    minio_host=MINIO_HOST if minio.bundled else None,
                    minio_port=MINIO_API_PORT,
                    server_name=settings.public_host,
                    public_https_port=settings.https_port,
                    certificate_path=CERTIFICATE_PATH,
                    private_key_path=PRIVATE_KEY_PATH,
                    acme_webroot=ACME_WEBROOT,
                ),
                certificate_pem=certificate.certificate_pem,
                private_key_pem=certificate.private_key_pem,
                api_container_id=api.container_id,
                api_container_names=[placement.docker_name(api.upstream_alias)],
                bind_address=settings.gateway_bind_address,
                http_port=settings.http_port,
                https_port=settings.https_port,
                upstreams=[api, ui, *([minio] if minio.bundled else [])],
                reload_in_place=zero_downtime,
                docker_host=args.loaded.docker_host,
            ),
            opts=child,
        )

        if settings.enable_turn:
            assert settings.server_ip is not None  # the settings model requires it
            TurnServer(
                f"{name}-turn",
                TurnServerArgs(
                    placement=placement,
                    image=settings.coturn_image,
                    config=TurnConfig(realm=settings.public_host, external_ip=settings.server_ip),
                    shared_secret=credentials.turn_secret,
                    certificate_pem=certificate.certificate_pem,
                    private_key_pem=certificate.private_key_pem,
                ),
                opts=child,
            )

        self.credentials = credentials
        self.public_url = pulumi.Output.from_input(settings.public_base_url)
        self.fastapi_workers = pulumi.Output.from_input(settings.fastapi_workers)
        alias = api.upstream_alias
        self.api_upstream = api.worker_ports.apply(lambda ports: [f"{alias}:{p}" for p in ports])
        self.nginx_config = gateway.nginx_config
        self.register_outputs(
            {
                "public_url": self.public_url,
                "fastapi_workers": self.fastapi_workers,
                "api_upstream": self.api_upstream,
                "nginx_config": self.nginx_config,
            }
        )
