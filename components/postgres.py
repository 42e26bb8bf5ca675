"""The bundled postgres (pgvector) with its data volume."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

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

POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
POSTGRES_DB = "postgres"


@dataclass(frozen=True, kw_only=True)
class PostgresArgs:
    placement: Placement
    image: str
    # Baked into the data volume on first start: changing it later does not re-key postgres.
    password: pulumi.Input[str]
    publish_on_loopback: bool = False


class Postgres(pulumi.ComponentResource):
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    database_url: pulumi.Output[str]

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:Postgres", name, None, opts)
        volume = data_volume(self, name, "postgres", args.placement)
        container = declare_container(
            self,
            name,
            ContainerSpec(
                image=args.image,
                service="postgres",
                alias="postgres",
                envs={
                    "POSTGRES_USER": POSTGRES_USER,
                    "POSTGRES_PASSWORD": pulumi.Output.secret(args.password),
                    "POSTGRES_DB": POSTGRES_DB,
                },
                healthcheck=health_check(f"pg_isready -U {POSTGRES_USER} -d {POSTGRES_DB}"),
                volumes=[mounted(volume, "/var/lib/postgresql/data")],
                ports=[published_port(POSTGRES_PORT, POSTGRES_PORT)]
                if args.publish_on_loopback
                else (),
            ),
            args.placement,
        )
        self.host = ready(container, "postgres")
        self.port = pulumi.Output.from_input(POSTGRES_PORT)
        self.database_url = pulumi.Output.secret(
            pulumi.Output.format(
                "postgresql+asyncpg://{0}:{1}@{2}:{3}/{4}",
                POSTGRES_USER,
                pulumi.Output.from_input(args.password).apply(lambda pw: quote(pw, safe="")),
                self.host,
                self.port,
                POSTGRES_DB,
            )
        )
        self.register_outputs(
            {"host": self.host, "port": self.port, "database_url": self.database_url}
        )
