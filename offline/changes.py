"""What `pulumi up` does to each resource for a change of declaration, by the engine's and the
providers' own rules. One plan, shared by the offline preview (offline/preview.py) and the
engine tests' applier (tests/engine/applier.py), so what a reviewer reads is what the applier
executes, cascades included.

Each rule is one small function below, with the upstream file it follows (pulumi/pulumi at
v3.27x, pulumi/pulumi-docker v5.2.0 and its kreuzwerker/terraform-provider-docker v4.5.0,
pulumi/pulumi-command v1.2). In short:
- the engine diffs new inputs against what the provider *read back* (`recorded_state`);
- ignored inputs keep their old values in the diff and in an update, but a replacement is
  created from the program's values (`inputs_after_ignore_changes`);
- a resource whose create failed stays in state with an init error, and the next run with
  no diff sends it an update that clears the error (`step_for`);
- a delete-before-replace replacement first deletes every dependent whose inputs come from
  it (`cascade`);
- resources no longer declared are deleted at the end, and so is the old half of a
  create-before-delete replacement whose new half failed: it stays in state marked for
  deletion, and the next run that gets to its end deletes it (`plan_changes`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from components.container import go_duration_string
from offline.declare import (
    COMMAND,
    CONTAINER,
    DOCKER_PROVIDER,
    Declaration,
    DeclaredResource,
    reveal,
)

# kreuzwerker resource_docker_container.go: the attributes without ForceNew. Updated in place
# by resourceDockerContainerUpdate...
CONTAINER_UPDATED_IN_PLACE = {"restart", "maxRetryCount", "cpuShares", "memory", "memorySwap"}
# ...or kept in state only (`healthcheck` is not ForceNew upstream: #988; the program adds
# replace_on_changes for it).
CONTAINER_STATE_ONLY = {
    "wait",
    "waitTimeout",
    "destroyGraceSeconds",
    "mustRun",
    "attach",
    "healthcheck",
    "logs",
}
# resource_docker_container.go `Timeouts`: 20 minutes for create and delete.
PROVIDER_DEFAULT_TIMEOUT_SECONDS = 20 * 60
_HEALTHCHECK_DURATIONS = ("interval", "timeout", "startPeriod", "startInterval")
_NANOSECONDS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                "m": 60_000_000_000, "h": 3_600_000_000_000}  # fmt: skip


# ---- rule 1: state is what the provider read back ---------------------------------------------


def parse_duration_ns(text: str) -> int:
    """A Go duration string ("120s", "2m0s", "1.5s", "500ms") in nanoseconds."""
    rest, total = text.strip(), 0.0
    if rest in ("", "0"):
        return 0
    while rest:
        number = ""
        while rest and (rest[0].isdigit() or rest[0] == "."):
            number, rest = number + rest[0], rest[1:]
        unit = next(
            (u for u in ("ns", "us", "µs", "ms", "h", "m", "s") if rest.startswith(u)), None
        )
        if not number or unit is None:
            raise ValueError(f"duration {text!r} is not understood")
        total += float(number) * _NANOSECONDS[unit]
        rest = rest[len(unit) :]
    return int(total)


def read_back_healthcheck(healthcheck: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A declared health check as the provider's Read stores it: durations in Go's notation,
    unset ones "0s", retries 0 when unset."""
    if not healthcheck:
        return None
    stored = dict(healthcheck)
    for key in _HEALTHCHECK_DURATIONS:
        stored[key] = go_duration_string(parse_duration_ns(str(stored.get(key) or "0s")))
    stored["retries"] = int(stored.get("retries") or 0)
    return stored


def recorded_state(resource: DeclaredResource) -> DeclaredResource:
    """What state holds after the provider created `resource` and read it back, computed from
    its inputs (the applier records it from the real container instead). The engine's
    diffResource (pkg/resource/deploy/step_generator.go) passes these old *outputs* to the
    provider's Diff, not the old inputs."""
    outputs = copy.deepcopy(reveal(resource.outputs))
    if resource.type == CONTAINER:
        outputs["healthcheck"] = read_back_healthcheck(reveal(resource.inputs).get("healthcheck"))
    return replace(resource, outputs=outputs)


# ---- rule 2: ignore_changes keeps the old inputs for the diff and an update ----------------------


def inputs_after_ignore_changes(
    new: DeclaredResource, old: DeclaredResource | None
) -> dict[str, Any]:
    """The inputs the engine diffs and updates with: for every ignored property the old input
    is put back (step_generator.go processIgnoreChanges, "Set inputs back to their old values
    (if any) for any 'ignored' properties"). Not for a replacement: once the diff says replace,
    the engine checks the program's own values again ("If we are going to perform a
    replacement, we need to recompute the default values", News: goal.Properties), so the
    replacement is created with them. An ignored input alone never causes a replacement."""
    if old is None or not new.ignore_changes:
        return new.inputs
    merged = dict(new.inputs)
    for key in new.ignore_changes:
        if key in old.inputs:
            merged[key] = old.inputs[key]
        else:
            merged.pop(key, None)
    return merged


def changed_inputs(new: DeclaredResource, old: DeclaredResource) -> list[str]:
    """Input keys whose new value differs from what state recorded for them."""
    inputs = inputs_after_ignore_changes(new, old)
    recorded = old.outputs
    keys = (set(inputs) | set(old.inputs)) - {"__defaults"}
    return sorted(
        key
        for key in keys
        if _normalised(new, key, inputs.get(key))
        != _normalised(new, key, recorded.get(key, old.inputs.get(key)))
    )


def _normalised(resource: DeclaredResource, key: str, value: Any) -> Any:
    """Schema defaults apply to the new config as they did to the stored value."""
    value = reveal(value)
    if resource.type == CONTAINER and key == "healthcheck":
        # Unset durations default to "0s" in the schema; literal strings are compared.
        if not value:
            return None
        value = dict(value)
        for name in _HEALTHCHECK_DURATIONS:
            value.setdefault(name, "0s")
        value["retries"] = int(value.get("retries") or 0)
    if resource.type == CONTAINER and key == "ports":
        # suppressIfPortsDidNotChangeForMigrationV0ToV1 (resource_docker_container.go): no
        # diff while both lists have the same length and every old port is found in the new
        # one with the same internal port, protocol, external port and ip: order does not
        # count. ip defaults to 0.0.0.0 and protocol to tcp in the schema.
        return sorted(
            (
                int(port["internal"]),
                port.get("protocol") or "tcp",
                int(port.get("external") or 0),
                port.get("ip") or "0.0.0.0",
            )
            for port in value or []
        )
    return value


# ---- what kind of step a difference makes ---------------------------------------------------


def deletes_before_replace(resource: DeclaredResource) -> bool:
    """pulumi-docker's provider/resources.go marks docker_container DeleteBeforeReplace; an
    explicit `delete_before_replace` option wins over the provider's answer
    (step_generator.go)."""
    if resource.delete_before_replace_defined:
        return resource.delete_before_replace
    return resource.type == CONTAINER


def change_kind(resource: DeclaredResource, changed: list[str]) -> str:
    if not changed:
        return "same"
    if resource.type == DOCKER_PROVIDER:
        return "update"
    if resource.type == COMMAND:
        # pulumi-command: a change to `triggers` replaces; anything else is an update, which
        # runs `update` (or `create` when no update command is given).
        return "replace" if "triggers" in changed else "update"
    if resource.type == CONTAINER:
        keys = set(changed)
        if keys & set(resource.replace_on_changes):
            return "replace"
        if keys - CONTAINER_UPDATED_IN_PLACE - CONTAINER_STATE_ONLY:
            return "replace"
        return "update"
    return "replace"  # networks, volumes, images, generated secrets: every input ForceNew


@dataclass
class Step:
    op: str  # create, replace, update, delete, same
    urn: str
    changed: list[str] = field(default_factory=list)
    # For a replacement: the old resource is deleted before the new one is created.
    delete_first: bool = False
    # Why a step that no input of its own asked for happens.
    reason: str = ""
    # For a delete: an old resource a failed earlier run left pending deletion.
    pending: bool = False
    # For a replacement forced by a dependency's delete-before-replace: that one's URN.
    cascade_from: str = ""

    @property
    def name(self) -> str:
        return self.urn.split("::")[-1]


@dataclass
class Plan:
    steps: list[Step]

    def names(self, *ops: str) -> set[str]:
        return {step.name for step in self.steps if step.op in ops}

    def step(self, name: str) -> Step:
        return next(step for step in self.steps if step.name == name)


def step_for(new: DeclaredResource, old: DeclaredResource | None) -> Step:
    if old is None:
        return Step("create", new.urn)
    changed = changed_inputs(new, old)
    kind = change_kind(new, changed)
    if kind == "same" and old.init_error is not None:
        # step_generator.go: a resource with init errors is updated even without a diff; the
        # provider's update succeeds and the error is gone, with no new health check.
        return Step("update", new.urn, [], reason="clears the init error of a failed create")
    return Step(
        kind, new.urn, changed, delete_first=kind == "replace" and deletes_before_replace(new)
    )


# ---- rule 5: a delete-before-replace replacement takes its dependents down first ---------------


def cascade(
    steps: dict[str, Step],
    current: Mapping[str, DeclaredResource],
    new: Mapping[str, DeclaredResource],
) -> None:
    """calculateDependentReplacements (step_generator.go): before a delete-before-replace
    resource is replaced, every resource whose inputs come from it is asked, with those inputs
    unknown, whether it would be replaced; each that would is deleted first and recreated (and
    its own dependents follow the same rule)."""
    queue = [urn for urn, step in steps.items() if step.op == "replace" and step.delete_first]
    while queue:
        replaced = queue.pop()
        for urn, dependent in current.items():
            keys = [
                key for key, urns in dependent.property_dependencies.items() if replaced in urns
            ]
            step = steps.get(urn)
            if not keys or step is None or step.op in ("delete", "create") or step.delete_first:
                continue
            if change_kind(dependent, keys) != "replace":
                continue
            steps[urn] = Step(
                "replace",
                urn,
                sorted(set(step.changed) | set(keys)),
                delete_first=True,
                reason=f"its {', '.join(keys)} come(s) from {replaced.split('::')[-1]}, "
                "replaced delete-first",
                cascade_from=replaced,
            )
            queue.append(urn)


# ---- the whole plan ------------------------------------------------------------------------


def plan_changes(
    current: Mapping[str, DeclaredResource],
    new: Declaration,
    pending_deletes: list[DeclaredResource] = (),  # type: ignore[assignment]
) -> Plan:
    """Steps from what state holds (by URN, as recorded) to what `new` declares.

    Order as the engine runs them: the program's resources (a delete-before-replace
    replacement deleting its cascade first); then, once every create and update is done and
    only if none failed, the deletes (deployment_executor.go performPostSteps ->
    GenerateDeletes in step_generator.go): the old halves of create-before-delete
    replacements, resources an earlier failed run left marked for deletion (`res.Delete`;
    since pulumi v3.46 they are no longer deleted first), and whatever is no longer declared.
    """
    declared = {resource.urn: resource for resource in new.custom()}
    steps = {urn: step_for(resource, current.get(urn)) for urn, resource in declared.items()}
    cascade(steps, current, declared)
    pending = [
        Step("delete", r.urn, pending=True, reason="left marked for deletion by a failed run")
        for r in pending_deletes
    ]
    undeclared = [Step("delete", urn) for urn in current if urn not in declared]
    return Plan(list(steps.values()) + pending + undeclared)


def recorded(declaration: Declaration) -> dict[str, DeclaredResource]:
    """State after `declaration` was applied, as the provider would have recorded it."""
    return {resource.urn: recorded_state(resource) for resource in declaration.custom()}


def timeout_seconds(resource: DeclaredResource, kind: str) -> int:
    given = resource.custom_timeouts.get(kind)
    return (
        int(parse_duration_ns(given) // 1_000_000_000)
        if given
        else PROVIDER_DEFAULT_TIMEOUT_SECONDS
    )


def cut_by_timeouts(resource: DeclaredResource) -> str | None:
    """A wait the provider would cut: the health wait beyond the create timeout, or the stop
    grace beyond the delete timeout (resource_docker_container.go Timeouts, 20 min each)."""
    if resource.type != CONTAINER:
        return None
    inputs = reveal(resource.inputs)
    if inputs.get("wait") and int(inputs.get("waitTimeout", 60)) >= timeout_seconds(
        resource, "create"
    ):
        return (
            f"waits {inputs['waitTimeout']}s for healthy, but the provider's create timeout is "
            f"{timeout_seconds(resource, 'create')}s"
        )
    grace = int(inputs.get("destroyGraceSeconds") or 0)
    if grace and grace >= timeout_seconds(resource, "delete"):
        limit = timeout_seconds(resource, "delete")
        return f"stops with {grace}s of grace, but the provider's delete timeout is {limit}s"
    return None
