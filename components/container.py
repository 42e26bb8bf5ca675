"""What every service container of the stack shares: one place for the house rules.

Each container: a pinned image, the stack network with a stable alias, a restart policy (so
the stack comes back after a reboot, unlike Dograh's compose file), bounded json-file logs,
health checks whose edits force a replacement (the docker provider does not apply them in
place: kreuzwerker/terraform-provider-docker#988), and delete-before-replace because Docker
refuses two containers with one name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

RESTART_POLICY = "unless-stopped"
LOG_DRIVER = "json-file"
LOG_OPTIONS = {"max-size": "10m", "max-file": "5"}
LOOPBACK = "127.0.0.1"


def health_check(
    shell_command: str,
    *,
    interval: str = "10s",
    timeout: str = "5s",
    retries: int = 6,
    start_period: str = "20s",
) -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(
        tests=["CMD-SHELL", shell_command],
        interval=interval,
        timeout=timeout,
        retries=retries,
        start_period=start_period,
    )


def published_port(
    internal: int, external: int, *, ip: str = LOOPBACK, protocol: str = "tcp"
) -> docker.ContainerPortArgs:
    return docker.ContainerPortArgs(internal=internal, external=external, ip=ip, protocol=protocol)


def env_list(envs: Mapping[str, pulumi.Input[str]]) -> list[pulumi.Output[str]]:
    """KEY=value strings in a stable order; a secret value keeps its entry secret."""
    return [pulumi.Output.concat(key, "=", envs[key]) for key in sorted(envs)]


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Where a service runs: the Docker host (provider), the stack network, the name prefix."""

    provider: docker.Provider
    network_name: pulumi.Input[str]
    # Docker names (containers, volumes, network) start with it, so stacks can share a host.
    name_prefix: str

    def docker_name(self, service: str) -> str:
        return f"{self.name_prefix}-{service}"


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    """One service container; `service` names it on Docker, `alias` on the stack network."""

    service: str
    image: str
    alias: str
    envs: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    command: Sequence[pulumi.Input[str]] | None = None
    healthcheck: docker.ContainerHealthcheckArgs | None = None
    ports: Sequence[docker.ContainerPortArgs] = ()
    volumes: Sequence[docker.ContainerVolumeArgs] = ()
    uploads: Sequence[docker.ContainerUploadArgs] = ()
    labels: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    destroy_grace_seconds: int | None = None
    wait_timeout_seconds: int = 120
    # Containers are deleted before their replacement is created, because Docker refuses two
    # containers with one name. A container whose name changes with each replacement (an api
    # generation) can instead start its replacement first.
    create_before_delete: bool = False
    hooks: pulumi.ResourceHookBinding | None = None
    # Inputs that a later step keeps up to date in place (nginx's config, reloaded).
    ignore_changes: Sequence[str] = ()


def declare_container(
    owner: pulumi.ComponentResource,
    owner_name: str,
    spec: ContainerSpec,
    placement: Placement,
    depends_on: Sequence[pulumi.Resource] = (),
) -> docker.Container:
    """Declare the image pull and the container as children of `owner`."""
    provider = placement.provider
    image = docker.RemoteImage(
        f"{owner_name}-image",
        name=spec.image,
        # Several stacks on one host may share an image: never delete it on replace.
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=owner, provider=provider),
    )
    return docker.Container(
        f"{owner_name}-container",
        name=placement.docker_name(spec.service),
        image=image.image_id,
        envs=env_list(spec.envs) or None,
        command=list(spec.command) if spec.command is not None else None,
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(name=placement.network_name, aliases=[spec.alias])
        ],
        healthcheck=spec.healthcheck,
        # Wait for healthy, so what depends on this container starts after it can serve.
        wait=spec.healthcheck is not None,
        wait_timeout=spec.wait_timeout_seconds if spec.healthcheck is not None else None,
        ports=list(spec.ports) or None,
        volumes=list(spec.volumes) or None,
        uploads=list(spec.uploads) or None,
        labels=[
            docker.ContainerLabelArgs(label=key, value=spec.labels[key])
            for key in sorted(spec.labels)
        ]
        or None,
        restart=RESTART_POLICY,
        log_driver=LOG_DRIVER,
        log_opts=LOG_OPTIONS,
        destroy_grace_seconds=spec.destroy_grace_seconds,
        opts=pulumi.ResourceOptions(
            parent=owner,
            provider=provider,
            delete_before_replace=not spec.create_before_delete,
            replace_on_changes=["healthcheck"],
            depends_on=list(depends_on),
            hooks=spec.hooks,
            ignore_changes=list(spec.ignore_changes) or None,
            # Whatever carries a value from another resource (passwords, URLs with
            # credentials, the TLS key) stays encrypted in the state's outputs too.
            additional_secret_outputs=_carrying_resource_values(spec) or None,
        ),
    )


def _carrying_resource_values(spec: ContainerSpec) -> list[str]:
    properties = []
    if any(not isinstance(value, str) for value in spec.envs.values()):
        properties.append("envs")
    if any(not isinstance(upload.content, str) for upload in spec.uploads):
        properties.append("uploads")
    return properties


def data_volume(
    owner: pulumi.ComponentResource, owner_name: str, service: str, placement: Placement
) -> docker.Volume:
    """A named volume that holds data: protected, so no config change can replace or delete it."""
    return docker.Volume(
        f"{owner_name}-data",
        name=placement.docker_name(f"{service}-data"),
        opts=pulumi.ResourceOptions(parent=owner, provider=placement.provider, protect=True),
    )


def mounted(
    volume: docker.Volume, path: str, *, read_only: bool = False
) -> docker.ContainerVolumeArgs:
    return docker.ContainerVolumeArgs(
        volume_name=volume.name, container_path=path, read_only=read_only
    )


def ready(container: docker.Container, value: str) -> pulumi.Output[str]:
    """`value` as an Output that resolves once the container is up (healthy, if checked)."""
    return container.id.apply(lambda _container_id: value)
