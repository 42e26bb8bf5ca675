"""The Dograh ui (Next.js on 3010)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.container import (
    ContainerSpec,
    Placement,
    declare_container,
    health_check,
)

UI_PORT = 3010


@dataclass(frozen=True, kw_only=True)
class UiArgs:
    placement: Placement
    image: str
    api_url: pulumi.Input[str]


class Ui(pulumi.ComponentResource):
    host: pulumi.Output[str]
    port: pulumi.Output[int]

    def __init__(self, name: str, args: UiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:Ui", name, None, opts)
        declare_container(
            self,
            name,
            ContainerSpec(
                image=args.image,
                service="ui",
                alias="ui",
                # Next's standalone server binds HOSTNAME, which Docker sets to the container
                # id: without this nothing answers on 127.0.0.1 and the health check never
                # passes (Dograh's compose sets the same).
                envs={
                    "NODE_ENV": "production",
                    "HOSTNAME": "0.0.0.0",
                    "BACKEND_URL": args.api_url,
                },
                healthcheck=health_check(
                    "node -e \"fetch('http://127.0.0.1:3010/')"
                    '.then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"'
                ),
            ),
            args.placement,
        )
        self.register_outputs({})
