"""The bundled redis, password-protected, with its data volume."""

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

REDIS_PORT = 6379


@dataclass(frozen=True, kw_only=True)
class RedisArgs:
    placement: Placement
    image: str
    password: pulumi.Input[str]
    publish_on_loopback: bool = False


class Redis(pulumi.ComponentResource):
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    redis_url: pulumi.Output[str]

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:Redis", name, None, opts)
        volume = data_volume(self, name, "redis", args.placement)
        password = pulumi.Output.secret(args.password)
        container = declare_container(
            self,
            name,
            ContainerSpec(
                image=args.image,
                service="redis",
                alias="redis",
                # The password travels only in the (secret) environment, never in the command
                # line or the health check, which the state keeps in plain text.
                envs={"REDIS_PASSWORD": password, "REDISCLI_AUTH": password},
                command=[
                    "sh",
                    "-c",
                    'exec redis-server --requirepass "$REDIS_PASSWORD" --appendonly yes',
                ],
                healthcheck=health_check("redis-cli ping | grep -q PONG"),
                volumes=[mounted(volume, "/data")],
                ports=[published_port(REDIS_PORT, REDIS_PORT)] if args.publish_on_loopback else (),
            ),
            args.placement,
        )
        self.host = ready(container, "redis")
        self.port = pulumi.Output.from_input(REDIS_PORT)
        self.redis_url = pulumi.Output.secret(
            pulumi.Output.format(
                "redis://:{0}@{1}:{2}",
                password.apply(lambda pw: quote(pw, safe="")),
                self.host,
                self.port,
            )
        )
        self.register_outputs({"host": self.host, "port": self.port, "redis_url": self.redis_url})
