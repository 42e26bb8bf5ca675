"""What a stack declares, and what a change would replace, with no backend, credentials or
Docker host: the same program under Pulumi's mocks.

    .venv/bin/python -m offline.preview --stack dev
    .venv/bin/python -m offline.preview --stack dev --set fastapiWorkers=8
    .venv/bin/python -m offline.preview --stack dev --from fastapiWorkers=4 --set fastapiWorkers=8
    .venv/bin/python -m offline.preview --stack dev --against stacks/Pulumi.prod.yaml

Not a substitute for `pulumi preview`: there is no state here, so it compares two runs of the
program rather than the program with what is deployed, and secrets stored encrypted in a stack
file are replaced by placeholders.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from components.gateway import NGINX_CONFIG_PATH
from components.rollout import DOCKER_HOST_LABEL
from offline.changes import plan_changes, recorded
from offline.declare import (
    COMMAND,
    CONTAINER,
    PROJECT_DIR,
    Declaration,
    DeclaredResource,
    declare,
    reveal,
    stack_config,
)

SENSITIVE_ENV = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|AUTH|DATABASE_URL|REDIS_URL")
DISCLAIMER = (
    "Offline, under Pulumi's mocks: what the program declares, not what is deployed. "
    "Not a substitute for `pulumi preview`."
)


def _stack_file(stack: str) -> Path:
    return PROJECT_DIR / "stacks" / f"Pulumi.{stack}.yaml"


PLACEHOLDER = "-----BEGIN PLACEHOLDER-----\noffline\n"


def _placeholder_secrets(path: Path, config: dict[str, str]) -> dict[str, str]:
    """Placeholders for secrets that cannot be read here: those a stack file holds encrypted,
    and those its settings require but which live only in someone's `pulumi config`."""
    entries = (yaml.safe_load(path.read_text()) or {}).get("config") or {} if path.exists() else {}
    keys = {
        key.split(":", 1)[-1]
        for key, value in entries.items()
        if isinstance(value, dict) and "secure" in value
    }
    if config.get("dograh:tlsMode") == "provided":
        keys |= {"tlsCertificate", "tlsPrivateKey"}
    if config.get("dograh:s3Bucket"):
        keys |= {"s3AccessKeyId", "s3SecretAccessKey"}
    return dict.fromkeys(sorted(keys), PLACEHOLDER)


def _declare(stack: str, stack_file: Path, overrides: dict[str, str]) -> Declaration:
    config = stack_config(stack, overrides, stack_file=stack_file)
    return declare(stack, config=config, secrets=_placeholder_secrets(stack_file, config))


def _images(declaration: Declaration) -> dict[str, str]:
    return {
        reveal(r.outputs).get("image_id"): reveal(r.inputs)["name"]
        for r in declaration.custom("docker:index/remoteImage:RemoteImage")
    }


def _shown_env(item: str) -> str:
    key, _, value = item.partition("=")
    return f"{key}=[secret]" if SENSITIVE_ENV.search(key) else f"{key}={value}"


def _ports(inputs: dict[str, Any]) -> str:
    ports = inputs.get("ports") or []
    if not ports:
        return "none"
    udp_relays = [p for p in ports if p.get("protocol") == "udp" and int(p["internal"]) >= 49152]
    listed = [
        f"{p.get('ip', '0.0.0.0')}:{int(p['external'])}->{int(p['internal'])}"
        f"/{p.get('protocol', 'tcp')}"
        for p in ports
        if p not in udp_relays
    ]
    if udp_relays:
        low, high = (
            int(min(p["internal"] for p in udp_relays)),
            int(max(p["internal"] for p in udp_relays)),
        )
        listed.append(f"{udp_relays[0].get('ip', '0.0.0.0')}:{low}-{high}/udp")
    return ", ".join(listed)


def nginx_config(declaration: Declaration) -> str | None:
    """nginx's current config: the reload step's stdin, else the gateway's upload."""
    for command in declaration.custom(COMMAND):
        if command.name.endswith("-gateway-reload"):
            return str(reveal(command.inputs).get("stdin"))
    for container in declaration.custom(CONTAINER):
        for upload in reveal(container.inputs).get("uploads") or []:
            if upload["file"] == NGINX_CONFIG_PATH:
                return str(upload["content"])
    return None


def describe(declaration: Declaration) -> str:
    images = _images(declaration)
    lines = ["containers:"]
    for container in declaration.custom(CONTAINER):
        inputs = reveal(container.inputs)
        lines.append(f"  {inputs['name']}")
        lines.append(f"    image  {images.get(inputs['image'], inputs['image'])}")
        lines.append(f"    ports  {_ports(inputs)}")
        for item in inputs.get("envs") or []:
            lines.append(f"    env    {_shown_env(item)}")
    config = nginx_config(declaration)
    if config is not None:
        lines += [
            "",
            f"nginx.conf (rendered, {NGINX_CONFIG_PATH} in the gateway):",
            config.rstrip(),
        ]
    return "\n".join(lines)


def _container_name(resource: DeclaredResource) -> str:
    """Its Docker name, and for an api host's container the host it runs on."""
    inputs = reveal(resource.inputs)
    labels = {item["label"]: item["value"] for item in inputs.get("labels") or []}
    host = labels.get(DOCKER_HOST_LABEL)
    return f"{inputs.get('name')} on {host}" if host else str(inputs.get("name"))


def describe_change(before: Declaration, after: Declaration) -> str:
    plan = plan_changes(recorded(before), after)
    old = {r.urn: r for r in before.custom()}
    new = {r.urn: r for r in after.custom()}
    gateway = next(
        (
            _container_name(r)
            for r in after.custom(CONTAINER)
            if _container_name(r).endswith("-gateway")
        ),
        "the gateway",
    )
    lines = ["change:"]
    for step in plan.steps:
        resource = new.get(step.urn) or old[step.urn]
        if step.op == "same":
            continue
        why = f" ({step.reason})" if step.reason else ""
        if resource.type == CONTAINER:
            if step.op == "replace":
                first = "stopped first" if step.delete_first else "new one started first"
                lines.append(
                    f"  replace {_container_name(old[step.urn])} -> {_container_name(resource)}"
                    f" ({first}; changed: {', '.join(step.changed)}){why}"
                )
            elif step.op == "delete" and resource.before_delete_hooks:
                hooks = ", ".join(resource.before_delete_hooks)
                lines.append(
                    f"  delete {_container_name(resource)} at the end, after its hook {hooks}"
                )
            else:
                detail = f" ({', '.join(step.changed)})" if step.changed else why
                lines.append(f"  {step.op} {_container_name(resource)}{detail}")
        elif resource.type == COMMAND:
            lines.append(f"  reload nginx in {gateway} (runs {resource.name}){why}")
        else:
            lines.append(f"  {step.op} {resource.type.split(':')[-1]} {resource.name}{why}")
    if len(lines) == 1:
        lines.append("  nothing")
    before_config, after_config = nginx_config(before), nginx_config(after)
    if before_config and after_config and before_config != after_config:
        lines += ["", "nginx.conf:"]
        lines += [
            line.rstrip("\n")
            for line in difflib.unified_diff(
                before_config.splitlines(),
                after_config.splitlines(),
                "before",
                "after",
                lineterm="",
                n=1,
            )
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stack", default="dev", help="stack name (reads stacks/Pulumi.<stack>.yaml)"
    )
    parser.add_argument(
        "--from",
        dest="start",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the starting point (default: the stack file as it is)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a changed setting"
    )
    parser.add_argument("--against", type=Path, help="another stack file to compare with")
    args = parser.parse_args(argv)
    start: dict[str, str] = {}
    overrides: dict[str, str] = {}
    for items, target in ((args.start, start), (args.set, overrides)):
        for item in items:
            key, separator, value = item.partition("=")
            if not separator:
                parser.error(f"--from and --set take KEY=VALUE, got {item!r}")
            target[key] = value
    print(DISCLAIMER)
    base_file = _stack_file(args.stack)
    base = _declare(args.stack, base_file, start)
    if base.error:
        print(base.error, file=sys.stderr)
        return 1
    if not overrides and args.against is None:
        print(f"\nstack {args.stack} ({base_file.relative_to(PROJECT_DIR)})\n")
        print(describe(base))
        return 0
    changed = _declare(args.stack, args.against or base_file, {**start, **overrides})
    if changed.error:
        print(changed.error, file=sys.stderr)
        return 1
    what = ", ".join(f"{k}={v}" for k, v in overrides.items()) or str(args.against)
    print(f"\nstack {args.stack}, with {what}\n")
    print(describe_change(base, changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
