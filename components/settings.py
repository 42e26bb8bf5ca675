"""The stack's settings: one pydantic model, validated once.

Every setting is declared here (its `pulumi config` key is the camelCase field name) and in
Pulumi.yaml's `config:` block (a test keeps the two in step). `validate_settings` reports every
problem at once, naming the key, the value given and what is allowed; the rules between
settings, the api release's among them, are in `cross_field_problems`. Reading the values from
Pulumi is components/config.py's job.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

PROJECT = "dograh"

# Sizing rule from Dograh's scaling guide: one uvicorn worker per vCPU, capped at 8 unless
# profiled, 300-500 MB of memory each on top of postgres, redis and minio.
WORKERS_WITHOUT_WARNING = 8
MAX_FASTAPI_WORKERS = 64
MAX_API_CONTAINERS = 16
MAX_API_HOSTS = 16
DOCKER_HOST_SCHEMES = ("unix://", "ssh://", "tcp://")

Release = tuple[int, int, int]

LETS_ENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
# Let's Encrypt allows 5 failed validations per account, hostname and hour
# (letsencrypt.org/docs/rate-limits, "Authorization Failures per Identifier per Account"): a
# client retrying a failing challenge more often than this locks itself out.
LETS_ENCRYPT_MIN_RETRY_SECONDS = 3600 // 5
# Names no public CA can issue for: special-use and private-use suffixes (RFC 6761 .test
# .localhost .invalid .example, RFC 6762 .local, RFC 8375 .home.arpa, ICANN's .internal) and
# names commonly used only inside a network.
PRIVATE_SUFFIXES = (
    "localhost", "local", "test", "invalid", "example", "internal", "home.arpa", "lan",
    "localdomain", "corp", "home",
)  # fmt: skip

# Multi-worker support (one uvicorn process per port) arrived in Dograh 1.29.0.
MIN_DOGRAH_RELEASE: Release = (1, 29, 0)

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
_IMAGE_REFERENCE = re.compile(
    r"^(?P<repo>[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
# Dograh's image workflow (.github/workflows/docker-image.yml) tags release `dograh-vX.Y.Z` as
# `X.Y.Z` (prefixes stripped), plus the short commit sha and `latest`.
_RELEASE_TAG = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_V_RELEASE_TAG = re.compile(r"^(?:dograh-)?v(\d+\.\d+\.\d+)$")


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
    """A pinned Dograh image, its tag spelt as Dograh publishes it."""
    reference = _pinned_image(reference)
    match = _IMAGE_REFERENCE.match(reference)
    tag = match.group("tag") if match else None
    misspelt = _V_RELEASE_TAG.match(tag or "")
    if match and misspelt:
        right = f"{match.group('repo')}:{misspelt.group(1)}"
        raise ValueError(
            f"a tag Dograh publishes: release dograh-v{misspelt.group(1)} is tagged "
            f"{misspelt.group(1)}, without 'v' (write {right})"
        )
    return reference


def parse_release(text: str) -> Release:
    major, minor, patch = (int(part) for part in text.split("."))
    return major, minor, patch


def release_text(release: Release) -> str:
    return ".".join(str(part) for part in release)


def image_release(reference: str) -> Release | None:
    """The Dograh release an image reference names by its tag; None for a digest or sha tag."""
    match = _IMAGE_REFERENCE.match(reference)
    release = _RELEASE_TAG.match((match.group("tag") if match else None) or "")
    return parse_release(release.group(0)) if release else None


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


def _private_network_address(value: str) -> str:
    address = ipaddress.ip_address(_ip_address(value))
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        raise ValueError(
            "an address on the private network between the hosts (not loopback, 0.0.0.0 or "
            "multicast: the other hosts must reach it)"
        )
    return str(address)


def _docker_host_url(value: str) -> str:
    if not value.startswith(DOCKER_HOST_SCHEMES):
        raise ValueError(
            "a Docker host URL starting with "
            + " or ".join(DOCKER_HOST_SCHEMES)
            + " (ssh://user@10.0.0.12 as for docker:host)"
        )
    return value


PinnedImage = Annotated[str, AfterValidator(_pinned_image)]
DograhImage = Annotated[str, AfterValidator(_dograh_image)]
HostName = Annotated[str, AfterValidator(_host_name)]
IpAddress = Annotated[str, AfterValidator(_ip_address)]
PrivateNetworkAddress = Annotated[str, AfterValidator(_private_network_address)]
DockerHostUrl = Annotated[str, AfterValidator(_docker_host_url)]
Port = Annotated[int, Field(ge=1, le=65535, strict=False)]


class ApiHostSettings(BaseModel):
    """One more Docker host running api workers (an entry of apiHosts)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, alias_generator=to_camel
    )

    name: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,29}$",
        description="a short name: lowercase letters, digits and '-', starting with a letter",
    )
    docker_host: DockerHostUrl = Field(description="a Docker host URL (ssh://, tcp://, unix://)")
    address: PrivateNetworkAddress = Field(
        description="where the gateway reaches this host on the private network"
    )
    fastapi_workers: int | None = Field(
        None,
        ge=1,
        le=MAX_FASTAPI_WORKERS,
        description=f"an integer from 1 to {MAX_FASTAPI_WORKERS} (unset: the stack's "
        "fastapiWorkers)",
    )


class StackSettings(BaseModel):
    """Plain (non-secret) settings. Field aliases are the `pulumi config` keys."""

    # The `pulumi config` keys are the camelCase field names.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, alias_generator=to_camel
    )

    fastapi_workers: int = Field(
        4,
        ge=1,
        le=MAX_FASTAPI_WORKERS,
        description=f"an integer from 1 to {MAX_FASTAPI_WORKERS} (one worker per vCPU)",
    )
    api_containers: int = Field(
        1,
        ge=1,
        le=MAX_API_CONTAINERS,
        description=f"an integer from 1 to {MAX_API_CONTAINERS} (containers sharing "
        "fastapiWorkers: a crashed worker restarts only its own container)",
    )
    arq_workers: int = Field(1, ge=1, le=16, description="an integer from 1 to 16")
    api_image: DograhImage = Field(
        "dograhai/dograh-api:1.45.0",
        description="a pinned dograh-api image, release 1.29.0 or newer, tagged X.Y.Z as "
        "Dograh publishes it (or pinned by digest, with apiRelease)",
    )
    api_release: str | None = Field(
        None,
        pattern=r"^\d+\.\d+\.\d+$",
        description="the Dograh release X.Y.Z of apiImage; required when apiImage is pinned "
        "by digest or a commit tag, so the release checks still apply",
    )
    ui_image: DograhImage = Field(
        "dograhai/dograh-ui:1.45.0",
        description="a pinned dograh-ui image, tagged X.Y.Z as Dograh publishes it",
    )
    postgres_image: PinnedImage = Field(
        "pgvector/pgvector:0.8.0-pg17",
        description="a pinned image",
    )
    redis_image: PinnedImage = Field("redis:7.4.2", description="a pinned image")
    minio_image: PinnedImage = Field(
        "minio/minio:RELEASE.2025-04-22T22-12-26Z",
        description="a pinned image",
    )
    nginx_image: PinnedImage = Field("nginx:1.27.5-alpine", description="a pinned image")
    coturn_image: PinnedImage = Field("coturn/coturn:4.8.0-r1", description="a pinned image")
    public_host: HostName = Field(
        "localhost",
        description="the host name (or IP) users reach Dograh at",
    )
    server_ip: IpAddress | None = Field(None, description="the host's public IPv4 or IPv6 address")
    tls_mode: Literal["selfSigned", "provided", "letsEncrypt"] = Field(
        "selfSigned",
        description="'selfSigned' (generated once), 'provided' (tlsCertificate + "
        "tlsPrivateKey) or 'letsEncrypt' (issued and renewed by an ACME client, with acmeEmail)",
    )
    acme_email: str | None = Field(
        None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="an e-mail address (the ACME account's contact: expiry and policy notices)",
    )
    acme_server: str = Field(
        LETS_ENCRYPT_PRODUCTION,
        pattern=r"^https://\S+$",
        description="an https:// ACME directory URL (Let's Encrypt's production one by default; "
        f"staging: {LETS_ENCRYPT_STAGING})",
    )
    acme_server_ca_certificate: str | None = Field(
        None,
        pattern=r"^\s*-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\s*$",
        description="a PEM CA certificate the ACME client trusts for acmeServer's own HTTPS "
        "(a private ACME server; unset for Let's Encrypt)",
    )
    acme_retry_seconds: int = Field(
        900,
        ge=10,
        le=86400,
        description="an integer from 10 to 86400 (how long the ACME client waits after a "
        "failed issuance before it tries again)",
    )
    acme_client_image: PinnedImage = Field(
        "certbot/certbot:v5.6.0", description="a pinned certbot image"
    )
    http_port: Port = Field(80, description="a TCP port from 1 to 65535")
    https_port: Port = Field(443, description="a TCP port from 1 to 65535")
    gateway_bind_address: IpAddress = Field(
        "0.0.0.0",
        description="the host address nginx publishes 80/443 on",
    )
    publish_internal_on_loopback: bool = Field(
        False,
        description="true or false: also publish postgres, redis, minio and the api on 127.0.0.1",
    )
    enable_turn: bool = Field(False, description="true or false: run coturn for WebRTC")
    enable_ari_manager: bool = Field(True, description="true or false")
    enable_campaign_orchestrator: bool = Field(True, description="true or false")
    api_stop_grace_seconds: int = Field(
        60,
        ge=0,
        le=3600,
        description="an integer from 0 to 3600 (seconds between SIGTERM and SIGKILL)",
    )
    rollout_strategy: Literal["zeroDowntime", "recreate"] = Field(
        "zeroDowntime",
        description="'zeroDowntime' (new api generation beside the old, nginx reload, drain) "
        "or 'recreate' (replace api and nginx)",
    )
    drain_timeout_seconds: int = Field(
        1200,
        ge=0,
        le=86400,
        description="an integer from 0 to 86400 (how long an old api generation may finish "
        "its live calls)",
    )
    api_health_timeout_seconds: int = Field(
        300,
        ge=10,
        le=3600,
        description="an integer from 10 to 3600 (how long a new api container may take to "
        "become healthy)",
    )
    s3_bucket: str | None = Field(
        None,
        min_length=3,
        max_length=63,
        description="an S3 bucket name; set it to use external S3 instead of the bundled minio",
    )
    s3_region: str | None = Field(None, description="an AWS region name")
    s3_endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://\S+$",
        description="an http(s):// URL of an S3-compatible endpoint",
    )
    s3_signature_version: Literal["s3v4", "s3"] | None = Field(
        None,
        description="'s3v4' or 's3' (botocore's signature version; unset: botocore's default)",
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] | None = Field(
        None,
        description="'auto', 'path' or 'virtual' (unset: auto)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO",
        description="'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL' (the api's LOG_LEVEL)",
    )
    api_environment: Literal["local", "production"] | None = Field(
        None,
        description="'local' or 'production' (the api's ENVIRONMENT; unset: local for a "
        "localhost or private publicHost without TURN, production otherwise)",
    )
    enable_signup: bool = Field(
        True,
        description="true or false: anyone reaching publicHost may create an account "
        "(turn off once your accounts exist)",
    )
    telephony_ws_token_enforce: bool = Field(
        False,
        description="true or false: refuse telephony media sockets without a signed token",
    )
    api_hosts: list[ApiHostSettings] = Field(
        default_factory=list,
        max_length=MAX_API_HOSTS,
        description=f"up to {MAX_API_HOSTS} more Docker hosts running api workers, each "
        "{name, dockerHost, address, fastapiWorkers?}, set with `pulumi config set --path "
        "'apiHosts[0].dockerHost' ssh://dograh@10.0.0.12` and so on",
    )
    private_address: PrivateNetworkAddress | None = Field(
        None,
        description="this (main) host's address on the private network the apiHosts reach "
        "postgres, redis and minio at; required with apiHosts",
    )

    def host_workers(self, host: ApiHostSettings) -> int:
        """The uvicorn workers an api host runs: its own fastapiWorkers, else the stack's."""
        return host.fastapi_workers if host.fastapi_workers is not None else self.fastapi_workers

    @property
    def public_base_url(self) -> str:
        port = "" if self.https_port == 443 else f":{self.https_port}"
        return f"https://{self.public_host}{port}"

    @property
    def api_release_number(self) -> Release | None:
        """The api's Dograh release: apiRelease, else the image tag's."""
        if self.api_release is not None:
            return parse_release(self.api_release)
        return image_release(self.api_image)

    @property
    def environment(self) -> str:
        """ENVIRONMENT for the api. With `production` and neither TURN nor a server IP, its
        WebRTC signalling drops private-address ICE candidates (api/routes/webrtc_signaling.py),
        so a browser on the same machine or LAN could not connect; Dograh's local install
        uses `local`."""
        if self.api_environment is not None:
            return self.api_environment
        local = not self.enable_turn and _is_local_or_private(self.public_host)
        return "local" if local else "production"


def public_certificate_problem(host: str) -> str | None:
    """Why `host` cannot get a publicly trusted certificate over HTTP-01, or None."""
    try:
        ipaddress.ip_address(host)
        return "it is an IP address; ACME HTTP-01 certificates here are issued for DNS names"
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    suffix = next((s for s in PRIVATE_SUFFIXES if name == s or name.endswith(f".{s}")), None)
    if suffix is not None:
        return f"names under .{suffix} are private or reserved; no public CA issues for them"
    if "." not in name:
        return "a single-label name is not in public DNS"
    return None


def _is_local_or_private(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


@dataclass(frozen=True)
class ReleaseGate:
    """A setting value the api reads only from `release` on (Dograh's source at each tag)."""

    key: str
    applies: Callable[[StackSettings], bool]
    release: Release
    why: str
    otherwise: str = ""

    @property
    def alternative(self) -> str:
        default = self.otherwise or "leave it as it is by default"
        return f"{default}, or use api release {release_text(self.release)} or newer"


RELEASE_GATES = (
    ReleaseGate(
        "rolloutStrategy",
        lambda s: s.rollout_strategy == "zeroDowntime",
        (1, 45, 0),
        "generations run beside each other, so ari_manager and campaign_orchestrator must be "
        "switched off in them (ENABLE_ARI_MANAGER / ENABLE_CAMPAIGN_ORCHESTRATOR, read from "
        "1.45.0; older releases always start both: campaigns dialled twice), and the old "
        "generation is drained through /api/v1/health/active-calls (from 1.40.0)",
        "set rolloutStrategy to 'recreate' (an outage per change)",
    ),
    # (setting, which values need the release, release, why)
    *(
        ReleaseGate(key, applies, release, why)
        for key, applies, release, why in [
            ("apiContainers", lambda s: s.api_containers > 1, (1, 45, 0),
             "older releases start ari_manager and campaign_orchestrator in every api "
             "container whatever the switches say: they would run once per container"),
            ("apiHosts", lambda s: bool(s.api_hosts), (1, 45, 0),
             "older releases start ari_manager and campaign_orchestrator on every host "
             "whatever the switches say: they would run once per host"),
            ("enableAriManager", lambda s: not s.enable_ari_manager, (1, 45, 0),
             "older releases start ari_manager whatever ENABLE_ARI_MANAGER says"),
            ("enableCampaignOrchestrator", lambda s: not s.enable_campaign_orchestrator,
             (1, 45, 0), "older releases start campaign_orchestrator whatever "
             "ENABLE_CAMPAIGN_ORCHESTRATOR says"),
            ("telephonyWsTokenEnforce", lambda s: s.telephony_ws_token_enforce, (1, 45, 0),
             "TELEPHONY_WS_TOKEN_ENFORCE is read from 1.45.0 on"),
            ("enableSignup", lambda s: not s.enable_signup, (1, 42, 0),
             "ENABLE_SIGNUP is read from 1.42.0 on; older releases always allow signup"),
            ("s3EndpointUrl", lambda s: s.s3_endpoint_url is not None, (1, 38, 0),
             "older releases ignore S3_ENDPOINT_URL and silently write to AWS"),
            ("s3SignatureVersion", lambda s: s.s3_signature_version is not None, (1, 38, 0),
             "S3_SIGNATURE_VERSION is read from 1.38.0 on"),
            ("s3AddressingStyle", lambda s: s.s3_addressing_style is not None, (1, 38, 0),
             "S3_ADDRESSING_STYLE is read from 1.38.0 on"),
            ("serverIp", lambda s: s.server_ip is not None, (1, 31, 0),
             "SERVER_IP is read from 1.31.0 on"),
        ]
    ),
)  # fmt: skip


def release_problems(settings: StackSettings) -> list[str]:
    """The api release, known and new enough for every setting that needs it."""
    release = settings.api_release_number
    tag_release = image_release(settings.api_image)
    if release is None:
        return [
            f"{PROJECT}:apiImage = {settings.api_image!r} does not name a Dograh release "
            "(pinned by digest or commit); set apiRelease to its release, X.Y.Z"
        ]
    if tag_release is not None and tag_release != release:
        return [
            f"{PROJECT}:apiRelease = {settings.api_release!r} contradicts apiImage "
            f"{settings.api_image!r}; leave apiRelease unset or make them agree"
        ]
    if release < MIN_DOGRAH_RELEASE:
        return [
            f"{PROJECT}:apiImage = {settings.api_image!r} is release {release_text(release)}; "
            f"expected {release_text(MIN_DOGRAH_RELEASE)} or newer (older releases do not run "
            "one uvicorn process per port)"
        ]
    return [
        f"{PROJECT}:{gate.key} = {_shown(settings, gate.key)} needs api release "
        f"{release_text(gate.release)} or newer, and apiImage is release "
        f"{release_text(release)}: {gate.why}. Instead: {gate.alternative}"
        for gate in RELEASE_GATES
        if gate.applies(settings) and release < gate.release
    ]


def _shown(settings: StackSettings, alias: str) -> str:
    value = settings.model_dump(by_alias=True)[alias]
    if isinstance(value, list):  # apiHosts: by their names
        return repr([item["name"] for item in value])
    return repr(value if not isinstance(value, bool) else str(value).lower())


# Settings whose values are secrets: each may be set with `pulumi config set --secret`.
# Unset generated ones are created once by pulumi-random and kept in state.
SECRET_KEYS: dict[str, str] = {
    "postgresPassword": "the bundled postgres password (generated when unset)",
    "redisPassword": "the bundled redis password (generated when unset)",
    "minioRootPassword": "the bundled minio root password (generated when unset)",
    "ossJwtSecret": "OSS_JWT_SECRET (generated when unset)",
    "turnSecret": "the coturn shared secret (generated when unset)",
    "devopsSecret": "DOGRAH_DEVOPS_SECRET for the drain endpoint (generated when unset)",
    "telephonyWsTokenSecret": "TELEPHONY_WS_TOKEN_SECRET, signs telephony media-socket URLs "
    "(generated when unset)",
    "tlsCertificate": "PEM certificate chain, with tlsMode=provided",
    "tlsPrivateKey": "PEM private key, with tlsMode=provided",
    "externalDatabaseUrl": "a postgresql+asyncpg:// URL instead of the bundled postgres",
    "externalRedisUrl": "a redis:// or rediss:// URL instead of the bundled redis",
    "s3AccessKeyId": "the access key for s3Bucket",
    "s3SecretAccessKey": "the secret key for s3Bucket",
    "s3SessionToken": "AWS_SESSION_TOKEN, for temporary s3AccessKeyId credentials",
}


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
    problems += _parse_structured(plain)
    settings: StackSettings | None = None
    if not problems:
        try:
            settings = StackSettings.model_validate(plain)
        except ValidationError as error:
            problems += [_validation_problem(item, plain) for item in error.errors()]
    if settings is not None:
        problems.extend(cross_field_problems(settings, secret_keys_present))
    if problems:
        raise SettingsError(problems)
    assert settings is not None
    return settings


# Settings whose value is a list of objects: `pulumi config set --path` stores them as YAML and
# the program reads them back as JSON text.
STRUCTURED_KEYS = ("apiHosts",)


def _parse_structured(plain: dict[str, Any]) -> list[str]:
    problems = []
    for key in STRUCTURED_KEYS:
        if isinstance(plain.get(key), str):
            try:
                plain[key] = json.loads(plain[key])
            except json.JSONDecodeError:
                problems.append(
                    f"{PROJECT}:{key} = {plain[key]!r} is not allowed; expected a list, set with "
                    f"`pulumi config set --path '{key}[0].name' ...`"
                )
    return problems


def _validation_problem(item: Any, plain: dict[str, Any]) -> str:
    """One pydantic error as `dograh:<path> = <value> is not allowed; expected ...`, the path
    down to the field (`apiHosts[1].address`)."""
    location, value = "", cast(Any, plain)
    model: type[BaseModel] = StackSettings
    expected = None
    for step in item["loc"]:
        if isinstance(step, int):
            location += f"[{step}]"
            model = ApiHostSettings
        else:
            location += f".{step}" if location else str(step)
            field = next((f for f in model.model_fields.values() if f.alias == step), None)
            expected = field.description if field is not None else None
        value = value[step] if isinstance(value, dict | list) and _has(value, step) else None
    failure = item.get("ctx", {}).get("error") if item["type"] == "value_error" else None
    if failure is not None:
        expected = str(failure)
    elif item["type"] == "missing":
        return f"{PROJECT}:{location} is required; expected {expected or 'see the README'}"
    elif item["type"] == "extra_forbidden":
        return (
            f"{PROJECT}:{location} is not a field of an api host "
            "(name, dockerHost, address, fastapiWorkers)"
        )
    expected = expected or _allowed(location)
    return f"{PROJECT}:{location} = {value!r} is not allowed; expected {expected}"


def _has(container: dict[str, Any] | list[Any], step: str | int) -> bool:
    if isinstance(container, dict):
        return step in container
    return isinstance(step, int) and 0 <= step < len(container)


def cross_field_problems(settings: StackSettings, secret_keys_present: set[str]) -> list[str]:
    """Every rule between settings (and which secrets are set), in one place."""
    problems = []
    if settings.enable_turn and settings.server_ip is None:
        problems.append(
            f"{PROJECT}:serverIp is required when enableTurn is true (coturn advertises it)"
        )
    if settings.api_containers > settings.fastapi_workers:
        problems.append(
            f"{PROJECT}:apiContainers = {settings.api_containers} is more than fastapiWorkers = "
            f"{settings.fastapi_workers}; each api container runs at least one worker"
        )
    if settings.http_port == settings.https_port:
        problems.append(f"{PROJECT}:httpsPort must differ from httpPort")
    problems.extend(_api_host_problems(settings))
    external_s3_only = [
        key
        for key, value in (
            ("s3Region", settings.s3_region),
            ("s3EndpointUrl", settings.s3_endpoint_url),
            ("s3SignatureVersion", settings.s3_signature_version),
            ("s3AddressingStyle", settings.s3_addressing_style),
        )
        if value is not None
    ]
    if settings.s3_bucket is None and external_s3_only:
        problems.append(f"{PROJECT}:s3Bucket required when {' and '.join(external_s3_only)} is set")
    provided_tls = {"tlsCertificate", "tlsPrivateKey"} & secret_keys_present
    if settings.tls_mode == "provided" and len(provided_tls) != 2:
        problems.append(
            f"{PROJECT}:tlsMode = 'provided' needs both tlsCertificate and tlsPrivateKey "
            "(pulumi config set --secret)"
        )
    if settings.tls_mode != "provided" and provided_tls:
        problems.append(
            f"{PROJECT}:tlsCertificate/tlsPrivateKey are set but tlsMode is "
            f"{settings.tls_mode!r}; set tlsMode to 'provided' to use them, or remove them"
        )
    problems.extend(_lets_encrypt_problems(settings))
    problems.extend(release_problems(settings))
    if settings.s3_bucket is None and "s3SessionToken" in secret_keys_present:
        problems.append(f"{PROJECT}:s3SessionToken is set but s3Bucket is not")
    s3_keys = {"s3AccessKeyId", "s3SecretAccessKey"} & secret_keys_present
    if settings.s3_bucket is not None and len(s3_keys) != 2:
        problems.append(
            f"{PROJECT}:s3Bucket = {settings.s3_bucket!r} needs s3AccessKeyId and "
            "s3SecretAccessKey (pulumi config set --secret)"
        )
    return problems


def _api_host_problems(settings: StackSettings) -> list[str]:
    hosts = settings.api_hosts
    if not hosts:
        if settings.private_address is not None:
            return [
                f"{PROJECT}:privateAddress = {settings.private_address!r} is set but apiHosts is "
                "empty; it is only used with apiHosts (unset it, or add the hosts)"
            ]
        return []
    problems = []
    if settings.private_address is None:
        problems.append(
            f"{PROJECT}:privateAddress is required with apiHosts: this host's address on the "
            "private network, where the api hosts reach postgres, redis and minio"
        )
    if settings.rollout_strategy != "zeroDowntime":
        problems.append(
            f"{PROJECT}:rolloutStrategy = {settings.rollout_strategy!r} is not allowed with "
            "apiHosts; expected 'zeroDowntime' (hosts are rolled one at a time, out of nginx's "
            "upstream and drained first)"
        )
    seen_names: dict[str, int] = {}
    seen_addresses: dict[str, str] = (
        {settings.private_address: "privateAddress"} if settings.private_address else {}
    )
    for index, host in enumerate(hosts):
        path = f"{PROJECT}:apiHosts[{index}]"
        if host.name in seen_names:
            problems.append(
                f"{path}.name = {host.name!r} is already the name of apiHosts"
                f"[{seen_names[host.name]}]; expected a name of its own"
            )
        seen_names.setdefault(host.name, index)
        if host.address in seen_addresses:
            problems.append(
                f"{path}.address = {host.address!r} is already {seen_addresses[host.address]}'s; "
                "expected each host's own address"
            )
        seen_addresses.setdefault(host.address, f"apiHosts[{index}].address")
        workers = settings.host_workers(host)
        if settings.api_containers > workers:
            problems.append(
                f"{path}.fastapiWorkers = {workers} is less than apiContainers = "
                f"{settings.api_containers}; each api container runs at least one worker"
            )
    return problems


def _lets_encrypt_problems(settings: StackSettings) -> list[str]:
    if settings.tls_mode != "letsEncrypt":
        return []
    problems = []
    why_not = public_certificate_problem(settings.public_host)
    if why_not is not None:
        problems.append(
            f"{PROJECT}:tlsMode = 'letsEncrypt' needs a public DNS name in publicHost, and "
            f"publicHost = {settings.public_host!r}: {why_not}. Point a public name at this "
            "host, or use tlsMode 'selfSigned' or 'provided'"
        )
    if settings.acme_email is None:
        problems.append(
            f"{PROJECT}:acmeEmail is required with tlsMode = 'letsEncrypt' (the ACME account's "
            "contact for expiry and policy notices)"
        )
    if (
        settings.acme_server in (LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING)
        and settings.acme_retry_seconds < LETS_ENCRYPT_MIN_RETRY_SECONDS
    ):
        problems.append(
            f"{PROJECT}:acmeRetrySeconds = {settings.acme_retry_seconds} would retry a failing "
            "challenge more than 5 times an hour, Let's Encrypt's limit of failed validations "
            f"per hostname; use {LETS_ENCRYPT_MIN_RETRY_SECONDS} or more"
        )
    return problems
