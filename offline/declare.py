"""Run the real program (`__main__.py`) under Pulumi's mocks and record what it declares.

This is how the tests (and, later, the offline preview) see the program without a Pulumi CLI,
a backend or a Docker host: the same `__main__.py` a user runs with `pulumi up`, the same
Pulumi.yaml defaults and stacks/Pulumi.<stack>.yaml config, and Pulumi's own mock monitor.
The monitor is extended only to keep each registration's options (parent, provider, protect,
delete-before-replace, replace-on-changes, dependencies), which the stock one discards.

The mocks behave like a provider that keeps state: a resource's id and computed outputs are a
function of its type, name and inputs. So a run with different inputs yields a different id
(as a replacement would), and a run with the same inputs yields the same id and the same
generated secret (as state would).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import runpy
import subprocess
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = "dograh"
# The resource types the tools and tests look at, by their Pulumi type tokens.
CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
DOCKER_PROVIDER = "pulumi:providers:docker"
COMMAND = "command:local:Command"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"


@dataclass(frozen=True)
class Secret:
    """A value the program marked secret (state keeps it encrypted)."""

    value: Any


@dataclass
class DeclaredResource:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    provider: str
    inputs: dict[str, Any]
    # What the (mock) provider returned: the inputs plus computed outputs such as image_id.
    outputs: dict[str, Any]
    id: str
    protect: bool
    delete_before_replace: bool
    replace_on_changes: list[str]
    ignore_changes: list[str]
    additional_secret_outputs: list[str]
    dependencies: list[str]
    # Names of the resource hooks bound to run before it is deleted (also on replacement).
    before_delete_hooks: list[str] = field(default_factory=list)
    # Input key -> URNs of the resources its value came from (what the engine's dependent
    # replacement follows).
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    # Whether the program set delete_before_replace itself (it then wins over the provider).
    delete_before_replace_defined: bool = False
    # custom_timeouts, as given: {"create": "1320s", ...}
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    # Set by an applier, not by the program: the error a create left in state (Pulumi keeps
    # a resource whose create failed after it had an id, with its init errors).
    init_error: str | None = None


@dataclass
class Declaration:
    resources: list[DeclaredResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    # Resource hooks by name: the SDK's own callback, which takes a serialized
    # ResourceHookRequest, as the Pulumi engine would invoke it.
    hooks: dict[str, Callable[[bytes], Awaitable[Any]]] = field(default_factory=dict)

    def custom(self, type_: str | None = None) -> list[DeclaredResource]:
        return [r for r in self.resources if r.custom and (type_ is None or r.type == type_)]

    def by_name(self, name: str) -> DeclaredResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def containers(self) -> dict[str, DeclaredResource]:
        """Declared containers by their Docker name."""
        return {r.inputs["name"]: r for r in self.custom(CONTAINER)}


def _map_secrets(
    value: Any,
    is_secret: Callable[[Any], bool],
    unwrap: Callable[[Any], Any],
    wrap: Callable[[Any], Any],
) -> Any:
    """The one walk over nested values: each secret (as `is_secret` knows it) is unwrapped,
    walked, and wrapped again with `wrap`."""
    if is_secret(value):
        return wrap(_map_secrets(unwrap(value), is_secret, unwrap, wrap))
    if isinstance(value, dict):
        return {key: _map_secrets(item, is_secret, unwrap, wrap) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_secrets(item, is_secret, unwrap, wrap) for item in value]
    return value


def _is_marked(value: Any) -> bool:
    return isinstance(value, Secret)


def reveal(value: Any) -> Any:
    """The value with secret markers removed (for tests that check wiring)."""
    return _map_secrets(value, _is_marked, lambda secret: secret.value, lambda inner: inner)


def has_secret(value: Any) -> bool:
    found: list[bool] = []
    _map_secrets(value, _is_marked, lambda secret: secret.value, found.append)
    return bool(found)


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def stack_config(
    stack: str, overrides: dict[str, str] | None = None, stack_file: Path | None = None
) -> dict[str, str]:
    """Config as the Pulumi CLI hands it to the program: project defaults, then the stack file,
    then overrides (`key` means `dograh:key`). Values are strings, as `pulumi config` stores them.
    """

    def as_config_string(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        return str(value)

    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    config = {
        f"{PROJECT}:{key}": as_config_string(spec["default"])
        for key, spec in (project.get("config") or {}).items()
        if "default" in spec
    }
    if stack_file is None:
        stack_file = PROJECT_DIR / project.get("stackConfigDir", ".") / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        for key, value in (
            (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
        ).items():
            if isinstance(value, dict) and "secure" in value:
                continue  # encrypted; tests pass secrets explicitly
            config[key] = as_config_string(value)
    for key, value in (overrides or {}).items():
        config[key if ":" in key else f"{PROJECT}:{key}"] = value
    return config


def declare(
    stack: str = "dev",
    overrides: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    config: dict[str, str] | None = None,
) -> Declaration:
    """Run `__main__.py` for `stack` under mocks; return what it declared.

    `overrides` are plain settings, `secrets` are settings as if set with
    `pulumi config set --secret`. `config`, when given, replaces the stack files entirely.
    The run happens on a fresh thread, so no Pulumi runtime state leaks between runs.
    """
    full_config = dict(config) if config is not None else stack_config(stack, overrides)
    secret_keys = []
    for key, value in (secrets or {}).items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        full_config[full_key] = value
        secret_keys.append(full_key)
    result = Declaration()
    failures: list[BaseException] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            _declare_in_fresh_context(stack, full_config, secret_keys, result)
        except BaseException as failure:  # re-raised on the caller's thread below
            failures.append(failure)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"declare-{stack}")
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
    return result


def _identity(resource_type: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs a resource's id depends on: a container updated in place (or whose change
    only lives in state) keeps its id, as it does under the docker provider."""
    from offline.changes import CONTAINER_STATE_ONLY, CONTAINER_UPDATED_IN_PLACE

    if resource_type != CONTAINER:
        return inputs
    kept_on_update = (CONTAINER_STATE_ONLY | CONTAINER_UPDATED_IN_PLACE) - {"healthcheck"}
    return {key: value for key, value in inputs.items() if key not in kept_on_update}


class _StatefulMocks:
    """Ids and computed outputs derived from inputs, as a provider with state would give."""

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        key = _digest(args.typ, args.name, _plain(_identity(args.typ, inputs)))
        state = dict(inputs)
        if args.typ == RANDOM_PASSWORD:
            # Same name and inputs -> same value: what state gives on every later `pulumi up`.
            state["result"] = _digest(args.name, _plain(inputs))[: int(inputs.get("length", 40))]
        elif args.typ == REMOTE_IMAGE:
            state["image_id"] = f"sha256:{_digest(inputs.get('name'))}"
            state["repo_digest"] = f"{inputs.get('name')}@sha256:{_digest(inputs.get('name'))}"
        elif args.typ == "tls:index/privateKey:PrivateKey":
            state["private_key_pem"] = _real_private_key(key)
        elif args.typ == "tls:index/selfSignedCert:SelfSignedCert":
            state["cert_pem"] = _real_self_signed_cert(key, _plain(inputs))
        elif args.typ == VOLUME and "name" not in inputs:
            state["name"] = f"{args.name}-{key[:8]}"
        return f"{args.name}-{key[:12]}", state

    def call(self, args: Any) -> tuple[dict[str, Any], None]:
        return {}, None


# Real keys and certificates, as pulumi-tls makes them, so servers can load what the program
# uploads. Cached per inputs: the same inputs give the same PEM within a process, like state.
_PEM_CACHE: dict[str, str] = {}


def _real_private_key(cache_key: str) -> str:
    if cache_key not in _PEM_CACHE:
        _PEM_CACHE[cache_key] = subprocess.run(
            ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return _PEM_CACHE[cache_key]


def _real_self_signed_cert(cache_key: str, inputs: dict[str, Any]) -> str:
    if cache_key not in _PEM_CACHE:
        names = [f"DNS:{n}" for n in inputs.get("dnsNames") or []] + [
            f"IP:{ip}" for ip in inputs.get("ipAddresses") or []
        ]
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as key_file:
            key_file.write(inputs["privateKeyPem"])
            key_file.flush()
            command = [
                "openssl",
                "req",
                "-x509",
                "-key",
                key_file.name,
                "-subj",
                f"/CN={inputs['subject']['commonName']}",
                "-days",
                str(max(1, int(inputs["validityPeriodHours"]) // 24)),
            ]
            if names:
                command += ["-addext", f"subjectAltName={','.join(names)}"]
            _PEM_CACHE[cache_key] = subprocess.run(
                command, check=True, capture_output=True, text=True
            ).stdout
    return _PEM_CACHE[cache_key]


def _plain(value: Any) -> Any:
    from pulumi.runtime import rpc

    return _map_secrets(value, rpc.is_rpc_secret, rpc.unwrap_rpc_secret, lambda inner: inner)


def _marked(value: Any) -> Any:
    from pulumi.runtime import rpc

    return _map_secrets(value, rpc.is_rpc_secret, rpc.unwrap_rpc_secret, Secret)


class _WarningCollector(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def _declare_in_fresh_context(
    stack: str, config: dict[str, str], secret_keys: list[str], result: Declaration
) -> None:
    """Run the program once under Pulumi's mocks, recording into `result`.

    The one place that uses Pulumi SDK internals, checked against pulumi 3.272.0
    (requirements.txt): `run_pulumi_func` and `_sync_await` run the program as the CLI's
    language host would; `SETTINGS.callbacks` holds the resource hooks' callbacks;
    `get_root_resource` gives the stack's exports.
    """
    import pulumi
    from pulumi.runtime import mocks
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    def hook_callback(token: str) -> Callable[[bytes], Awaitable[Any]]:
        return pulumi.runtime.settings.SETTINGS.callbacks._callbacks[token]

    logger = logging.getLogger(f"dograh.declare.{id(result)}")
    logger.propagate = False
    logger.addHandler(_WarningCollector(result.warnings))
    pulumi.runtime.set_all_config(config, secret_keys)
    provider = _StatefulMocks()
    mocks.set_mocks(
        provider,  # type: ignore[arg-type]
        project=PROJECT,
        stack=stack,
        preview=False,
        logger=logger,
        monitor=_recording_monitor(provider, result, hook_callback),
    )

    def program() -> None:
        runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")

    try:
        _sync_await(run_pulumi_func(program))
        root = pulumi.runtime.settings.get_root_resource()
        for name, value in (getattr(root, "outputs", {}) or {}).items():
            output = pulumi.Output.from_input(value)
            resolved = _sync_await(output.future())
            result.outputs[name] = Secret(resolved) if _sync_await(output.is_secret()) else resolved
    except pulumi.RunError as error:
        result.error = str(error)


def _recording_monitor(
    provider: _StatefulMocks,
    result: Declaration,
    hook_callback: Callable[[str], Callable[[bytes], Awaitable[Any]]],
) -> Any:
    """Pulumi's mock monitor, keeping each registration's options and each hook's callback."""
    from pulumi.runtime import mocks, rpc

    class RecordingMonitor(mocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                declared = _declared(request, response, rpc)
                # The engine refuses a second registration of one URN (step_generator.go,
                # diag.GetDuplicateResourceURNError in pkg/diag/errors.go): so does this
                # record; Pulumi's mocks alone accept it.
                if any(earlier.urn == declared.urn for earlier in result.resources):
                    raise ValueError(
                        f"Duplicate resource URN '{declared.urn}'; try giving it a unique name"
                    )
                result.resources.append(declared)
            return response

        def RegisterResourceHook(self, request: Any) -> Any:
            result.hooks[request.name] = hook_callback(request.callback.token)
            return super().RegisterResourceHook(request)

    return RecordingMonitor(provider)  # type: ignore[arg-type]


def _declared(request: Any, response: Any, rpc: Any) -> DeclaredResource:
    inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
    return DeclaredResource(
        urn=response.urn,
        type=request.type,
        name=request.name,
        custom=bool(request.custom),
        parent=request.parent,
        provider=request.provider,
        inputs=_marked(inputs),
        outputs=_marked(rpc.deserialize_properties(response.object)),
        id=response.id,
        protect=bool(request.protect),
        delete_before_replace=bool(request.deleteBeforeReplace),
        replace_on_changes=list(request.replaceOnChanges),
        ignore_changes=list(request.ignoreChanges),
        additional_secret_outputs=list(request.additionalSecretOutputs),
        dependencies=list(request.dependencies),
        before_delete_hooks=list(request.hooks.before_delete),
        property_dependencies={
            key: list(deps.urns) for key, deps in request.propertyDependencies.items()
        },
        delete_before_replace_defined=bool(request.deleteBeforeReplaceDefined),
        custom_timeouts={
            kind: value
            for kind in ("create", "update", "delete")
            if (value := getattr(request.customTimeouts, kind))
        },
    )
