"""The stack's settings: one pydantic model, read from `pulumi config` and validated once.

Every setting is declared here and in Pulumi.yaml's `config:` block (a test keeps the two in
step). `load_settings` turns all problems into a single `pulumi.RunError` that names each bad
key, the value given and what is allowed, before the program declares any resource.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

PROJECT = "dograh"

# Sizing rule from Dograh's scaling guide: one uvicorn worker per vCPU, capped at 8 unless
# profiled, 300-500 MB of memory each on top of postgres, redis and minio.
WORKERS_WITHOUT_WARNING = 8
MAX_FASTAPI_WORKERS = 64

# Multi-worker support (one uvicorn process per port) arrived in Dograh v1.29.0.
MIN_DOGRAH_VERSION = (1, 29, 0)

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
_IMAGE_REFERENCE = re.compile(
    r"^(?P<repo>[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_SEMVER_TAG = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def _pinned_image(reference: str) -> str:
    match = _IMAGE_REFERENCE.match(reference)
    if match is None:
        raise ValueError("an image reference such as repository/name:1.2.3")
    tag, digest = match.group("tag"), match.group("digest")
    if digest is None and tag is None:
        raise ValueError(
            "a pinned image: give a tag or a digest (an untagged image means `latest`)"
        )
    if tag == "latest":
        raise ValueError("a pinned image: `latest` changes under you, give a version tag")
    return reference


def _dograh_image(reference: str) -> str:
    """Refuse Dograh releases older than the one that runs one uvicorn process per port."""
    reference = _pinned_image(reference)
    match = _IMAGE_REFERENCE.match(reference)
    tag = match.group("tag") if match else None
    version = _SEMVER_TAG.match(tag or "")
    if version and tuple(int(part) for part in version.groups()) < MIN_DOGRAH_VERSION:
        raise ValueError(
            "Dograh v1.29.0 or newer: older releases do not run one uvicorn process per port"
        )
    return reference


def _host_name(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME.match(value):
        raise ValueError("a DNS host name (letters, digits, '-' and '.') or an IP address")
    return value


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("an IPv4 or IPv6 address") from None


PinnedImage = Annotated[str, AfterValidator(_pinned_image)]
DograhImage = Annotated[str, AfterValidator(_dograh_image)]
HostName = Annotated[str, AfterValidator(_host_name)]
IpAddress = Annotated[str, AfterValidator(_ip_address)]
Port = Annotated[int, Field(ge=1, le=65535, strict=False)]


class StackSettings(BaseModel):
    """Plain (non-secret) settings. Field aliases are the `pulumi config` keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    fastapi_workers: int = Field(
        4,
        alias="fastapiWorkers",
        ge=1,
        le=MAX_FASTAPI_WORKERS,
        description=f"an integer from 1 to {MAX_FASTAPI_WORKERS} (one worker per vCPU)",
    )
    arq_workers: int = Field(
        1, alias="arqWorkers", ge=1, le=16, description="an integer from 1 to 16"
    )
    api_image: DograhImage = Field(
        "dograhai/dograh-api:v1.29.0",
        alias="apiImage",
        description="a pinned dograh-api image, v1.29.0 or newer",
    )
    ui_image: PinnedImage = Field(
        "dograhai/dograh-ui:v1.29.0", alias="uiImage", description="a pinned image"
    )
    postgres_image: PinnedImage = Field(
        "pgvector/pgvector:0.8.0-pg17",
        alias="postgresImage",
        description="a pinned image",
    )
    redis_image: PinnedImage = Field(
        "redis:7.4.2", alias="redisImage", description="a pinned image"
    )
    minio_image: PinnedImage = Field(
        "minio/minio:RELEASE.2025-04-22T22-12-26Z",
        alias="minioImage",
        description="a pinned image",
    )
    nginx_image: PinnedImage = Field(
        "nginx:1.27.5-alpine", alias="nginxImage", description="a pinned image"
    )
    coturn_image: PinnedImage = Field(
        "coturn/coturn:4.8.0", alias="coturnImage", description="a pinned image"
    )
    public_host: HostName = Field(
        "localhost",
        alias="publicHost",
        description="the host name (or IP) users reach Dograh at",
    )
    server_ip: IpAddress | None = Field(
        None, alias="serverIp", description="the host's public IPv4 or IPv6 address"
    )
    tls_mode: Literal["selfSigned", "provided"] = Field(
        "selfSigned",
        alias="tlsMode",
        description="'selfSigned' (generated once) or 'provided' (tlsCertificate + tlsPrivateKey)",
    )
    http_port: Port = Field(80, alias="httpPort", description="a TCP port from 1 to 65535")
    https_port: Port = Field(443, alias="httpsPort", description="a TCP port from 1 to 65535")
    gateway_bind_address: IpAddress = Field(
        "0.0.0.0",
        alias="gatewayBindAddress",
        description="the host address nginx publishes 80/443 on",
    )
    publish_internal_on_loopback: bool = Field(
        False,
        alias="publishInternalOnLoopback",
        description="true or false: also publish postgres, redis, minio and the api on 127.0.0.1",
    )
    enable_turn: bool = Field(
        False, alias="enableTurn", description="true or false: run coturn for WebRTC"
    )
    enable_ari_manager: bool = Field(True, alias="enableAriManager", description="true or false")
    enable_campaign_orchestrator: bool = Field(
        True, alias="enableCampaignOrchestrator", description="true or false"
    )
    api_stop_grace_seconds: int = Field(
        60,
        alias="apiStopGraceSeconds",
        ge=0,
        le=3600,
        description="an integer from 0 to 3600 (seconds between SIGTERM and SIGKILL)",
    )
    rollout_strategy: Literal["zeroDowntime", "recreate"] = Field(
        "zeroDowntime",
        alias="rolloutStrategy",
        description="'zeroDowntime' (new api generation beside the old, nginx reload, drain) "
        "or 'recreate' (replace api and nginx)",
    )
    drain_timeout_seconds: int = Field(
        1200,
        alias="drainTimeoutSeconds",
        ge=0,
        le=86400,
        description="an integer from 0 to 86400 (how long an old api generation may finish "
        "its live calls)",
    )
    api_health_timeout_seconds: int = Field(
        300,
        alias="apiHealthTimeoutSeconds",
        ge=10,
        le=3600,
        description="an integer from 10 to 3600 (how long a new api container may take to "
        "become healthy)",
    )
    s3_bucket: str | None = Field(
        None,
        alias="s3Bucket",
        min_length=3,
        max_length=63,
        description="an S3 bucket name; set it to use external S3 instead of the bundled minio",
    )
    s3_region: str | None = Field(None, alias="s3Region", description="an AWS region name")
    s3_endpoint_url: str | None = Field(
        None,
        alias="s3EndpointUrl",
        pattern=r"^https?://\S+$",
        description="an http(s):// URL of an S3-compatible endpoint",
    )

    @model_validator(mode="after")
    def _turn_needs_public_ip(self) -> StackSettings:
        if self.enable_turn and self.server_ip is None:
            raise ValueError("serverIp: required when enableTurn is true (coturn advertises it)")
        if self.s3_bucket is None and (self.s3_region or self.s3_endpoint_url):
            raise ValueError("s3Bucket: required when s3Region or s3EndpointUrl is set")
        if self.http_port == self.https_port:
            raise ValueError("httpsPort: must differ from httpPort")
        return self

    @property
    def public_base_url(self) -> str:
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{self.public_host}{port}"


DOCKER_HOST_SCHEMES = ("unix://", "ssh://", "tcp://", "npipe://")

# Settings whose values are secrets: each may be set with `pulumi config set --secret`.
# Unset generated ones are created once by pulumi-random and kept in state.
SECRET_KEYS: dict[str, str] = {
    "postgresPassword": "the bundled postgres password (generated when unset)",
    "redisPassword": "the bundled redis password (generated when unset)",
    "minioRootPassword": "the bundled minio root password (generated when unset)",
    "ossJwtSecret": "OSS_JWT_SECRET (generated when unset)",
    "turnSecret": "the coturn shared secret (generated when unset)",
    "devopsSecret": "DOGRAH_DEVOPS_SECRET for the drain endpoint (generated when unset)",
    "tlsCertificate": "PEM certificate chain, with tlsMode=provided",
    "tlsPrivateKey": "PEM private key, with tlsMode=provided",
    "externalDatabaseUrl": "a postgresql+asyncpg:// URL instead of the bundled postgres",
    "externalRedisUrl": "a redis:// or rediss:// URL instead of the bundled redis",
    "s3AccessKeyId": "the access key for s3Bucket",
    "s3SecretAccessKey": "the secret key for s3Bucket",
}


@dataclass(frozen=True)
class SecretSettings:
    """Secret settings as Outputs; None where unset."""

    values: dict[str, pulumi.Output[str]]

    def get(self, key: str) -> pulumi.Output[str] | None:
        return self.values.get(key)


@dataclass(frozen=True)
class LoadedSettings:
    settings: StackSettings
    secrets: SecretSettings
    # The standard `docker:host` / `docker:sshOpts` settings, passed to the explicit provider.
    docker_host: str | None = None
    docker_ssh_opts: list[str] | None = None
    # A one-way digest of the secret settings that are set (never their values): a changed
    # secret must give the api a new generation name, and names cannot wait for Outputs.
    secret_fingerprint: str = ""


class SettingsError(ValueError):
    """Every problem found in one read of the stack configuration."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"the stack configuration has {len(problems)} problem(s); "
            f"nothing was deployed:\n{lines}"
        )


SETTING_KEYS = [str(field.alias) for field in StackSettings.model_fields.values()]
_OPTIONAL_ALIASES = {
    str(field.alias) for field in StackSettings.model_fields.values() if field.default is None
}


def _allowed(field_alias: str) -> str:
    for field in StackSettings.model_fields.values():
        if field.alias == field_alias:
            return field.description or "see Pulumi.yaml"
    return "see Pulumi.yaml"


def validate_settings(raw: dict[str, Any], secret_keys_present: set[str]) -> StackSettings:
    """Validate plain values (as `pulumi config` gives them: strings) and which secrets are set.

    Raises SettingsError listing every bad key with its value and what is allowed.
    """
    problems: list[str] = []
    known = set(SETTING_KEYS) | set(SECRET_KEYS)
    for key in sorted(set(raw) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else " (see Pulumi.yaml)"
        problems.append(f"{PROJECT}:{key} is not a setting of this program{hint}")
    plain = {key: value for key, value in raw.items() if key in known and key not in SECRET_KEYS}
    # Pulumi.yaml can only declare an optional setting with a default, so "" means unset.
    plain = {
        key: value for key, value in plain.items() if not (value == "" and key in _OPTIONAL_ALIASES)
    }
    settings: StackSettings | None = None
    try:
        settings = StackSettings.model_validate(plain)
    except ValidationError as error:
        for item in error.errors():
            location = item["loc"][0] if item["loc"] else None
            if location is None:
                message = str(item.get("ctx", {}).get("error", item["msg"]))
                setting, _, explanation = message.partition(": ")
                problems.append(f"{PROJECT}:{setting} {explanation}")
                continue
            key = str(location)
            failure = item.get("ctx", {}).get("error") if item["type"] == "value_error" else None
            expected = str(failure) if failure is not None else _allowed(key)
            problems.append(
                f"{PROJECT}:{key} = {plain.get(key)!r} is not allowed; expected {expected}"
            )
    if settings is not None:
        provided_tls = {"tlsCertificate", "tlsPrivateKey"} & secret_keys_present
        if settings.tls_mode == "provided" and len(provided_tls) != 2:
            problems.append(
                f"{PROJECT}:tlsMode = 'provided' needs both tlsCertificate and tlsPrivateKey "
                "(pulumi config set --secret)"
            )
        if settings.tls_mode == "selfSigned" and provided_tls:
            problems.append(
                f"{PROJECT}:tlsCertificate/tlsPrivateKey are set but tlsMode is 'selfSigned'; "
                "set tlsMode to 'provided' to use them"
            )
        s3_keys = {"s3AccessKeyId", "s3SecretAccessKey"} & secret_keys_present
        if settings.s3_bucket is not None and len(s3_keys) != 2:
            problems.append(
                f"{PROJECT}:s3Bucket = {settings.s3_bucket!r} needs s3AccessKeyId and "
                "s3SecretAccessKey (pulumi config set --secret)"
            )
    if problems:
        raise SettingsError(problems)
    assert settings is not None
    return settings


def load_settings() -> LoadedSettings:
    """Read this stack's configuration once; raise pulumi.RunError on any problem."""
    config = pulumi.Config(PROJECT)
    prefix = f"{PROJECT}:"
    all_keys = {
        key[len(prefix) :]
        for key in {
            *pulumi.runtime.config.CONFIG.get(),
            *pulumi.runtime.config.get_config_env(),
        }
        if key.startswith(prefix)
    }
    secrets_present = set(SECRET_KEYS) & all_keys
    # Secret values are never read as plain strings: only whether they are set.
    raw = {key: config.get(key) for key in all_keys - secrets_present}
    problems: list[str] = []
    for key in sorted(secrets_present):
        if not pulumi.runtime.config.is_config_secret(f"{prefix}{key}"):
            problems.append(
                f"{prefix}{key} is stored in plain text; set it with "
                f"`pulumi config set --secret {key} ...`"
            )
    docker_config = pulumi.Config("docker")
    docker_host = docker_config.get("host")
    if docker_host is not None and not docker_host.startswith(DOCKER_HOST_SCHEMES):
        problems.append(
            f"docker:host = {docker_host!r} is not allowed; expected a URL starting with "
            + " or ".join(DOCKER_HOST_SCHEMES)
        )
    try:
        settings = validate_settings(raw, secrets_present)
    except SettingsError as error:
        raise pulumi.RunError(str(SettingsError(problems + error.problems))) from None
    if problems:
        raise pulumi.RunError(str(SettingsError(problems)))
    if settings.fastapi_workers > WORKERS_WITHOUT_WARNING:
        pulumi.log.warn(
            f"{prefix}fastapiWorkers = {settings.fastapi_workers}: Dograh's sizing rule is one "
            f"worker per vCPU, at most {WORKERS_WITHOUT_WARNING} unless profiled, and 300-500 MB "
            f"of memory per worker ({settings.fastapi_workers * 300}-"
            f"{settings.fastapi_workers * 500} MB for the api alone)."
        )
    secrets = SecretSettings(
        {key: value for key in SECRET_KEYS if (value := config.get_secret(key)) is not None}
    )
    fingerprint = hashlib.sha256()
    for key in sorted(secrets_present):
        fingerprint.update(f"{key}\0{config.get(key)}\0".encode())
    return LoadedSettings(
        settings=settings,
        secrets=secrets,
        secret_fingerprint=fingerprint.hexdigest()[:12] if secrets_present else "",
        docker_host=docker_host,
        docker_ssh_opts=docker_config.get_object("sshOpts"),
    )
