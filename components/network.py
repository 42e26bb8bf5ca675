"""The private bridge network every service joins; containers find each other by alias."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker


@dataclass(frozen=True, kw_only=True)
class StackNetworkArgs:
    name_prefix: str


class StackNetwork(pulumi.ComponentResource):
    network_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: StackNetworkArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("dograh:index:StackNetwork", name, None, opts)
        network = docker.Network(
            f"{name}-bridge",
            name=f"{args.name_prefix}-net",
            driver="bridge",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.network_name = network.name
        self.register_outputs({"network_name": self.network_name})
