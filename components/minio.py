"""The bundled minio object store (S3 API on 9000, console on 9001) with its data volume, or
the volume alone when external S3 (s3Bucket) replaces it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.container import (
    DATA_STOP_GRACE_SECONDS,
    ContainerSpec,
    Placement,
    data_service_ports,
    data_volume,
    declare_container,
    health_check,
    mounted,
)

# Reached by this network alias, a plain name, never through the container's outputs: the
# engine deletes every dependent whose inputs come from a delete-before-replace container
# before replacing it (calculateDependentReplacements in pulumi/pulumi's step_generator.go),
# so a URL built from the container's id would take the api down with every image bump.
# Whoever needs the service running depends on this component instead.
MINIO_HOST = "minio"
MINIO_API_PORT = 9000
MINIO_CONSOLE_PORT = 9001
MINIO_ROOT_USER = "dograh"
RECORDINGS_BUCKET = "voice-audio"


@dataclass(frozen=True, kw_only=True)
class MinioArgs:
    placement: Placement
    image: str
    root_password: pulumi.Input[str]
    # False with s3Bucket: no container, the volume alone is kept.
    bundled: bool = True
    publish_on_loopback: bool = False
    # With apiHosts: the main host's private address (the S3 API is published there).
    private_address: str | None = None


class Minio(pulumi.ComponentResource):
    endpoint: pulumi.Output[str]
    # With apiHosts: the endpoint the other hosts use (the private address); else None.
    private_endpoint: pulumi.Output[str] | None
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]
    bucket: pulumi.Output[str]
    # Whether the minio server runs (nginx proxies /voice-audio/ to it only then).
    bundled: bool

    def __init__(self, name: str, args: MinioArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:Minio", name, None, opts)
        volume = data_volume(self, name, "minio", args.placement)
        secret_key = pulumi.Output.secret(args.root_password)
        self.bundled = args.bundled
        if args.bundled:
            self._declare_server(name, args, volume, secret_key)
        self.endpoint = pulumi.Output.from_input(f"{MINIO_HOST}:{MINIO_API_PORT}")
        self.private_endpoint = (
            pulumi.Output.from_input(f"{args.private_address}:{MINIO_API_PORT}")
            if args.private_address is not None
            else None
        )
        self.access_key = pulumi.Output.from_input(MINIO_ROOT_USER)
        self.secret_key = secret_key
        self.bucket = pulumi.Output.from_input(RECORDINGS_BUCKET)
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "access_key": self.access_key,
                "secret_key": self.secret_key,
                "bucket": self.bucket,
            }
        )

    def _declare_server(
        self, name: str, args: MinioArgs, volume: docker.Volume, secret_key: pulumi.Output[str]
    ) -> None:
        declare_container(
            self,
            name,
            ContainerSpec(
                image=args.image,
                service="minio",
                alias=MINIO_HOST,
                envs={
                    "MINIO_ROOT_USER": MINIO_ROOT_USER,
                    "MINIO_ROOT_PASSWORD": secret_key,
                },
                command=[
                    "server",
                    "/data",
                    "--console-address",
                    f":{MINIO_CONSOLE_PORT}",
                ],
                healthcheck=health_check("mc ready local"),
                destroy_grace_seconds=DATA_STOP_GRACE_SECONDS,
                volumes=[mounted(volume, "/data")],
                # The console stays off the private network.
                ports=data_service_ports(
                    loopback=[MINIO_API_PORT, MINIO_CONSOLE_PORT],
                    private=[MINIO_API_PORT],
                    publish_on_loopback=args.publish_on_loopback,
                    private_address=args.private_address,
                ),
            ),
            args.placement,
        )
