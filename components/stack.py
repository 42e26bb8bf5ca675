"""The whole Dograh deployment, composed from the service components: everything on the main
Docker host, and with apiHosts more api workers on other hosts behind the same gateway."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi
import pulumi_docker as docker

from components.acme import AcmeClient, AcmeClientArgs, issued_certificate_dir
from components.api import Api, ApiArgs, BundledStorage, ExternalStorage
from components.api_host import ApiHost, ApiHostArgs, api_host_upstream
from components.config import LoadedSettings
from components.container import DataServiceArgs, Placement
from components.gateway import (
    ACME_WEBROOT,
    CERTIFICATE_PATH,
    NGINX_CONFIG_PATH,
    PRIVATE_KEY_PATH,
    Gateway,
    GatewayArgs,
)
from components.minio import MINIO_API_PORT, MINIO_HOST, Minio, MinioArgs
from components.network import StackNetwork, StackNetworkArgs
from components.postgres import Postgres
from components.redis import Redis
from components.rendering import GATEWAY_INTERNAL_PORT, GatewayConfig, TurnConfig
from components.rollout import drain_api_host_hook
from components.secrets import StackCredentials, StackCredentialsArgs
from components.tls import GatewayCertificate, GatewayCertificateArgs
from components.turn import TurnServer, TurnServerArgs
from components.ui import UI_PORT, Ui, UiArgs

# With apiHosts: how long nginx tries to connect to a worker before it moves to the next one.
API_HOST_CONNECT_TIMEOUT_SECONDS = 3


@dataclass(frozen=True, kw_only=True)
class DograhStackArgs:
    loaded: LoadedSettings
    # Docker names (containers, volumes, network) start with this: one host can run stacks
    # side by side.
    name_prefix: str


@dataclass(frozen=True)
class DataServices:
    postgres: Postgres
    redis: Redis
    minio: Minio


class DograhStack(pulumi.ComponentResource):
    """Reads as the deployment does: the Docker host, the credentials, the data services, the
    api, the ui, the gateway in front of them, coturn."""

    public_url: pulumi.Output[str]
    fastapi_workers: pulumi.Output[int]
    api_upstream: pulumi.Output[list[str]]
    nginx_config: pulumi.Output[str]
    # tlsMode=letsEncrypt: the ACME client's first outcome (issued, or why not); else None.
    certificate_status: pulumi.Output[str] | None
    credentials: StackCredentials

    def __init__(
        self,
        name: str,
        args: DograhStackArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("dograh:index:DograhStack", name, None, opts)
        self._name, self._loaded = name, args.loaded
        self._settings, self._secrets = args.loaded.settings, args.loaded.secrets
        self._child = self._docker_host_for_children()
        placement = self._network(args.name_prefix)
        self.credentials = StackCredentials(
            f"{name}-credentials", StackCredentialsArgs(overrides=self._secrets), opts=self._child
        )
        data = self._data_services(placement)
        api_args = self._api_args(placement, data)
        api = Api(f"{name}-api", api_args, opts=self._child)
        ui = self._ui(placement)
        certificate = GatewayCertificate(
            f"{name}-certificate",
            GatewayCertificateArgs(
                public_host=self._settings.public_host,
                provided_certificate=self._secrets.get("tlsCertificate"),
                provided_private_key=self._secrets.get("tlsPrivateKey"),
            ),
            opts=self._child,
        )
        gateway = self._gateway(placement, api, ui, data.minio, certificate)
        self._api_hosts(args.name_prefix, api_args, data, gateway)
        acme = self._acme_client(placement, gateway)
        if self._settings.enable_turn:
            self._turn(placement, certificate)
        self._outputs(api, gateway, acme)

    def _docker_host_for_children(self) -> pulumi.ResourceOptions:
        """The explicit docker provider (docker:host, docker:sshOpts), which every docker
        resource below inherits through its parents."""
        provider = docker.Provider(
            f"{self._name}-docker-host",
            host=self._loaded.docker_host,
            ssh_opts=self._loaded.docker_ssh_opts,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.ResourceOptions(parent=self, providers=[provider])

    def _network(self, name_prefix: str) -> Placement:
        network = StackNetwork(
            f"{self._name}-network", StackNetworkArgs(name_prefix=name_prefix), opts=self._child
        )
        return Placement(network_name=network.network_name, name_prefix=name_prefix)

    def _data_services(self, placement: Placement) -> DataServices:
        """Declared even when an external service replaces one: its volume stays (protected,
        data kept), so switching to an external URL and back loses nothing."""
        settings, credentials = self._settings, self.credentials
        loopback = settings.publish_internal_on_loopback
        postgres = Postgres(
            f"{self._name}-postgres",
            DataServiceArgs(
                placement=placement,
                image=settings.postgres_image,
                password=credentials.postgres_password,
                external_url=self._secrets.get("externalDatabaseUrl"),
                publish_on_loopback=loopback,
                private_address=settings.private_address,
            ),
            opts=self._child,
        )
        redis = Redis(
            f"{self._name}-redis",
            DataServiceArgs(
                placement=placement,
                image=settings.redis_image,
                password=credentials.redis_password,
                external_url=self._secrets.get("externalRedisUrl"),
                publish_on_loopback=loopback,
                private_address=settings.private_address,
            ),
            opts=self._child,
        )
        minio = Minio(
            f"{self._name}-minio",
            MinioArgs(
                placement=placement,
                image=settings.minio_image,
                root_password=credentials.minio_root_password,
                bundled=settings.s3_bucket is None,
                publish_on_loopback=loopback,
                private_address=settings.private_address,
            ),
            opts=self._child,
        )
        return DataServices(postgres=postgres, redis=redis, minio=minio)

    def _storage(
        self, minio: Minio, endpoint: pulumi.Input[str] | None = None
    ) -> BundledStorage | ExternalStorage:
        """Where the api keeps recordings; `endpoint`: the bundled minio's, as another host
        reaches it."""
        settings, secrets = self._settings, self._secrets
        if settings.s3_bucket is None:
            return BundledStorage(
                endpoint=endpoint if endpoint is not None else minio.endpoint,
                access_key=minio.access_key,
                secret_key=minio.secret_key,
                bucket=minio.bucket,
            )
        return ExternalStorage(
            bucket=settings.s3_bucket,
            access_key_id=secrets.values["s3AccessKeyId"],
            secret_access_key=secrets.values["s3SecretAccessKey"],
            session_token=secrets.get("s3SessionToken"),
            region=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            signature_version=settings.s3_signature_version,
            addressing_style=settings.s3_addressing_style,
        )

    def _api_args(self, placement: Placement, data: DataServices) -> ApiArgs:
        settings, credentials = self._settings, self.credentials
        release = settings.api_release_number
        assert release is not None  # the settings refuse an api image of unknown release
        return ApiArgs(
            placement=placement,
            image=settings.api_image,
            release=release,
            fastapi_workers=settings.fastapi_workers,
            api_containers=settings.api_containers,
            arq_workers=settings.arq_workers,
            enable_ari_manager=settings.enable_ari_manager,
            enable_campaign_orchestrator=settings.enable_campaign_orchestrator,
            public_base_url=settings.public_base_url,
            public_host=settings.public_host,
            environment=settings.environment,
            log_level=settings.log_level,
            enable_signup=settings.enable_signup,
            database_url=data.postgres.database_url,
            redis_url=data.redis.redis_url,
            storage=self._storage(data.minio),
            oss_jwt_secret=credentials.oss_jwt_secret,
            devops_secret=credentials.devops_secret,
            telephony_ws_token_secret=credentials.telephony_ws_token_secret,
            telephony_ws_token_enforce=settings.telephony_ws_token_enforce,
            turn_secret=credentials.turn_secret if settings.enable_turn else None,
            server_ip=settings.server_ip,
            stop_grace_seconds=settings.api_stop_grace_seconds,
            health_timeout_seconds=settings.api_health_timeout_seconds,
            zero_downtime=settings.rollout_strategy == "zeroDowntime",
            secret_fingerprint=self._loaded.secret_fingerprint,
            docker_host=self._loaded.docker_host,
            drain_timeout_seconds=settings.drain_timeout_seconds,
            publish_on_loopback=settings.publish_internal_on_loopback,
            # What the api needs running before it starts.
            depends_on=[data.postgres, data.redis, data.minio],
        )

    def _ui(self, placement: Placement) -> Ui:
        return Ui(
            f"{self._name}-ui",
            # Through nginx's internal port, so the ui follows the api through rollouts.
            UiArgs(
                placement=placement,
                image=self._settings.ui_image,
                api_url=f"http://gateway:{GATEWAY_INTERNAL_PORT}",
            ),
            opts=self._child,
        )

    def _gateway(
        self,
        placement: Placement,
        api: Api,
        ui: Ui,
        minio: Minio,
        certificate: GatewayCertificate,
    ) -> Gateway:
        settings = self._settings
        return Gateway(
            f"{self._name}-gateway",
            GatewayArgs(
                placement=placement,
                image=settings.nginx_image,
                config=GatewayConfig(
                    api_servers=self._all_api_servers(api),
                    ui_host="ui",
                    ui_port=UI_PORT,
                    minio_host=MINIO_HOST if minio.bundled else None,
                    minio_port=MINIO_API_PORT,
                    server_name=settings.public_host,
                    public_https_port=settings.https_port,
                    certificate_path=CERTIFICATE_PATH,
                    private_key_path=PRIVATE_KEY_PATH,
                    acme_webroot=ACME_WEBROOT,
                    api_connect_timeout_seconds=(
                        API_HOST_CONNECT_TIMEOUT_SECONDS if settings.api_hosts else None
                    ),
                ),
                certificate_pem=certificate.certificate_pem,
                private_key_pem=certificate.private_key_pem,
                api_container_id=api.container_id,
                api_container_names=api.container_names,
                bind_address=settings.gateway_bind_address,
                http_port=settings.http_port,
                https_port=settings.https_port,
                upstreams=[api, ui, *([minio] if minio.bundled else [])],
                reload_in_place=settings.rollout_strategy == "zeroDowntime",
                issued_certificate_dir=(
                    issued_certificate_dir(settings.public_host)
                    if settings.tls_mode == "letsEncrypt"
                    else None
                ),
                docker_host=self._loaded.docker_host,
            ),
            opts=self._child,
        )

    def _all_api_servers(self, api: Api) -> list[str]:
        """nginx's one upstream: this host's workers, then every api host's, each host's from
        the same count that sets its FASTAPI_WORKERS."""
        settings = self._settings
        return [
            *api.upstream_servers,
            *(
                server
                for host in settings.api_hosts
                for server in api_host_upstream(host.address, settings.host_workers(host))
            ),
        ]

    def _api_hosts(
        self, name_prefix: str, api_args: ApiArgs, data: DataServices, gateway: Gateway
    ) -> None:
        """The apiHosts, each through its own docker provider, rolled one after the other once
        the gateway serves this host's current generation. The drain hook is registered in
        every run: a host removed from apiHosts still needs it for its containers."""
        settings = self._settings
        drain = drain_api_host_hook(
            f"{self._name}-api-hosts-drain",
            gateway.container_name,
            NGINX_CONFIG_PATH,
            self._loaded.docker_host,
            settings.drain_timeout_seconds,
        )
        if not settings.api_hosts:
            return
        assert data.postgres.private_database_url is not None  # privateAddress is required
        assert data.redis.private_redis_url is not None
        remote_api = replace(
            api_args,
            database_url=data.postgres.private_database_url,
            redis_url=data.redis.private_redis_url,
            storage=self._storage(data.minio, data.minio.private_endpoint),
            depends_on=(),
        )
        after: pulumi.Resource = gateway.reloaded
        for host in settings.api_hosts:
            name = f"{self._name}-host-{host.name}"
            provider = docker.Provider(
                f"{name}-docker",
                host=host.docker_host,
                ssh_opts=self._loaded.docker_ssh_opts,
                opts=pulumi.ResourceOptions(parent=self),
            )
            api_host = ApiHost(
                name,
                ApiHostArgs(
                    host=host,
                    workers=settings.host_workers(host),
                    api_containers=settings.api_containers,
                    api=remote_api,
                    name_prefix=name_prefix,
                    gateway_container=gateway.container_name,
                    gateway_docker_host=self._loaded.docker_host,
                    nginx_config=gateway.rendered_config,
                    after=[after],
                    drain_hook=drain,
                ),
                opts=pulumi.ResourceOptions(parent=self, providers=[provider]),
            )
            after = api_host.in_upstream

    def _acme_client(self, placement: Placement, gateway: Gateway) -> AcmeClient | None:
        settings = self._settings
        if settings.tls_mode != "letsEncrypt":
            return None
        assert settings.acme_email is not None  # the settings require it with letsEncrypt
        return AcmeClient(
            f"{self._name}-acme",
            AcmeClientArgs(
                placement=placement,
                image=settings.acme_client_image,
                domain=settings.public_host,
                email=settings.acme_email,
                server=settings.acme_server,
                server_ca_certificate=settings.acme_server_ca_certificate,
                retry_seconds=settings.acme_retry_seconds,
                webroot=gateway.acme_webroot,
                certificates=gateway.issued_certificates,
                gateway=gateway,
                docker_host=self._loaded.docker_host,
            ),
            opts=self._child,
        )

    def _turn(self, placement: Placement, certificate: GatewayCertificate) -> None:
        settings = self._settings
        assert settings.server_ip is not None  # the settings require it with enableTurn
        TurnServer(
            f"{self._name}-turn",
            TurnServerArgs(
                placement=placement,
                image=settings.coturn_image,
                config=TurnConfig(realm=settings.public_host, external_ip=settings.server_ip),
                shared_secret=self.credentials.turn_secret,
                certificate_pem=certificate.certificate_pem,
                private_key_pem=certificate.private_key_pem,
            ),
            opts=self._child,
        )

    def _outputs(self, api: Api, gateway: Gateway, acme: AcmeClient | None) -> None:
        self.certificate_status = acme.first_report if acme is not None else None
        self.public_url = pulumi.Output.from_input(self._settings.public_base_url)
        self.fastapi_workers = pulumi.Output.from_input(self._settings.fastapi_workers)
        self.api_upstream = pulumi.Output.from_input(self._all_api_servers(api))
        self.nginx_config = gateway.nginx_config
        self.register_outputs(
            {
                "public_url": self.public_url,
                "fastapi_workers": self.fastapi_workers,
                "api_upstream": self.api_upstream,
                "nginx_config": self.nginx_config,
                "certificate_status": self.certificate_status,
            }
        )
