"""Apply what the program declares (under Pulumi's mocks) to a real Docker engine.

Used only by the engine tests, because `pulumi up` cannot run here. It executes the plan of
offline/changes.py (the engine's and the providers' rules, each cited there) and adds what
only a real engine shows, each in one small named place with the upstream source it follows:
- state is what the provider's Read of the real container returns (`_read_back`);
- a create that fails its health wait stays in state with an init error, and the old half of
  a create-before-delete replacement stays pending deletion (`_record_failed_create`);
- a delete calls the resource's hooks by name, and fails for a hook this run did not register
  (`_run_before_delete_hooks`); `destroy` registers none unless the program runs
  (`pulumi destroy --run-program`);
- a wait the provider's timeouts would cut is cut (`_create_deadline`).
It fails on any input it does not implement rather than dropping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
import requests
from docker.types import LogConfig
from google.protobuf import struct_pb2
from pulumi.runtime.proto import resource_pb2

from components.container import go_duration_string
from offline.changes import (
    CONTAINER_UPDATED_IN_PLACE,
    Plan,
    Step,
    inputs_after_ignore_changes,
    parse_duration_ns,
    plan_changes,
    recorded_state,
    timeout_seconds,
)
from offline.declare import (
    COMMAND,
    CONTAINER,
    DOCKER_PROVIDER,
    NETWORK,
    REMOTE_IMAGE,
    VOLUME,
    Declaration,
    DeclaredResource,
    reveal,
)

COMMAND_INPUTS = {"create", "stdin", "environment", "triggers"}
# Resources whose whole life is in Pulumi's state: nothing to do on the engine.
STATE_ONLY_TYPES = {
    "random:index/randomPassword:RandomPassword",
    "tls:index/privateKey:PrivateKey",
    "tls:index/selfSignedCert:SelfSignedCert",
}

CONTAINER_INPUTS = {
    "name", "image", "envs", "entrypoints", "command", "networksAdvanced", "healthcheck", "wait", "waitTimeout",
    "ports", "volumes", "uploads", "labels", "restart", "logDriver", "logOpts",
    "destroyGraceSeconds", "mustRun", "attach", "hosts",
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


class EngineApplier:
    def __init__(
        self,
        client: docker.DockerClient,
        log: Callable[[str], None] = _LOG.info,
    ):
        self.client = client
        self.log = log
        # Pulumi's state, per URN: the declared resource with `outputs` as the provider read
        # them back, `id` the real Docker id, and `init_error` where a create failed.
        self.state: dict[str, DeclaredResource] = {}
        # Old halves of create-before-delete replacements whose new half failed: the engine
        # keeps them marked Delete=true and deletes them first in the next run.
        self.pending_deletes: list[DeclaredResource] = []
        # The declaration being applied: container inputs name its RemoteImages' outputs.
        self.pending: Declaration | None = None
        # Hooks this run of the program registered (the engine calls them by name).
        self.hooks: dict[str, Callable[[bytes], Awaitable[Any]]] = {}
        # Docker hosts other than the local engine (docker:host, apiHosts), by URL; and which
        # of them answered a ping in this run (see _engine).
        self.remote_engines: dict[str, docker.DockerClient] = {}
        self.pinged: set[str] = set()

    # ---- which engine ----------------------------------------------------------------------

    @staticmethod
    def _provider_urn(resource: DeclaredResource) -> str:
        """The URN in a provider reference, `<provider urn>::<id>` (providers.ParseReference)."""
        return resource.provider.rpartition("::")[0] if resource.provider else ""

    def _provider_of(self, resource: DeclaredResource) -> DeclaredResource | None:
        """The explicit provider a resource names: declared in this run, or, for a resource no
        longer declared, as state recorded it (the engine's provider registry is loaded from
        the previous snapshot, pkg/resource/deploy/providers/registry.go, so such a resource
        is deleted through the provider that created it)."""
        urn = self._provider_urn(resource)
        for candidate in self.pending.resources if self.pending else []:
            if candidate.urn == urn:
                return candidate
        return self.state.get(urn)

    def _engine(self, resource: DeclaredResource) -> docker.DockerClient:
        """The Docker engine of the resource's provider. kreuzwerker makes its client on first
        use and pings the host then (ProviderConfig.MakeClient in internal/provider/config.go,
        v4.5.0): an unreachable host fails the first resource that needs it, with this
        message; a host nothing touches in a run is never asked."""
        provider = self._provider_of(resource)
        host = reveal(provider.inputs).get("host") if provider is not None else None
        if not host:
            return self.client
        if host not in self.remote_engines:
            # ssh:// runs the ssh binary, as kreuzwerker's connhelper does (config.go).
            self.remote_engines[host] = docker.DockerClient(
                base_url=host, use_ssh_client=host.startswith("ssh://"), timeout=120
            )
        engine = self.remote_engines[host]
        if host not in self.pinged:
            try:
                engine.ping()
            except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
                raise ApplyError(
                    f"{resource.name}: Error pinging Docker server, please make sure that {host} "
                    f"is reachable and has a  '_ping' endpoint. Error: {error}"
                ) from None
            self.pinged.add(host)
        return engine

    # ---- planning -------------------------------------------------------------------------

    def plan(self, new: Declaration) -> Plan:
        if new.error is not None:
            raise ApplyError(f"the program refused its configuration:\n{new.error}")
        plan = plan_changes(self.state, new, self.pending_deletes)
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
        self.pending = new
        self.hooks = dict(new.hooks)
        self.pinged = set()  # a new `pulumi up` starts a new provider process
        old = dict(self.state)
        by_urn = {r.urn: r for r in new.custom()}
        ops = {step.urn: step for step in plan.steps if not step.pending}

        taken_down: set[str] = set()

        def step(resource: DeclaredResource) -> None:
            if ops[resource.urn].delete_first and resource.urn not in taken_down:
                self._take_down(resource.urn, old, ops, taken_down)
            self._create_or_update(resource, ops[resource.urn])

        # Each resource's steps run once what it depends on is done (the engine's step
        # executor), a delete-before-replace replacement deleting first, at its own turn.
        todo = [urn for urn in by_urn if ops[urn].op in ("create", "replace", "update")]
        self._run_in_dependency_order(todo, by_urn, step)

        # deployment_executor.go: deletes come once every create and update succeeded: the old
        # halves of create-before-delete replacements, what an earlier failed run left marked
        # for deletion, and what is no longer declared.
        while self.pending_deletes:
            self._delete(self.pending_deletes[0])
            self.pending_deletes.pop(0)
        at_end = [
            urn
            for urn, step in ops.items()
            if step.op == "delete" or (step.op == "replace" and not step.delete_first)
        ]
        for urn in self._topological(at_end, old, reverse=True):
            self._delete(old[urn])
        return plan

    def _take_down(
        self,
        urn: str,
        old: dict[str, DeclaredResource],
        ops: dict[str, Step],
        taken_down: set[str],
    ) -> None:
        """A delete-before-replace replacement's first half: delete the old resource, and
        before it every dependent the plan replaces because of it (step_generator.go emits
        their DeleteReplacement steps, in reverse, ahead of the resource's own)."""
        doomed, queue = [], [urn]
        while queue:
            current = queue.pop()
            doomed.append(current)
            queue += [u for u, s in ops.items() if s.cascade_from == current]
        for doomed_urn in self._topological(doomed, old, reverse=True):
            if doomed_urn not in taken_down:
                self._delete(old[doomed_urn])
                taken_down.add(doomed_urn)

    def destroy(self, program: Declaration | None = None, exclude_protected: bool = False) -> None:
        """`pulumi destroy`. Without the program (`--run-program`) it refuses to start when any
        resource in state has delete hooks (newDestroySource in pkg/engine/destroy.go: "You
        must run with the `--run-program` flag to use delete hooks during destroy."); with
        it, the program's run registers them. Protected resources stop it before anything is
        deleted, unless `--exclude-protected`, which leaves them in place."""
        with_hooks = sorted(r.name for r in self.state.values() if r.before_delete_hooks)
        if program is None and with_hooks:
            raise ApplyError(
                f"{', '.join(with_hooks)} have delete hooks registered, but the program is not "
                "running: run with --run-program; nothing was deleted"
            )
        self.hooks = dict(program.hooks) if program is not None else {}
        protected = sorted(r.name for r in self.state.values() if r.protect)
        if protected and not exclude_protected:
            raise ApplyError(f"{', '.join(protected)} are protected; nothing was deleted")
        while self.pending_deletes:
            self._delete(self.pending_deletes.pop(0))
        kept = self._protected_and_their_dependencies() if exclude_protected else set()
        doomed = {urn: r for urn, r in self.state.items() if urn not in kept}
        for urn in self._topological(list(doomed), doomed, reverse=True):
            self._delete(doomed[urn])

    def _protected_and_their_dependencies(self) -> set[str]:
        """What `--exclude-protected` keeps: every protected resource and, transitively, what
        it depends on (getProtectedExcludes in pkg/cmd/pulumi/operations/destroy.go), such as
        the provider it is managed by."""
        kept: set[str] = set()
        queue = [urn for urn, resource in self.state.items() if resource.protect]
        while queue:
            urn = queue.pop()
            if urn in kept or urn not in self.state:
                continue
            kept.add(urn)
            resource = self.state[urn]
            queue += resource.dependencies
            # A provider reference is "<provider urn>::<id>".
            queue += [u for u in self.state if resource.provider.startswith(u + "::")]
        return kept

    def teardown(self) -> None:
        """Test cleanup: remove every container, network and volume applied, data included,
        without hooks."""
        self.hooks = {}
        # Dependents first, each resource's provider last (it says which engine to ask).
        ordered = self._topological(list(self.state), self.state, reverse=True)
        for resource in [*self.pending_deletes, *(self.state[urn] for urn in ordered)]:
            resource = dataclasses.replace(resource, before_delete_hooks=[])
            with contextlib.suppress(docker.errors.APIError, ApplyError):
                self._delete(resource)
        self.pending_deletes = []
        self.state = {}

    def _create_or_update(self, resource: DeclaredResource, step: Step) -> None:
        if resource.type == COMMAND:
            self.log(f"{step.op:7} {step.name} (runs its create command)")
            stdout = self._run_command(resource)
            recorded = recorded_state(resource)
            self.state[resource.urn] = dataclasses.replace(
                recorded, outputs={**recorded.outputs, "stdout": stdout.removesuffix("\n")}
            )
            return
        if step.op == "update":
            current = self.state[resource.urn]
            if resource.type == CONTAINER and set(step.changed) & CONTAINER_UPDATED_IN_PLACE:
                inputs = reveal(resource.inputs)
                self._engine(resource).api.update_container(
                    current.id, restart_policy={"Name": inputs.get("restart", "no")}
                )
            self.log(f"update  {step.name} {step.changed} {step.reason}".rstrip())
            # State takes the merged inputs; the provider's Update ends with a Read; the init
            # error is gone (step.go UpdateStep: the new state carries the program's none).
            updated = dataclasses.replace(
                resource, inputs=inputs_after_ignore_changes(resource, current)
            )
            outputs = (
                self._read_back(updated, current.id)
                if resource.type == CONTAINER
                else recorded_state(updated).outputs
            )
            self.state[resource.urn] = dataclasses.replace(
                updated, id=current.id, init_error=None, outputs=outputs
            )
            return
        self.log(f"{step.op:7} {step.name} {step.reason}".rstrip())
        resource_id = resource.id
        if resource.type == CONTAINER:
            resource_id = self._create_container(resource, step)
        elif resource.type == NETWORK:
            inputs = reveal(resource.inputs)
            self._only(resource, {"name", "driver"})
            self._engine(resource).networks.create(
                inputs["name"], driver=inputs.get("driver", "bridge")
            )
        elif resource.type == VOLUME:
            self._only(resource, {"name"})
            self._engine(resource).volumes.create(name=reveal(resource.inputs)["name"])
        elif resource.type == REMOTE_IMAGE:
            self._only(resource, {"name", "keepLocally"})
            name = reveal(resource.inputs)["name"]
            try:
                self._engine(resource).images.get(name)
            except docker.errors.ImageNotFound:
                raise ApplyError(
                    f"image {name} is not on the engine and no registry is reachable"
                ) from None
        elif resource.type == DOCKER_PROVIDER:
            # Configure stores the settings; nothing is asked of the host yet (see _engine).
            self._only(resource, {"host", "sshOpts"})
        elif resource.type not in STATE_ONLY_TYPES:
            raise ApplyError(f"the applier does not implement {resource.type} ({resource.name})")
        if resource.type != CONTAINER:
            self.state[resource.urn] = dataclasses.replace(recorded_state(resource), id=resource_id)

    def _run_command(self, resource: DeclaredResource) -> str:
        """pulumi-command's local.Command: `create` run by a shell on this machine, with the
        declared environment and stdin; its stdout becomes the `stdout` output, one trailing
        newline trimmed (pulumi-command provider/pkg/provider/local/commandOutputs.go, run)."""
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
        return completed.stdout

    def _run_before_delete_hooks(self, resource: DeclaredResource) -> None:
        """Invoke the resource's before-delete hooks the way the engine does: by the name kept
        in state, through the SDK's own callback registered by this run, with a serialized
        ResourceHookRequest carrying the old inputs and outputs. A name this run did not
        register fails the delete (pkg/resource/deploy/deployment.go)."""
        for hook_name in resource.before_delete_hooks:
            callback = self.hooks.get(hook_name)
            if callback is None:
                raise ApplyError(
                    f"deleting {resource.name}: hook {hook_name!r} was not registered "
                    "(pulumi destroy needs --run-program for resources with hooks)"
                )
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

    def _delete(self, resource: DeclaredResource) -> None:
        """Delete what `resource` (as state recorded it) made."""
        self._run_before_delete_hooks(resource)
        self.log(f"delete  {resource.name}")
        inputs = reveal(resource.inputs)
        if self.state.get(resource.urn) is resource:
            self.state.pop(resource.urn)
        if resource.type == CONTAINER:
            try:
                container = self._engine(resource).containers.get(resource.id)
            except docker.errors.NotFound:
                return
            grace = inputs.get("destroyGraceSeconds")
            if grace:
                container.stop(timeout=int(grace))  # SIGTERM (or the image's STOPSIGNAL), then KILL
            container.remove(force=True)  # without a grace period the provider kills at once
        elif resource.type == NETWORK:
            for network in self._engine(resource).networks.list(names=[inputs["name"]]):
                network.remove()
        elif resource.type == VOLUME:
            with contextlib.suppress(docker.errors.NotFound):
                self._engine(resource).volumes.get(inputs["name"]).remove()
        elif resource.type == REMOTE_IMAGE and not inputs.get("keepLocally"):
            self._engine(resource).images.remove(inputs["name"])

    def _read_back(self, resource: DeclaredResource, container_id: str) -> dict[str, Any]:
        """What kreuzwerker's resourceDockerContainerRead stores
        (internal/provider/resource_docker_container_funcs.go, v4.5.0): the declared values
        for what it does not read (env, labels, uploads, volumes, networks, grace, wait), and
        from the engine the health check (durations as Go's time.Duration.String()), the extra
        hosts (flattenExtraHosts), the restart policy, the exit code of a stopped container,
        and, where ports are declared, one entry per published binding sorted by port
        (flattenContainerPorts)."""
        attrs = self._engine(resource).api.inspect_container(container_id)
        outputs = recorded_state(resource).outputs
        if reveal(resource.inputs).get("ports"):
            outputs["ports"] = sorted(
                (
                    {
                        "internal": int(key.split("/")[0]),
                        "external": int(binding["HostPort"]),
                        "ip": binding["HostIp"] or "0.0.0.0",
                        "protocol": key.split("/")[1],
                    }
                    for key, bindings in (attrs["NetworkSettings"]["Ports"] or {}).items()
                    for binding in bindings or []
                ),
                key=lambda port: (port["internal"], port["protocol"]),
            )
        check = attrs["Config"].get("Healthcheck")
        if check:
            outputs["healthcheck"] = {
                "tests": list(check.get("Test") or []),
                "interval": go_duration_string(int(check.get("Interval") or 0)),
                "timeout": go_duration_string(int(check.get("Timeout") or 0)),
                "startPeriod": go_duration_string(int(check.get("StartPeriod") or 0)),
                "startInterval": go_duration_string(int(check.get("StartInterval") or 0)),
                "retries": int(check.get("Retries") or 0),
            }
        outputs["restart"] = attrs["HostConfig"]["RestartPolicy"]["Name"]
        if reveal(resource.inputs).get("hosts"):  # flattenExtraHosts: a set, read back
            outputs["hosts"] = sorted(
                (
                    {"host": host, "ip": ip}
                    for host, _, ip in (
                        entry.partition(":") for entry in attrs["HostConfig"]["ExtraHosts"] or []
                    )
                ),
                key=lambda item: (item["host"], item["ip"]),
            )
        if not attrs["State"]["Running"]:
            outputs["exitCode"] = attrs["State"]["ExitCode"]
        return outputs

    def _record(self, resource: DeclaredResource, container_id: str, error: str | None) -> None:
        self.state[resource.urn] = dataclasses.replace(
            resource,
            id=container_id,
            outputs=self._read_back(resource, container_id),
            init_error=error,
        )

    def _record_failed_create(
        self, resource: DeclaredResource, step: Step, container_id: str, error: str
    ) -> None:
        """kreuzwerker sets the id before it waits for healthy, so the bridge returns an
        initialization error with that id: the engine keeps the new container in state with
        its init error, and the old half of a create-before-delete replacement stays, marked
        for deletion (pkg/resource/deploy/step.go)."""
        if step.op == "replace" and not step.delete_first and resource.urn in self.state:
            self.pending_deletes.append(self.state[resource.urn])
        self._record(resource, container_id, error)

    def _create_container(self, resource: DeclaredResource, step: Step) -> str:
        self._only(resource, CONTAINER_INPUTS)
        # A create, replacements included, uses the program's values (offline/changes.py,
        # inputs_after_ignore_changes).
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
                "interval": parse_duration_ns(check.get("interval", "30s")),
                "timeout": parse_duration_ns(check.get("timeout", "30s")),
                "retries": int(check.get("retries", 3)),
                "start_period": parse_duration_ns(check.get("startPeriod", "0s")),
            }
        engine = self._engine(resource)
        host_config = engine.api.create_host_config(
            port_bindings=ports or None,
            binds=binds or None,
            restart_policy={"Name": inputs.get("restart", "no")},
            extra_hosts={item["host"]: item["ip"] for item in inputs.get("hosts") or []} or None,
            log_config=LogConfig(
                type=inputs.get("logDriver", "json-file"), config=inputs.get("logOpts") or {}
            ),
        )
        networking_config = None
        if networks:
            first = networks[0]
            networking_config = engine.api.create_networking_config(
                {first["name"]: engine.api.create_endpoint_config(aliases=first.get("aliases"))}
            )
        try:
            created = engine.api.create_container(
                image=image,
                name=inputs["name"],
                entrypoint=inputs.get("entrypoints"),
                command=inputs.get("command"),
                environment=inputs.get("envs"),
                labels={item["label"]: item["value"] for item in inputs.get("labels") or []},
                ports=[tuple(key.split("/")) for key in ports] or None,
                volumes=[bind["bind"] for bind in binds.values()] or None,
                healthcheck=healthcheck,
                host_config=host_config,
                networking_config=networking_config,
            )
        except docker.errors.APIError as error:
            # Before an id exists (a name conflict, say) nothing reaches state.
            raise ApplyError(f"{resource.name}: {error.explanation or error}") from None
        container_id = created["Id"]
        for network in networks[1:]:
            engine.api.connect_container_to_network(
                container_id, network["name"], aliases=network.get("aliases")
            )
        if inputs.get("uploads"):
            engine.api.put_archive(
                container_id, "/", self._upload_archive(resource, inputs["uploads"])
            )
        try:
            engine.api.start(container_id)
            if inputs.get("attach"):
                self._wait_exited(resource, container_id)
            elif inputs.get("wait"):
                self._wait_healthy(resource, container_id, self._create_deadline(resource))
            elif inputs.get("mustRun", True):
                self._wait_running(resource, container_id)
        except (ApplyError, docker.errors.APIError) as error:
            self._record_failed_create(resource, step, container_id, str(error))
            raise ApplyError(str(error)) from None
        self._record(resource, container_id, None)
        return container_id

    @staticmethod
    def _create_deadline(resource: DeclaredResource) -> tuple[int, str]:
        """The health wait, cut by the provider's create timeout when that is shorter
        (resource_docker_container.go Timeouts: 20 minutes unless custom_timeouts say)."""
        wait = int(reveal(resource.inputs).get("waitTimeout", 60))
        limit = timeout_seconds(resource, "create")
        if limit <= wait:
            return limit, f"the provider's create timeout ({limit}s) cut the wait"
        return wait, f"did not become healthy within {wait}s"

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

    def _wait_healthy(
        self, resource: DeclaredResource, container_id: str, deadline_and_reason: tuple[int, str]
    ) -> None:
        engine = self._engine(resource)
        timeout, reason = deadline_and_reason
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = engine.api.inspect_container(container_id)["State"]
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return
            if not state["Running"] and not state.get("Restarting"):
                break
            time.sleep(0.5)
        logs = engine.api.logs(container_id, tail=30).decode(errors="replace")
        raise ApplyError(f"{resource.name} {reason}:\n{logs}")

    def _wait_exited(self, resource: DeclaredResource, container_id: str) -> None:
        """`attach`: resourceDockerContainerCreate waits for the container to stop running
        (ContainerWait, WaitConditionNotRunning), within the create timeout, and then reads
        it; a non-zero exit is no error there, resourceDockerContainerRead only records
        `exit_code` (kreuzwerker internal/provider/resource_docker_container_funcs.go,
        v4.5.0)."""
        limit = timeout_seconds(resource, "create")
        try:
            self._engine(resource).api.wait(container_id, timeout=limit, condition="not-running")
        except requests.exceptions.ReadTimeout:
            raise ApplyError(
                f"{resource.name}: the provider's create timeout ({limit}s) cut the wait"
            ) from None

    def _wait_running(self, resource: DeclaredResource, container_id: str) -> None:
        engine = self._engine(resource)
        time.sleep(1)
        state = engine.api.inspect_container(container_id)["State"]
        if not state["Running"]:
            logs = engine.api.logs(container_id, tail=30).decode(errors="replace")
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
        """What it depends on, its explicit provider included (created before it, deleted
        after it: DependenciesOf in pkg/resource/graph/dependency_graph.go)."""
        provider = EngineApplier._provider_urn(resource)
        return {urn for urn in [*resource.dependencies, provider] if urn in among}

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
        # Through unchanged resources too: the SDK registers a resource only once every
        # dependency's registration has returned (its URN resolved: prepare_resource in
        # sdk/python/lib/pulumi/runtime/resource.py), and an unchanged resource's own
        # registration waits the same way, so a step waits for every changing resource it
        # depends on at any distance.
        upstream: dict[str, set[str]] = {}

        def reachable(urn: str) -> set[str]:
            if urn not in upstream:
                upstream[urn] = set()
                for dependency in self._dependencies(by_urn[urn], by_urn):
                    upstream[urn] |= {dependency, *reachable(dependency)}
            return upstream[urn]

        with ThreadPoolExecutor(max_workers=8) as pool:
            while remaining:
                ready = [urn for urn in remaining if not (reachable(urn) & remaining)]
                if not ready:
                    raise ApplyError(f"dependency cycle among {sorted(remaining)}")
                for future in [pool.submit(action, by_urn[urn]) for urn in ready]:
                    future.result()
                remaining -= set(ready)
