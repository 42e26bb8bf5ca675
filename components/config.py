"""Reading this stack's configuration from Pulumi, once: the settings model
(components/settings.py) validates what is read here.

`pulumi.Config` reads a key's value, but cannot list the keys that are set nor tell whether a
value was set with `--secret`; `_stack_config_keys` gets both from the SDK's runtime config,
the only place this program uses SDK internals.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi

from components.settings import (
    DOCKER_HOST_SCHEMES,
    PROJECT,
    SECRET_KEYS,
    WORKERS_WITHOUT_WARNING,
    SettingsError,
    StackSettings,
    validate_settings,
)

# docker:host may also name a Windows named pipe on the machine running pulumi.
MAIN_DOCKER_HOST_SCHEMES = (*DOCKER_HOST_SCHEMES, "npipe://")


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


def _stack_config_keys() -> dict[str, bool]:
    """This project's config keys that are set, each with whether it is stored as a secret.

    SDK internals, checked against pulumi 3.272.0 (requirements.txt): the runtime's CONFIG
    store and PULUMI_CONFIG environment (pulumi/runtime/config.py) and is_config_secret.
    """
    prefix = f"{PROJECT}:"
    keys = {*pulumi.runtime.config.CONFIG.get(), *pulumi.runtime.config.get_config_env()}
    return {
        key.removeprefix(prefix): pulumi.runtime.config.is_config_secret(key)
        for key in keys
        if key.startswith(prefix)
    }


def _docker_host_problems(docker_host: str | None) -> list[str]:
    if docker_host is None or docker_host.startswith(MAIN_DOCKER_HOST_SCHEMES):
        return []
    return [
        f"docker:host = {docker_host!r} is not allowed; expected a URL starting with "
        + " or ".join(MAIN_DOCKER_HOST_SCHEMES)
    ]


def _warn_about_sizing(settings: StackSettings) -> None:
    workers = settings.fastapi_workers
    if workers > WORKERS_WITHOUT_WARNING:
        pulumi.log.warn(
            f"{PROJECT}:fastapiWorkers = {workers}: Dograh's sizing rule is one worker per "
            f"vCPU, at most {WORKERS_WITHOUT_WARNING} unless profiled, and 300-500 MB of memory "
            f"per worker ({workers * 300}-{workers * 500} MB for the api alone)."
        )


def load_settings() -> LoadedSettings:
    """Read this stack's configuration once; raise pulumi.RunError on any problem."""
    config = pulumi.Config(PROJECT)
    keys = _stack_config_keys()
    secrets_present = set(SECRET_KEYS) & set(keys)
    # Secret values are never read as plain strings: only whether they are set.
    raw = {key: config.get(key) for key in set(keys) - secrets_present}
    problems = [
        f"{PROJECT}:{key} is stored in plain text; set it with "
        f"`pulumi config set --secret {key} ...`"
        for key in sorted(secrets_present)
        if not keys[key]
    ]
    docker_config = pulumi.Config("docker")
    docker_host = docker_config.get("host")
    problems += _docker_host_problems(docker_host)
    try:
        settings = validate_settings(raw, secrets_present)
    except SettingsError as error:
        raise pulumi.RunError(str(SettingsError(problems + error.problems))) from None
    if problems:
        raise pulumi.RunError(str(SettingsError(problems)))
    _warn_about_sizing(settings)
    fingerprint = hashlib.sha256()
    for key in sorted(secrets_present):
        fingerprint.update(f"{key}\0{config.get(key)}\0".encode())
    return LoadedSettings(
        settings=settings,
        secrets=SecretSettings(
            {key: value for key in SECRET_KEYS if (value := config.get_secret(key)) is not None}
        ),
        secret_fingerprint=fingerprint.hexdigest()[:12] if secrets_present else "",
        docker_host=docker_host,
        docker_ssh_opts=docker_config.get_object("sshOpts"),
    )
