"""Invariants every Dograh stack must keep, checked on what a preview would deploy.

Each check is a plain function over resource properties, so tests can call it with passing
and failing resources; ALL_POLICIES wraps them for the policy pack. They read the docker
provider's property names (camelCase) and are written to hold for both rollout strategies.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
COMMAND = "command:local:Command"
MAX_WORKERS = 64
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
PUBLIC_SERVICES = re.compile(r"-(gateway|coturn)$")
# `api`, `api-<generation>`, and with apiContainers `api-1`, `api-<generation>-2`, ...
API_WORKERS = re.compile(r"-api(-[0-9a-f]{6})?(-\d+)?$")
# An upstream server: a network alias or (an api host's worker) an address, and the port.
UPSTREAM_SERVER = re.compile(r"^\s*server (\S+):(\d+) ", re.MULTILINE)
SENSITIVE_ENV = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|AUTH|DATABASE_URL|REDIS_URL")
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}

Violations = list[str]


def _envs(props: Mapping[str, Any]) -> dict[str, str]:
    items = props.get("envs") or []
    return dict(item.split("=", 1) for item in items if isinstance(item, str) and "=" in item)


def _is_pinned(reference: str) -> bool:
    if "@sha256:" in reference or reference.startswith("sha256:"):
        return True
    last = reference.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def _private(ip: str) -> bool:
    """Loopback, or an address of a private network (apiHosts: the hosts reach each other's
    data services and workers there); never 0.0.0.0 or a public address."""
    if ip in LOOPBACK:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return address.is_private and not address.is_unspecified


def check_public_ports(props: Mapping[str, Any]) -> Violations:
    name = str(props.get("name", ""))
    if PUBLIC_SERVICES.search(name):
        return []
    return [
        f"{name} publishes {port.get('external')} on {port.get('ip', '0.0.0.0')}: only the "
        "gateway and coturn may publish beyond 127.0.0.1 and private-network addresses"
        for port in props.get("ports") or []
        if not _private(str(port.get("ip", "0.0.0.0")))
    ]


def check_pinned_image(resource_type: str, props: Mapping[str, Any]) -> Violations:
    reference = props.get("name") if resource_type == REMOTE_IMAGE else props.get("image")
    if not isinstance(reference, str) or _is_pinned(reference):
        return []
    return [f"image {reference!r} is not pinned: use a version tag or a digest, never latest"]


def check_restart_and_logs(props: Mapping[str, Any]) -> Violations:
    name, problems = props.get("name"), []
    # A one-off job (the provider waits for it to exit and leaves it stopped) is not a service:
    # restarting it after a reboot would run it again.
    one_off = props.get("attach") is True and props.get("mustRun") is False
    if not one_off and props.get("restart") not in RESTART_POLICIES:
        problems.append(
            f"{name} has restart={props.get('restart')!r}: it stays down after a reboot"
        )
    if props.get("logDriver", "json-file") in ("json-file", "local") and not (
        props.get("logOpts") or {}
    ).get("max-size"):
        problems.append(f"{name} has unbounded logs: set logOpts max-size")
    return problems


def check_secret_properties(props: Mapping[str, Any], secret_outputs: list[str]) -> Violations:
    name, problems = props.get("name"), []
    sensitive = sorted(key for key in _envs(props) if SENSITIVE_ENV.search(key))
    if sensitive and "envs" not in secret_outputs:
        problems.append(f"{name} carries {', '.join(sensitive)} in envs, which are not kept secret")
    if any("PRIVATE KEY" in str(u.get("content", "")) for u in props.get("uploads") or []) and (
        "uploads" not in secret_outputs
    ):
        problems.append(f"{name} uploads a private key that is not kept secret")
    return problems


# Volumes whose loss costs data: the services' data, and the ACME account and certificates
# (Let's Encrypt's rate limits make a lost certificate slow to get back).
DATA_VOLUME_SUFFIXES = ("-data", "-issued-certificates")


def check_data_volume(props: Mapping[str, Any], protected: bool) -> Violations:
    name = str(props.get("name", ""))
    if name.endswith(DATA_VOLUME_SUFFIXES) and not protected:
        return [f"volume {name} holds data and must be protected"]
    return []


def check_workers(resources: list[tuple[str, Mapping[str, Any]]]) -> Violations:
    """Every api worker container runs 1..64 workers, and nginx's upstream lists exactly its
    ports. nginx's current config is the reload step's stdin (zeroDowntime) or the gateway's
    upload (recreate)."""
    problems: Violations = []
    configs = [props.get("stdin") for kind, props in resources if kind == COMMAND]
    configs += [
        upload.get("content")
        for kind, props in resources
        if kind == CONTAINER and str(props.get("name", "")).endswith("-gateway")
        for upload in props.get("uploads") or []
        if upload.get("file") == "/etc/nginx/dograh/nginx.conf"
    ]
    nginx = next((c for c in configs if isinstance(c, str) and "upstream dograh_api" in c), None)
    for kind, props in resources:
        name = str(props.get("name", ""))
        if kind != CONTAINER or not API_WORKERS.search(name):
            continue
        workers = _envs(props).get("FASTAPI_WORKERS")
        if workers is None:
            continue  # not known yet in a preview
        if not workers.isdigit() or not 1 <= int(workers) <= MAX_WORKERS:
            problems.append(f"{name} runs FASTAPI_WORKERS={workers}; allowed: 1 to {MAX_WORKERS}")
            continue
        if nginx is None:
            continue
        listed = UPSTREAM_SERVER.findall(nginx)
        published = [
            (str(p.get("ip")), str(int(p["external"])))
            for p in props.get("ports") or []
            if str(p.get("ip")) not in LOOPBACK and p.get("external") is not None
        ]
        if published:  # an api host's worker container: reached at its published ports
            missing = [f"{ip}:{port}" for ip, port in published if (ip, port) not in listed]
            if len(published) != int(workers) or missing:
                problems.append(
                    f"{name} runs FASTAPI_WORKERS={workers} and publishes {len(published)} "
                    f"port(s); nginx's upstream lacks {missing or 'none'}"
                )
            continue
        alias = _alias(props, name)
        ports = sorted(int(p) for host, p in listed if host == alias)
        expected = list(range(8000, 8000 + int(workers)))
        if ports != expected:
            problems.append(
                f"nginx's upstream lists {len(ports)} server(s) for {alias} but {name} runs "
                f"FASTAPI_WORKERS={workers}"
            )
    return problems


def _alias(props: Mapping[str, Any], name: str) -> str:
    for network in props.get("networksAdvanced") or []:
        for alias in network.get("aliases") or []:
            return str(alias)
    return name


def _resource_policy(
    name: str, description: str, check: Callable[[ResourceValidationArgs], Violations]
) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for problem in check(args):
            report_violation(problem, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


def _workers_policy(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for problem in check_workers([(r.resource_type, r.props) for r in args.resources]):
        report_violation(problem, None)


ALL_POLICIES = [
    StackValidationPolicy(
        name="fastapi-workers-match-nginx",
        description="FASTAPI_WORKERS is 1..64 and nginx's upstream lists exactly those ports.",
        validate=_workers_policy,
    ),
    _resource_policy(
        "only-gateway-and-turn-publish",
        "No container but the gateway and coturn publishes beyond 127.0.0.1 and private-network "
        "addresses.",
        lambda a: check_public_ports(a.props) if a.resource_type == CONTAINER else [],
    ),
    _resource_policy(
        "pinned-images",
        "No `latest` or untagged images.",
        lambda a: (
            check_pinned_image(a.resource_type, a.props)
            if a.resource_type in (CONTAINER, REMOTE_IMAGE)
            else []
        ),
    ),
    _resource_policy(
        "restart-and-bounded-logs",
        "Every service container (not a one-off job) has a restart policy; every container "
        "has bounded logs.",
        lambda a: check_restart_and_logs(a.props) if a.resource_type == CONTAINER else [],
    ),
    _resource_policy(
        "data-volumes-protected",
        "Volumes that hold data are protected from deletion and replacement.",
        lambda a: check_data_volume(a.props, a.opts.protect) if a.resource_type == VOLUME else [],
    ),
    _resource_policy(
        "secrets-stay-secret",
        "Container env and uploads that carry secrets are kept as Pulumi secrets.",
        lambda a: (
            check_secret_properties(a.props, a.opts.additional_secret_outputs)
            if a.resource_type == CONTAINER
            else []
        ),
    ),
]
