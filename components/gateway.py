"""nginx in front of everything: the only container (with coturn) that publishes ports."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.container import (
    ContainerSpec,
    Placement,
    declare_container,
    mounted,
    published_port,
)
from components.rendering import GatewayConfig, render_gateway_config
from components.rollout import RELOAD_GATEWAY_SCRIPT, docker_cli_environment

# Apart from the image's own nginx.conf: the start script waits for this file to exist.
NGINX_CONFIG_PATH = "/etc/nginx/dograh/nginx.conf"
START_SCRIPT_PATH = "/usr/local/bin/dograh-gateway-start"
START_SCRIPT = (Path(__file__).parent / "templates" / "gateway-start.sh").read_text()
# With tlsMode=letsEncrypt the gateway's command: install the issued certificate, then start.
CERTIFICATES_SCRIPT_PATH = "/usr/local/bin/dograh-gateway-certificates"
CERTIFICATES_SCRIPT = (Path(__file__).parent / "templates" / "gateway-certificates.sh").read_text()
# Where the gateway reads the certificate volume (read-only): certbot's configuration directory.
ISSUED_CERTIFICATES_PATH = "/etc/letsencrypt"
CERTIFICATE_PATH = "/etc/nginx/certs/local.crt"
PRIVATE_KEY_PATH = "/etc/nginx/certs/local.key"
ACME_WEBROOT = "/var/www/acme"
# The label that ties the gateway to one api container; see Gateway.__init__.
API_CONTAINER_LABEL = "dograh.api-container-id"


@dataclass(frozen=True, kw_only=True)
class GatewayArgs:
    placement: Placement
    image: str
    config: GatewayConfig
    certificate_pem: pulumi.Input[str]
    private_key_pem: pulumi.Input[str]
    api_container_id: pulumi.Input[str]
    # Docker names of the api containers the config sends traffic to: the reload step checks
    # that they are healthy before it switches nginx to them.
    api_container_names: Sequence[str]
    bind_address: str
    http_port: int
    https_port: int
    # nginx resolves every upstream name once, at start: those containers must exist first.
    upstreams: Sequence[pulumi.Resource] = ()
    # zeroDowntime: nginx stays, and a config change is written in and reloaded gracefully.
    reload_in_place: bool = False
    # tlsMode=letsEncrypt: the directory (under ISSUED_CERTIFICATES_PATH) where the ACME client
    # keeps the current certificate; nginx serves the uploaded one until it appears there.
    issued_certificate_dir: str | None = None
    docker_host: str | None = None


class Gateway(pulumi.ComponentResource):
    nginx_config: pulumi.Output[str]
    # The Docker name of the nginx container (api hosts reload it).
    container_name: str
    # The whole config nginx serves (api hosts write it back after their turn).
    rendered_config: str
    # What comes after nginx serves the current config: the reload step, or the container.
    reloaded: pulumi.Resource
    # Shared with an ACME client: the HTTP-01 challenge files, and its account and certificates.
    acme_webroot: docker.Volume
    issued_certificates: docker.Volume

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dograh:index:Gateway", name, None, opts)
        rendered = render_gateway_config(args.config)
        self.acme_webroot = webroot = docker.Volume(
            f"{name}-acme-webroot",
            name=args.placement.docker_name("acme-webroot"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Declared whatever tlsMode says, and protected: the ACME account and certificates
        # survive any configuration change (switching tlsMode away and back asks Let's Encrypt
        # for nothing new), and its rate limits are strict.
        self.issued_certificates = docker.Volume(
            f"{name}-issued-certificates",
            name=args.placement.docker_name("issued-certificates"),
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        command_line = ["sh", START_SCRIPT_PATH, NGINX_CONFIG_PATH]
        volumes = [mounted(webroot, ACME_WEBROOT, read_only=True)]
        labels: dict[str, pulumi.Input[str]] = {}
        uploads = [
            docker.ContainerUploadArgs(
                file=START_SCRIPT_PATH, content=START_SCRIPT, executable=True
            ),
            docker.ContainerUploadArgs(file=CERTIFICATE_PATH, content=args.certificate_pem),
            docker.ContainerUploadArgs(
                file=PRIVATE_KEY_PATH, content=pulumi.Output.secret(args.private_key_pem)
            ),
        ]
        if args.issued_certificate_dir is not None:
            uploads.append(
                docker.ContainerUploadArgs(
                    file=CERTIFICATES_SCRIPT_PATH, content=CERTIFICATES_SCRIPT, executable=True
                )
            )
            volumes.append(
                mounted(self.issued_certificates, ISSUED_CERTIFICATES_PATH, read_only=True)
            )
            command_line = [
                "sh",
                CERTIFICATES_SCRIPT_PATH,
                NGINX_CONFIG_PATH,
                args.issued_certificate_dir,
                CERTIFICATE_PATH,
                PRIVATE_KEY_PATH,
            ]
        if not args.reload_in_place:
            uploads.append(docker.ContainerUploadArgs(file=NGINX_CONFIG_PATH, content=rendered))
            # nginx resolved `api` to the old container's address when it started; a new
            # api container (new id) must bring a new nginx, or traffic goes to a dead
            # address. Labels force a replacement in the docker provider.
            labels[API_CONTAINER_LABEL] = args.api_container_id
        # With reload_in_place the container is created without nginx.conf, so nothing it is
        # created with names an api generation or can go stale; nginx starts once the reload
        # step below has written the current config, into every new gateway and again at
        # every change.
        gateway = declare_container(
            self,
            name,
            ContainerSpec(
                service="gateway",
                image=args.image,
                alias="gateway",
                # nginx, plus a loop that reloads it when an upstream's address changes (and,
                # with letsEncrypt, when a new certificate is issued).
                command=command_line,
                uploads=uploads,
                volumes=volumes,
                ports=[
                    published_port(80, args.http_port, ip=args.bind_address),
                    published_port(443, args.https_port, ip=args.bind_address),
                ],
                labels=labels,
            ),
            args.placement,
            depends_on=args.upstreams,
        )
        self.reloaded = gateway
        if args.reload_in_place:
            # Runs when the rendered config, the gateway (a new one waits for its config) or
            # the api generation changes; only after the (new) api container is created,
            # since its id is a trigger. Its stdin, the whole config, is what a reviewer
            # reads in `pulumi preview --diff`.
            self.reloaded = command.local.Command(
                f"{name}-reload",
                create=RELOAD_GATEWAY_SCRIPT,
                stdin=rendered,
                environment={
                    "GATEWAY_CONTAINER": gateway.name,
                    "NGINX_CONFIG": NGINX_CONFIG_PATH,
                    "API_CONTAINERS": " ".join(args.api_container_names),
                    **docker_cli_environment(args.docker_host),
                },
                triggers=[
                    hashlib.sha256(rendered.encode()).hexdigest(),
                    gateway.id,
                    args.api_container_id,
                ],
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.container_name = args.placement.docker_name("gateway")
        self.rendered_config = rendered
        self.nginx_config = pulumi.Output.from_input(rendered)
        self.register_outputs({"nginx_config": self.nginx_config})
