"""The bundled redis, password-protected, with its data volume, or the volume alone when an
external redis replaces it."""

from __future__ import annotations

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
REDIS_HOST = "redis"
REDIS_PORT = 6379
# Given to `redis-server` as its config file: the password lives there (an upload, secret in
# state), never on a command line, where `ps` and `docker inspect` would show it.
REDIS_CONFIG_PATH = "/usr/local/etc/redis/redis.conf"


class Redis(pulumi.ComponentResource):
    redis_url: pulumi.Output[str]
    # With apiHosts: the URL the other hosts use (the private address); else None.
    private_redis_url: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: DataServiceArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("dograh:index:Redis", name, None, opts)
        volume = data_volume(self, name, "redis", args.placement)
        self.redis_url = service_url(
            args.external_url, lambda: self._declare_server(name, args, volume)
        )
        self.private_redis_url = None
        if (private_address := args.private_address) is not None:
            self.private_redis_url = service_url(
                args.external_url, lambda: _redis_url(args.password, private_address)
            )
        self.register_outputs({"redis_url": self.redis_url})

    def _declare_server(
        self, name: str, args: DataServiceArgs, volume: docker.Volume
    ) -> pulumi.Output[str]:
        password = pulumi.Output.secret(args.password)
        declare_container(
            self,
            name,
            ContainerSpec(
                image=args.image,
                service="redis",
                alias=REDIS_HOST,
                # A command starting with `redis-server` goes through the image's entrypoint,
                # which drops to the redis user (a `sh -c` command would run it as root).
                command=["redis-server", REDIS_CONFIG_PATH],
                uploads=[
                    docker.ContainerUploadArgs(
                        file=REDIS_CONFIG_PATH,
                        content=password.apply(_redis_config),
                    )
                ],
                # redis-cli reads the password from here for the health check.
                envs={"REDISCLI_AUTH": password},
                healthcheck=health_check("redis-cli ping | grep -q PONG"),
                destroy_grace_seconds=DATA_STOP_GRACE_SECONDS,
                volumes=[mounted(volume, "/data")],
                ports=data_service_ports(
                    loopback=[REDIS_PORT],
                    private=[REDIS_PORT],
                    publish_on_loopback=args.publish_on_loopback,
                    private_address=args.private_address,
                ),
            ),
            args.placement,
        )
        return _redis_url(password, REDIS_HOST)


def _redis_url(password: pulumi.Input[str], host: str) -> pulumi.Output[str]:
    return pulumi.Output.format(
        "redis://:{0}@{1}:{2}",
        pulumi.Output.from_input(password).apply(lambda pw: quote(pw, safe="")),
        host,
        REDIS_PORT,
    )


def _redis_config(password: str) -> str:
    """redis.conf: a double-quoted argument takes any password (backslash and quote escaped)."""
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    return f'dir /data\nappendonly yes\nrequirepass "{quoted}"\n'
