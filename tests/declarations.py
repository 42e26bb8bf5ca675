"""What a deployed stack would notice of the program: every resource's URN, type, parent and
options, and its inputs, for a few representative stacks. Kept as golden files
(tests/golden/declaration-*.json) so a change that should leave deployed stacks alone (a
refactor) can prove that `pulumi preview` would show nothing: tests/test_declaration_golden.py.

Regenerate after an intended change: `.venv/bin/python -m tests.declarations --write`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from offline.declare import Declaration, Secret, declare

GOLDEN_DIR = Path(__file__).parent / "golden"
# PEM blocks are real keys made afresh by the mocks (as pulumi-tls would, once): not compared.
_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", re.S)
PROVIDED_TLS = {
    "tlsCertificate": "-----BEGIN CERTIFICATE-----\nprovided\n-----END CERTIFICATE-----\n",
    "tlsPrivateKey": "-----BEGIN PRIVATE KEY-----\nprovided\n-----END PRIVATE KEY-----\n",
}
# name -> (stack, plain overrides, secrets)
STACKS: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "dev": ("dev", {}, {}),
    "dev-recreate-1.44": (
        "dev",
        {"rolloutStrategy": "recreate", "apiImage": "dograhai/dograh-api:1.44.0"},
        {},
    ),
    "prod": ("prod", {}, PROVIDED_TLS),
    "dev-external": (
        "dev",
        {"s3Bucket": "recordings", "s3Region": "eu-west-1"},
        {
            "externalDatabaseUrl": "postgresql+asyncpg://u:p@db:5432/dograh",
            "externalRedisUrl": "rediss://:p@cache:6380",
            "s3AccessKeyId": "AKIAEXAMPLE",
            "s3SecretAccessKey": "example",
        },
    ),
}


def _comparable(value: Any, ids: dict[str, str]) -> Any:
    """JSON-ready, with PEM blocks and the mocks' resource ids (digests of inputs, some of
    which hold PEM) named rather than spelt out."""
    if isinstance(value, Secret):
        return {"<secret>": _comparable(value.value, ids)}
    if isinstance(value, dict):
        return {key: _comparable(item, ids) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [_comparable(item, ids) for item in value]
    if isinstance(value, str):
        value = _PEM.sub(lambda match: f"<{match.group(1)} PEM>", value)
        for resource_id, name in ids.items():
            value = value.replace(resource_id, f"<id of {name}>")
    return value


def snapshot(declaration: Declaration) -> dict[str, Any]:
    assert declaration.error is None, declaration.error
    ids = {r.id: r.name for r in declaration.resources if r.id}
    resources = {}
    for r in declaration.resources:
        resources[r.urn] = _comparable(
            {
                "type": r.type,
                "parent": r.parent,
                "provider": r.provider.rsplit("::", 1)[0] if r.provider else "",
                "inputs": r.inputs,
                "protect": r.protect,
                "deleteBeforeReplace": r.delete_before_replace,
                "replaceOnChanges": sorted(r.replace_on_changes),
                "ignoreChanges": sorted(r.ignore_changes),
                "additionalSecretOutputs": sorted(r.additional_secret_outputs),
                "dependencies": sorted(r.dependencies),
                "beforeDeleteHooks": r.before_delete_hooks,
                "customTimeouts": r.custom_timeouts,
            },
            ids,
        )
    outputs = _comparable(declaration.outputs, ids)
    return {"resources": dict(sorted(resources.items())), "outputs": outputs}


def current(name: str) -> dict[str, Any]:
    stack, overrides, secrets = STACKS[name]
    return snapshot(declare(stack, overrides, secrets=secrets))


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"declaration-{name}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the golden files")
    args = parser.parse_args()
    for name in STACKS:
        text = json.dumps(current(name), indent=1, sort_keys=True) + "\n"
        if args.write:
            golden_path(name).write_text(text)
        print(f"{name}: {len(json.loads(text)['resources'])} resources")


if __name__ == "__main__":
    main()
