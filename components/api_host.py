"""An api host (an entry of apiHosts): one more Docker host running uvicorn workers behind the
one gateway, through its own docker provider, network and image pull.

Its workers are published on the host's private address only, worker i on port 8000+i, the
same ports nginx's upstream lists for it (`api_host_upstream`): the two come from one count.
Its containers carry no singletons and no ARQ workers (ENABLE_ARI_MANAGER /
ENABLE_CAMPAIGN_ORCHESTRATOR false, ARQ_WORKERS=0), and reach postgres, redis and minio at the
main host's privateAddress (or the external URLs).

A change rolls the hosts one at a time, after the main host's new generation serves: a host's
old containers are first marked `down` in nginx and drained (the before-delete hook,
components/rollout.py), then replaced (delete first: a published port cannot be bound twice),
then checked healthy and put back in the upstream by a full reload; the next host's containers
wait for that step. The other hosts serve throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi
import pulumi_command as command

from components.api import API_ALIAS, ApiArgs, worker_ports, worker_shares, worker_specs
from components.container import Placement, declare_container, pull_image
from components.gateway import NGINX_CONFIG_PATH
from components.network import StackNetwork, StackNetworkArgs
from components.rollout import (
    API_HOST_IN_UPSTREAM_SCRIPT,
    DOCKER_HOST_LABEL,
    docker_cli_environment,
    upstream_server,
)
from components.settings import ApiHostSettings


def api_host_upstream(address: str, workers: int) -> list[str]:
    """nginx's servers for an api host: its address, one port per worker."""
    return [upstream_server(address, port) for port in worker_ports(workers)]


@dataclass(frozen=True, kw_only=True)
class ApiHostArgs:
    host: ApiHostSettings
    workers: int
    api_containers: int
    # The stack's api arguments, with the data services' URLs at the main host's private address.
    api: ApiArgs
    name_prefix: str
    # Where the gateway runs and the config it serves (written back after this host's change).
    gateway_container: str
    gateway_docker_host: str | None
    nginx_config: str
    # The step this host's containers wait for: the previous host back in the upstream, or
    # the gateway serving the main host's current generation.
    after: Sequence[pulumi.Resource]
    # The before-delete hook of every api host's container (out of the upstream, drained).
    drain_hook: pulumi.ResourceHook


class ApiHost(pulumi.ComponentResource):
    """Created with the host's docker provider in `opts.providers`: every child uses it."""

    # Runs once this host's containers are healthy: nginx serves them again.
    in_upstream: command.local.Command
    container_names: list[str]

    def __init__(self, name: str, args: ApiHostArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:ApiHost", name, None, opts)
        host = args.host
        network = StackNetwork(
            f"{name}-network",
            StackNetworkArgs(name_prefix=args.name_prefix),
            opts=pulumi.ResourceOptions(parent=self),
        )
        placement = Placement(network_name=network.network_name, name_prefix=args.name_prefix)
        api = replace(args.api, placement=placement, fastapi_workers=args.workers)
        specs = [
            replace(
                spec,
                labels={**spec.labels, DOCKER_HOST_LABEL: host.docker_host},
                hooks=pulumi.ResourceHookBinding(before_delete=[args.drain_hook]),
            )
            for spec in worker_specs(
                api,
                worker_shares(args.workers, args.api_containers),
                published_on=host.address,
                arq_workers=0,
            )
        ]
        image = pull_image(self, name, api.image)
        containers = [
            declare_container(
                self,
                name,
                spec,
                placement,
                depends_on=args.after,
                image=image,
                resource_name=f"{name}{spec.service.removeprefix(API_ALIAS)}-container",
            )
            for spec in specs
        ]
        self.container_names = [placement.docker_name(spec.service) for spec in specs]
        self.in_upstream = command.local.Command(
            f"{name}-in-upstream",
            create=API_HOST_IN_UPSTREAM_SCRIPT,
            stdin=args.nginx_config,
            environment={
                "API_HOST": host.name,
                "API_DOCKER_HOST": host.docker_host,
                "API_CONTAINERS": " ".join(self.container_names),
                "GATEWAY_CONTAINER": args.gateway_container,
                "NGINX_CONFIG": NGINX_CONFIG_PATH,
                **docker_cli_environment(args.gateway_docker_host),
            },
            triggers=[container.id for container in containers],
            opts=pulumi.ResourceOptions(parent=self, depends_on=containers),
        )
        self.register_outputs({})
