"""What every service container of the stack shares: one place for the house rules.

Each container: a pinned image, the stack network with a stable alias, a restart policy (so
the stack comes back after a reboot, unlike Dograh's compose file), bounded json-file logs,
health checks whose edits force a replacement (the docker provider does not apply them in
place: kreuzwerker/terraform-provider-docker#988), and delete-before-replace because Docker
refuses two containers with one name.

Inputs are written the way the provider reads them back. The engine diffs a new declaration
against the state the provider's Read stored, and kreuzwerker stores health-check durations as
Go's `time.Duration.String()` ("2m0s", not "120s"): anything else is a change on every run
(and, with `replace_on_changes`, a replacement).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

RESTART_POLICY = "unless-stopped"
# kreuzwerker's default create and delete timeouts (resource_docker_container.go); longer
# waits need `custom_timeouts`, or the provider cuts them.
PROVIDER_DEFAULT_TIMEOUT_SECONDS = 20 * 60
# Beyond the health wait or the stop grace: starting, uploading, removing.
TIMEOUT_MARGIN_SECONDS = 120
LOG_DRIVER = "json-file"
LOG_OPTIONS = {"max-size": "10m", "max-file": "5"}
LOOPBACK = "127.0.0.1"


def go_duration_string(nanoseconds: int) -> str:
    """Go's time.Duration.String(): 10s, 2m0s, 1h0m0s, 1.5s, 500ms. The docker provider stores
    health-check durations this way (resourceDockerContainerRead in kreuzwerker's
    internal/provider/resource_docker_container_funcs.go)."""
    if nanoseconds < 0:
        raise ValueError(f"a duration cannot be negative, got {nanoseconds}")
    if nanoseconds == 0:
        return "0s"
    if nanoseconds < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanoseconds >= size:
                return f"{_trim(nanoseconds / size)}{unit}"
    hours, rest = divmod(nanoseconds, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _trim(rest / 1_000_000_000)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def _seconds(seconds: int) -> str:
    return go_duration_string(seconds * 1_000_000_000)


def health_check(
    shell_command: str,
    *,
    interval_seconds: int = 10,
    timeout_seconds: int = 5,
    retries: int = 6,
    start_period_seconds: int = 20,
) -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(
        tests=["CMD-SHELL", shell_command],
        interval=_seconds(interval_seconds),
        timeout=_seconds(timeout_seconds),
        retries=retries,
        start_period=_seconds(start_period_seconds),
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
    """Where a service runs: the stack network and the name prefix. The Docker host is the
    docker provider every component inherits from the stack (`providers=`)."""

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
    # Replaces the image's ENTRYPOINT (unset: the image's own).
    entrypoint: Sequence[str] | None = None
    command: Sequence[pulumi.Input[str]] | None = None
    healthcheck: docker.ContainerHealthcheckArgs | None = None
    ports: Sequence[docker.ContainerPortArgs] = ()
    volumes: Sequence[docker.ContainerVolumeArgs] = ()
    uploads: Sequence[docker.ContainerUploadArgs] = ()
    labels: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # Host name -> address, written into the container's /etc/hosts.
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    destroy_grace_seconds: int | None = None
    wait_timeout_seconds: int = 120
    # Containers are deleted before their replacement is created, because Docker refuses two
    # containers with one name. A container whose name changes with each replacement (an api
    # generation) can instead start its replacement first.
    create_before_delete: bool = False
    hooks: pulumi.ResourceHookBinding | None = None
    # A one-off job rather than a service: the provider waits for it to exit (`attach`,
    # resourceDockerContainerCreate) and leaves it stopped (`must_run` false); never restarted.
    # Its exit code is recorded in state (`exit_code`, resourceDockerContainerRead).
    run_once: bool = False


def declare_container(
    owner: pulumi.ComponentResource,
    owner_name: str,
    spec: ContainerSpec,
    placement: Placement,
    depends_on: Sequence[pulumi.Resource] = (),
    resource_name: str | None = None,
    image: docker.RemoteImage | None = None,
) -> docker.Container:
    """Declare the image pull (unless `image`, pulled once for several containers, is given)
    and the container as children of `owner`.

    `resource_name` (default `<owner_name>-container`) is the container's Pulumi name, part of
    its URN: a name that changes makes a new resource rather than a replacement.
    """
    if image is None:
        image = pull_image(owner, owner_name, spec.image)
    return docker.Container(
        resource_name or f"{owner_name}-container",
        name=placement.docker_name(spec.service),
        image=image.image_id,
        envs=env_list(spec.envs) or None,
        entrypoints=list(spec.entrypoint) if spec.entrypoint is not None else None,
        command=list(spec.command) if spec.command is not None else None,
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(name=placement.network_name, aliases=[spec.alias])
        ],
        healthcheck=spec.healthcheck,
        # Wait for healthy, so what depends on this container starts after it can serve.
        wait=spec.healthcheck is not None,
        wait_timeout=spec.wait_timeout_seconds if spec.healthcheck is not None else None,
        ports=list(spec.ports) or None,
        hosts=[
            docker.ContainerHostArgs(host=host, ip=spec.extra_hosts[host])
            for host in sorted(spec.extra_hosts)
        ]
        or None,
        volumes=list(spec.volumes) or None,
        uploads=list(spec.uploads) or None,
        labels=[
            docker.ContainerLabelArgs(label=key, value=spec.labels[key])
            for key in sorted(spec.labels)
        ]
        or None,
        restart="no" if spec.run_once else RESTART_POLICY,
        attach=True if spec.run_once else None,
        must_run=False if spec.run_once else None,
        log_driver=LOG_DRIVER,
        log_opts=LOG_OPTIONS,
        destroy_grace_seconds=spec.destroy_grace_seconds,
        opts=pulumi.ResourceOptions(
            parent=owner,
            delete_before_replace=not spec.create_before_delete,
            replace_on_changes=["healthcheck"],
            depends_on=list(depends_on),
            hooks=spec.hooks,
            custom_timeouts=_timeouts(spec),
            # Whatever carries a value from another resource (passwords, URLs with
            # credentials, the TLS key) stays encrypted in the state's outputs too.
            additional_secret_outputs=_carrying_resource_values(spec) or None,
        ),
    )


def pull_image(
    owner: pulumi.ComponentResource, owner_name: str, reference: str
) -> docker.RemoteImage:
    """`<owner_name>-image`: one per owner and image, since a URN can be registered once."""
    return docker.RemoteImage(
        f"{owner_name}-image",
        name=reference,
        # Several stacks on one host may share an image: never delete it on replace.
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=owner),
    )


def _timeouts(spec: ContainerSpec) -> pulumi.CustomTimeouts:
    """Create waits for healthy, delete waits out the stop grace: never cut by the provider."""
    waits = spec.healthcheck is not None or spec.run_once
    create = (spec.wait_timeout_seconds if waits else 0) + TIMEOUT_MARGIN_SECONDS
    delete = (spec.destroy_grace_seconds or 0) + TIMEOUT_MARGIN_SECONDS
    return pulumi.CustomTimeouts(
        create=f"{max(create, PROVIDER_DEFAULT_TIMEOUT_SECONDS)}s",
        delete=f"{max(delete, PROVIDER_DEFAULT_TIMEOUT_SECONDS)}s",
    )


def _carrying_resource_values(spec: ContainerSpec) -> list[str]:
    properties = []
    if any(not isinstance(value, str) for value in spec.envs.values()):
        properties.append("envs")
    if any(not isinstance(upload.content, str) for upload in spec.uploads):
        properties.append("uploads")
    return properties


@dataclass(frozen=True, kw_only=True)
class DataServiceArgs:
    """A bundled data service (postgres, redis) and its volume; with an external URL
    (externalDatabaseUrl, externalRedisUrl) no container runs and the volume alone is kept."""

    placement: Placement
    image: str
    password: pulumi.Input[str]
    external_url: pulumi.Input[str] | None = None
    publish_on_loopback: bool = False
    # With apiHosts: the main host's private address, where the other hosts reach the service.
    private_address: str | None = None


def data_service_ports(
    *,
    loopback: Sequence[int],
    private: Sequence[int],
    publish_on_loopback: bool,
    private_address: str | None,
) -> list[docker.ContainerPortArgs]:
    """A data service's published ports: on 127.0.0.1 with publishInternalOnLoopback, and on
    the private address with apiHosts; never on every interface."""
    ports = [published_port(port, port) for port in loopback] if publish_on_loopback else []
    if private_address is not None:
        ports += [published_port(port, port, ip=private_address) for port in private]
    return ports


def service_url(
    external_url: pulumi.Input[str] | None, bundled: Callable[[], pulumi.Input[str]]
) -> pulumi.Output[str]:
    """The URL the api reaches a data service at, secret either way: the external one when
    set, else the bundled server's (`bundled` declares that server and returns its URL)."""
    return pulumi.Output.secret(external_url if external_url is not None else bundled())


def data_volume(
    owner: pulumi.ComponentResource, owner_name: str, service: str, placement: Placement
) -> docker.Volume:
    """A named volume that holds data: protected, so no config change can replace or delete it."""
    return docker.Volume(
        f"{owner_name}-data",
        name=placement.docker_name(f"{service}-data"),
        opts=pulumi.ResourceOptions(parent=owner, protect=True),
    )


def mounted(
    volume: docker.Volume, path: str, *, read_only: bool = False
) -> docker.ContainerVolumeArgs:
    return docker.ContainerVolumeArgs(
        volume_name=volume.name, container_path=path, read_only=read_only
    )


# postgres, redis and minio get this long after SIGTERM (postgres: SIGINT, a fast clean
# shutdown) before SIGKILL; without it the provider kills at once and postgres crash-recovers.
DATA_STOP_GRACE_SECONDS = 60
