"""coturn for WebRTC behind NAT: TURN REST API auth with the stack's generated secret."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.container import (
    ContainerSpec,
    Placement,
    declare_container,
    published_port,
)
from components.rendering import TurnConfig, render_turn_config

TURN_CONFIG_PATH = "/etc/coturn/turnserver.conf"


@dataclass(frozen=True, kw_only=True)
class TurnServerArgs:
    placement: Placement
    image: str
    config: TurnConfig
    shared_secret: pulumi.Input[str]
    certificate_pem: pulumi.Input[str]
    private_key_pem: pulumi.Input[str]


class TurnServer(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        args: TurnServerArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("dograh:index:TurnServer", name, None, opts)
        config = args.config
        ports = [
            published_port(port, port, ip="0.0.0.0", protocol=protocol)
            for port in (config.listening_port, config.tls_listening_port)
            for protocol in ("udp", "tcp")
        ] + [
            published_port(port, port, ip="0.0.0.0", protocol="udp")
            for port in range(config.min_relay_port, config.max_relay_port + 1)
        ]
        declare_container(
            self,
            name,
            ContainerSpec(
                image=args.image,
                service="coturn",
                alias="coturn",
                # The image's entrypoint runs `turnserver` for arguments that start with '-'
                # (and evaluates them with the shell: nothing here may need quoting). The
                # shared secret is in the uploaded config, kept secret in state, never on a
                # command line.
                command=["-c", TURN_CONFIG_PATH],
                uploads=[
                    docker.ContainerUploadArgs(
                        file=TURN_CONFIG_PATH,
                        content=pulumi.Output.secret(
                            pulumi.Output.concat(
                                render_turn_config(config),
                                "static-auth-secret=",
                                args.shared_secret,
                                "\n",
                            )
                        ),
                    ),
                    docker.ContainerUploadArgs(
                        file="/etc/coturn/certs/turn.crt", content=args.certificate_pem
                    ),
                    docker.ContainerUploadArgs(
                        file="/etc/coturn/certs/turn.key",
                        content=pulumi.Output.secret(args.private_key_pem),
                    ),
                ],
                ports=ports,
            ),
            args.placement,
        )
        self.register_outputs({})
