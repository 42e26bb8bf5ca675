"""Apply what the program declares (under Pulumi's mocks) to a real Docker engine.

Used only by the engine tests, because `pulumi up` cannot run here. It follows the documented
meaning of each input the program uses, and fails on any input it does not implement rather
than dropping it. For a configuration change it diffs the declared inputs the way the
docker provider does (kreuzwerker/terraform-provider-docker's container schema: every
container input forces a replacement except the few it updates in place, such as `restart`,
or only records, such as `healthcheck` and `destroy_grace_seconds`), honours
`replace_on_changes`, `delete_before_replace` and `protect`, and runs the steps in the
engine's order: replaced delete-before-replace resources are deleted dependents first, then
everything is created or updated in dependency order, independent resources in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import subprocess
import tarfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
from docker.types import LogConfig
from google.protobuf import struct_pb2
from pulumi.runtime.proto import resource_pb2

from offline.changes import CONTAINER_UPDATED_IN_PLACE, Plan, Step, plan_changes
from offline.declare import Declaration, DeclaredResource, reveal

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
PROVIDER = "pulumi:providers:docker"
COMMAND = "command:local:Command"
COMMAND_INPUTS = {"create", "stdin", "environment", "triggers"}
# Resources whose whole life is in Pulumi's state: nothing to do on the engine.
STATE_ONLY_TYPES = {
    "random:index/randomPassword:RandomPassword",
    "tls:index/privateKey:PrivateKey",
    "tls:index/selfSignedCert:SelfSignedCert",
}

CONTAINER_INPUTS = {
    "name", "image", "envs", "command", "networksAdvanced", "healthcheck", "wait", "waitTimeout",
    "ports", "volumes", "uploads", "labels", "restart", "logDriver", "logOpts",
    "destroyGraceSeconds", "mustRun",
}  # fmt: skip


_LOG = logging.getLogger(__name__)


class ApplyError(RuntimeError):
    pass


def _json_ready(value: Any) -> Any:
    """Struct values are JSON: tuples become lists, everything else stays."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    return value


def _duration_ns(text: str) -> int:
    units = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "").isdigit():
            return int(float(text[: -len(suffix)]) * units[suffix])
    raise ApplyError(f"duration {text!r} is not understood")


class EngineApplier:
    def __init__(
        self,
        client: docker.DockerClient,
        log: Callable[[str], None] = _LOG.info,
    ):
        self.client = client
        self.log = log
        # What exists, per resource, as Pulumi's state would record it: updated step by step,
        # so a failed apply leaves an accurate record of what it created.
        self.state: dict[str, DeclaredResource] = {}
        # The declaration being applied: container inputs name its RemoteImages' outputs.
        self.pending: Declaration | None = None
        self.container_ids: dict[str, str] = {}
        self.failed_containers: list[str] = []
        # Hooks as the current program run registered them (the engine calls those by name).
        self.hooks: dict[str, Callable[[bytes], Awaitable[Any]]] = {}

    # ---- planning -------------------------------------------------------------------------

    def plan(self, new: Declaration) -> Plan:
        if new.error is not None:
            raise ApplyError(f"the program refused its configuration:\n{new.error}")
        plan = plan_changes(self.state, new)
        for step in plan.steps:
            resource = self.state.get(step.urn)
            if step.op in ("replace", "delete") and resource is not None and resource.protect:
                raise ApplyError(
                    f"{step.name} is protected and would be {step.op}d (inputs {step.changed}); "
                    "nothing was changed"
                )
        return plan

    # ---- applying -------------------------------------------------------------------------

    def apply(self, new: Declaration) -> Plan:
        plan = self.plan(new)
        self._remove_failed_containers()
        self.pending = new
        self.hooks = {**self.hooks, **new.hooks}
        old = dict(self.state)
        by_urn = {r.urn: r for r in new.custom()}
        ops = {step.urn: step for step in plan.steps}

        doomed = [
            urn
            for urn, step in ops.items()
            if step.op == "delete" or (step.op == "replace" and old[urn].delete_before_replace)
        ]
        for urn in self._topological(doomed, old, reverse=True):
            self._delete(old[urn])

        ids_before_creates = dict(self.container_ids)
        todo = [urn for urn in by_urn if ops[urn].op in ("create", "replace", "update")]
        self._run_in_dependency_order(todo, by_urn, lambda r: self._create_or_update(r, ops[r.urn]))

        # Create-before-delete replacements go last (none of the program's containers).
        for urn, step in ops.items():
            if step.op == "replace" and not old[urn].delete_before_replace:
                self._delete(old[urn], container_id=ids_before_creates.get(urn))
        return plan

    def _remove_failed_containers(self) -> None:
        while self.failed_containers:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(self.failed_containers.pop()).remove(force=True)

    def destroy(self) -> None:
        """Remove everything applied, protected volumes included (test cleanup)."""
        self._remove_failed_containers()
        old = dict(self.state)
        for urn in self._topological(list(old), old, reverse=True):
            self._delete(old[urn])

    def _create_or_update(self, resource: DeclaredResource, step: Step) -> None:
        if resource.type == COMMAND:
            self.log(f"{step.op:7} {step.name} (runs its create command)")
            self._run_command(resource)
            self.state[resource.urn] = resource
            return
        if step.op == "update":
            if resource.type == CONTAINER and set(step.changed) & CONTAINER_UPDATED_IN_PLACE:
                inputs = reveal(resource.inputs)
                self.client.api.update_container(
                    self.container_ids[resource.urn],
                    restart_policy={"Name": inputs.get("restart", "no")},
                )
            self.log(f"update  {step.name} {step.changed}")
            self.state[resource.urn] = resource
            return
        self.log(f"{step.op:7} {step.name}")
        if resource.type == CONTAINER:
            self._create_container(resource)
        elif resource.type == NETWORK:
            inputs = reveal(resource.inputs)
            self._only(resource, {"name", "driver"})
            self.client.networks.create(inputs["name"], driver=inputs.get("driver", "bridge"))
        elif resource.type == VOLUME:
            self._only(resource, {"name"})
            self.client.volumes.create(name=reveal(resource.inputs)["name"])
        elif resource.type == REMOTE_IMAGE:
            self._only(resource, {"name", "keepLocally"})
            name = reveal(resource.inputs)["name"]
            try:
                self.client.images.get(name)
            except docker.errors.ImageNotFound:
                raise ApplyError(
                    f"image {name} is not on the engine and no registry is reachable"
                ) from None
        elif resource.type in STATE_ONLY_TYPES or resource.type == PROVIDER:
            if resource.type == PROVIDER and reveal(resource.inputs).get("host"):
                raise ApplyError("the engine tests use the local engine; docker:host must be unset")
        else:
            raise ApplyError(f"the applier does not implement {resource.type} ({resource.name})")
        self.state[resource.urn] = resource

    def _run_command(self, resource: DeclaredResource) -> None:
        """pulumi-command's local.Command: `create` run by a shell on this machine, with the
        declared environment and stdin."""
        self._only(resource, COMMAND_INPUTS)
        inputs = reveal(resource.inputs)
        completed = subprocess.run(
            ["/bin/sh", "-c", inputs["create"]],
            input=inputs.get("stdin"),
            env={**os.environ, **(inputs.get("environment") or {})},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if completed.returncode != 0:
            raise ApplyError(f"{resource.name} failed: {completed.stderr.strip()}")

    def _run_before_delete_hooks(self, resource: DeclaredResource) -> None:
        """Invoke the resource's before-delete hooks the way the engine does: the SDK's own
        callback with a serialized ResourceHookRequest carrying the old inputs and outputs."""
        for hook_name in resource.before_delete_hooks:
            callback = self.hooks.get(hook_name)
            if callback is None:
                raise ApplyError(f"{resource.name}: hook {hook_name} is not registered")
            old_inputs, old_outputs = struct_pb2.Struct(), struct_pb2.Struct()
            old_inputs.update(_json_ready(reveal(resource.inputs)))
            old_outputs.update(_json_ready(reveal(resource.outputs)))
            request = resource_pb2.ResourceHookRequest(
                urn=resource.urn,
                id=resource.id,
                name=resource.name,
                type=resource.type,
                old_inputs=old_inputs,
                old_outputs=old_outputs,
            )
            self.log(f"hook    {hook_name} before deleting {resource.name}")
            response = asyncio.run(callback(request.SerializeToString()))
            if response.error:
                raise ApplyError(f"hook {hook_name} failed: {response.error}")

    def _delete(self, resource: DeclaredResource, container_id: str | None = None) -> None:
        """Delete what `resource` made; `container_id` names an old container replaced
        create-before-delete (the new one already holds the resource's place in state)."""
        self._run_before_delete_hooks(resource)
        self.log(f"delete  {resource.name}")
        inputs = reveal(resource.inputs)
        if container_id is None:
            self.state.pop(resource.urn, None)
        if resource.type == CONTAINER:
            if container_id is None:
                container_id = self.container_ids.pop(resource.urn, None)
            if container_id is None:
                return
            try:
                container = self.client.containers.get(container_id)
            except docker.errors.NotFound:
                return
            grace = inputs.get("destroyGraceSeconds")
            if grace:
                container.stop(timeout=int(grace))  # SIGTERM (or the image's STOPSIGNAL), then KILL
            container.remove(force=True)  # without a grace period the provider kills at once
        elif resource.type == NETWORK:
            for network in self.client.networks.list(names=[inputs["name"]]):
                network.remove()
        elif resource.type == VOLUME:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(inputs["name"]).remove()
        elif resource.type == REMOTE_IMAGE and not inputs.get("keepLocally"):
            self.client.images.remove(inputs["name"])

    def _create_container(self, resource: DeclaredResource) -> None:
        self._only(resource, CONTAINER_INPUTS)
        inputs = reveal(resource.inputs)
        image = self._image_reference(inputs["image"])
        networks = inputs.get("networksAdvanced") or []
        for network in networks:
            unknown = set(network) - {"name", "aliases"}
            if unknown:
                raise ApplyError(
                    f"{resource.name}: networksAdvanced.{sorted(unknown)} not implemented"
                )
        ports: dict[str, tuple[str, int]] = {}
        for port in inputs.get("ports") or []:
            ports[f"{int(port['internal'])}/{port.get('protocol', 'tcp')}"] = (
                port.get("ip", "0.0.0.0"),
                int(port["external"]),
            )
        binds = {
            volume["volumeName"]: {
                "bind": volume["containerPath"],
                "mode": "ro" if volume.get("readOnly") else "rw",
            }
            for volume in inputs.get("volumes") or []
        }
        healthcheck = None
        if inputs.get("healthcheck"):
            check = inputs["healthcheck"]
            healthcheck = {
                "test": check["tests"],
                "interval": _duration_ns(check.get("interval", "30s")),
                "timeout": _duration_ns(check.get("timeout", "30s")),
                "retries": int(check.get("retries", 3)),
                "start_period": _duration_ns(check.get("startPeriod", "0s")),
            }
        host_config = self.client.api.create_host_config(
            port_bindings=ports or None,
            binds=binds or None,
            restart_policy={"Name": inputs.get("restart", "no")},
            log_config=LogConfig(
                type=inputs.get("logDriver", "json-file"), config=inputs.get("logOpts") or {}
            ),
        )
        networking_config = None
        if networks:
            first = networks[0]
            networking_config = self.client.api.create_networking_config(
                {
                    first["name"]: self.client.api.create_endpoint_config(
                        aliases=first.get("aliases")
                    )
                }
            )
        created = self.client.api.create_container(
            image=image,
            name=inputs["name"],
            command=inputs.get("command"),
            environment=inputs.get("envs"),
            labels={item["label"]: item["value"] for item in inputs.get("labels") or []},
            ports=[tuple(key.split("/")) for key in ports] or None,
            volumes=[bind["bind"] for bind in binds.values()] or None,
            healthcheck=healthcheck,
            host_config=host_config,
            networking_config=networking_config,
        )
        container_id = created["Id"]
        for network in networks[1:]:
            self.client.api.connect_container_to_network(
                container_id, network["name"], aliases=network.get("aliases")
            )
        if inputs.get("uploads"):
            self.client.api.put_archive(
                container_id, "/", self._upload_archive(resource, inputs["uploads"])
            )
        self.client.api.start(container_id)
        try:
            if inputs.get("wait"):
                self._wait_healthy(resource, container_id, int(inputs.get("waitTimeout", 60)))
            elif inputs.get("mustRun", True):
                self._wait_running(resource, container_id)
        except ApplyError:
            # Like a failed create in Pulumi: state keeps what it had; the half-made container
            # is cleaned up by the next apply.
            self.failed_containers.append(container_id)
            raise
        self.container_ids[resource.urn] = container_id

    def _image_reference(self, image_input: str) -> str:
        """The program passes RemoteImage.image_id; find which declared image that is."""
        assert self.pending is not None
        for image in self.pending.custom(REMOTE_IMAGE):
            if reveal(image.outputs).get("image_id") == image_input:
                return reveal(image.inputs)["name"]
        return image_input

    @staticmethod
    def _upload_archive(resource: DeclaredResource, uploads: list[dict[str, Any]]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for upload in uploads:
                unknown = set(upload) - {"file", "content", "executable"}
                if unknown:
                    raise ApplyError(f"{resource.name}: uploads.{sorted(unknown)} not implemented")
                data = upload["content"].encode()
                info = tarfile.TarInfo(upload["file"].lstrip("/"))
                info.size = len(data)
                info.mode = 0o755 if upload.get("executable") else 0o644
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def _wait_healthy(self, resource: DeclaredResource, container_id: str, timeout: int) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.client.api.inspect_container(container_id)["State"]
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return
            if not state["Running"] and not state.get("Restarting"):
                break
            time.sleep(0.5)
        logs = self.client.api.logs(container_id, tail=30).decode(errors="replace")
        raise ApplyError(f"{resource.name} did not become healthy within {timeout}s:\n{logs}")

    def _wait_running(self, resource: DeclaredResource, container_id: str) -> None:
        time.sleep(1)
        state = self.client.api.inspect_container(container_id)["State"]
        if not state["Running"]:
            logs = self.client.api.logs(container_id, tail=30).decode(errors="replace")
            raise ApplyError(f"{resource.name} is not running:\n{logs}")

    @staticmethod
    def _only(resource: DeclaredResource, implemented: set[str]) -> None:
        unknown = set(resource.inputs) - implemented - {"__defaults"}
        if unknown:
            raise ApplyError(
                f"{resource.name}: inputs {sorted(unknown)} are not implemented by the applier"
            )

    # ---- ordering -------------------------------------------------------------------------

    @staticmethod
    def _dependencies(resource: DeclaredResource, among: dict[str, DeclaredResource]) -> set[str]:
        return {urn for urn in resource.dependencies if urn in among}

    def _topological(
        self, urns: list[str], among: dict[str, DeclaredResource], reverse: bool
    ) -> list[str]:
        chosen, ordered, seen = set(urns), [], set()

        def visit(urn: str) -> None:
            if urn in seen:
                return
            seen.add(urn)
            for dependency in self._dependencies(among[urn], among):
                if dependency in chosen:
                    visit(dependency)
            ordered.append(urn)

        for urn in urns:
            visit(urn)
        return ordered[::-1] if reverse else ordered

    def _run_in_dependency_order(
        self,
        urns: list[str],
        by_urn: dict[str, DeclaredResource],
        action: Callable[[DeclaredResource], None],
    ) -> None:
        remaining = set(urns)
        with ThreadPoolExecutor(max_workers=8) as pool:
            while remaining:
                ready = [
                    urn for urn in remaining
                    if not (self._dependencies(by_urn[urn], by_urn) & remaining)
                ]  # fmt: skip
                if not ready:
                    raise ApplyError(f"dependency cycle among {sorted(remaining)}")
                for future in [pool.submit(action, by_urn[urn]) for urn in ready]:
                    future.result()
                remaining -= set(ready)
