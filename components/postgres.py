"""The bundled postgres (pgvector) with its data volume, or the volume alone when an external
database replaces it (the data stays for a switch back)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pulumi
import pulumi_docker as docker

from components.container import (
    DATA_STOP_GRACE_SECONDS,
    ContainerSpec,
    DataServiceArgs,
    data_service_ports,
    data_volume,
    declare_container,
    health_check,
    mounted,
    service_url,
)

# Reached by this network alias, a plain name, never through the container's outputs: the
# engine deletes every dependent whose inputs come from a delete-before-replace container
# before replacing it (calculateDependentReplacements in pulumi/pulumi's step_generator.go),
# so a URL built from the container's id would take the api down with every image bump.
# Whoever needs the service running depends on this component instead.
POSTGRES_HOST = "postgres"
POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
POSTGRES_DB = "postgres"
DATA_PATH = "/var/lib/postgresql/data"

# The image's entrypoint, then the role's password set to the configured one: see the script.
START_SCRIPT = (Path(__file__).parent / "templates" / "postgres-start.sh").read_text()


class Postgres(pulumi.ComponentResource):
    database_url: pulumi.Output[str]
    # With apiHosts: the URL the other hosts use (the private address); else None.
    private_database_url: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: DataServiceArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("dograh:index:Postgres", name, None, opts)
        volume = data_volume(self, name, "postgres", args.placement)
        self.database_url = service_url(
            args.external_url, lambda: self._declare_server(name, args, volume)
        )
        self.private_database_url = None
        if (private_address := args.private_address) is not None:
            self.private_database_url = service_url(
                args.external_url, lambda: _database_url(args.password, private_address)
            )
        self.register_outputs({"database_url": self.database_url})

    def _declare_server(
        self, name: str, args: DataServiceArgs, volume: docker.Volume
    ) -> pulumi.Output[str]:
        declare_container(
            self,
            name,
            ContainerSpec(
                image=args.image,
                service="postgres",
                alias=POSTGRES_HOST,
                envs={
                    "POSTGRES_USER": POSTGRES_USER,
                    "POSTGRES_PASSWORD": pulumi.Output.secret(args.password),
                    "POSTGRES_DB": POSTGRES_DB,
                },
                command=["sh", "-c", START_SCRIPT],
                healthcheck=health_check(f"pg_isready -U {POSTGRES_USER} -d {POSTGRES_DB}"),
                destroy_grace_seconds=DATA_STOP_GRACE_SECONDS,
                volumes=[mounted(volume, DATA_PATH)],
                ports=data_service_ports(
                    loopback=[POSTGRES_PORT],
                    private=[POSTGRES_PORT],
                    publish_on_loopback=args.publish_on_loopback,
                    private_address=args.private_address,
                ),
            ),
            args.placement,
        )
        return _database_url(args.password, POSTGRES_HOST)


def _database_url(password: pulumi.Input[str], host: str) -> pulumi.Output[str]:
    return pulumi.Output.format(
        "postgresql+asyncpg://{0}:{1}@{2}:{3}/{4}",
        POSTGRES_USER,
        pulumi.Output.from_input(password).apply(lambda pw: quote(pw, safe="")),
        host,
        POSTGRES_PORT,
        POSTGRES_DB,
    )
