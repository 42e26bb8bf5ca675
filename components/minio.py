"""The bundled minio object store (S3 API on 9000, console on 9001) with its data volume."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.container import (
    ContainerSpec,
    Placement,
    data_volume,
    declare_container,
    health_check,
    mounted,
    published_port,
    ready,
)

MINIO_API_PORT = 9000
MINIO_CONSOLE_PORT = 9001
MINIO_ROOT_USER = "dograh"
RECORDINGS_BUCKET = "voice-audio"


@dataclass(frozen=True, kw_only=True)
class MinioArgs:
    placement: Placement
    image: str
    root_password: pulumi.Input[str]
    publish_on_loopback: bool = False


class Minio(pulumi.ComponentResource):
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    endpoint: pulumi.Output[str]
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]
    bucket: pulumi.Output[str]

    def __init__(self, name: str, args: MinioArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:Minio", name, None, opts)
        volume = data_volume(self, name, "minio", args.placement)
        secret_key = pulumi.Output.secret(args.root_password)
        container = declare_container(
            self,
            name,
            ContainerSpec(
                image=args.image,
                service="minio",
                alias="minio",
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
                volumes=[mounted(volume, "/data")],
                ports=[
                    published_port(MINIO_API_PORT, MINIO_API_PORT),
                    published_port(MINIO_CONSOLE_PORT, MINIO_CONSOLE_PORT),
                ]
                if args.publish_on_loopback
                else (),
            ),
            args.placement,
        )
        self.host = ready(container, "minio")
        self.port = pulumi.Output.from_input(MINIO_API_PORT)
        self.endpoint = pulumi.Output.concat(self.host, ":", str(MINIO_API_PORT))
        self.access_key = pulumi.Output.from_input(MINIO_ROOT_USER)
        self.secret_key = secret_key
        self.bucket = pulumi.Output.from_input(RECORDINGS_BUCKET)
        self.register_outputs(
            {
                "host": self.host,
                "port": self.port,
                "endpoint": self.endpoint,
                "access_key": self.access_key,
                "secret_key": self.secret_key,
                "bucket": self.bucket,
            }
        )
