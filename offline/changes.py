"""What a change of declaration does to each resource, by the providers' documented rules.

Shared by the offline preview (offline/preview.py) and the engine tests' applier. For the
docker provider the rules are kreuzwerker/terraform-provider-docker's container schema: every
input forces a replacement except the few it updates in place (`restart` and resource
limits) or only records (`healthcheck`, `destroy_grace_seconds`, `wait`, ...). Pulumi's
`replace_on_changes` and `ignore_changes` apply on top; pulumi-command replaces a Command
when its `triggers` change and re-runs `create` for any other change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from offline.declare import Declaration, DeclaredResource

CONTAINER = "docker:index/container:Container"
COMMAND = "command:local:Command"
DOCKER_PROVIDER = "pulumi:providers:docker"

# Updated in place by the provider's ContainerUpdate...
CONTAINER_UPDATED_IN_PLACE = {"restart", "maxRetryCount", "cpuShares", "memory", "memorySwap"}
# ...or not ForceNew and not applied at all (kept in state only). #988 is `healthcheck` here.
CONTAINER_STATE_ONLY = {
    "wait",
    "waitTimeout",
    "destroyGraceSeconds",
    "mustRun",
    "healthcheck",
    "logs",
}


@dataclass
class Step:
    op: str  # create, replace, update, delete, same
    urn: str
    changed: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.urn.split("::")[-1]


@dataclass
class Plan:
    steps: list[Step]

    def names(self, *ops: str) -> set[str]:
        return {step.name for step in self.steps if step.op in ops}


def change_kind(resource: DeclaredResource, changed: list[str]) -> str:
    if not changed:
        return "same"
    if resource.type == DOCKER_PROVIDER:
        return "update"
    if resource.type == COMMAND:
        return "replace" if "triggers" in changed else "update"
    if resource.type == CONTAINER:
        keys = set(changed)
        if keys & set(resource.replace_on_changes):
            return "replace"
        if keys - CONTAINER_UPDATED_IN_PLACE - CONTAINER_STATE_ONLY:
            return "replace"
        return "update"
    return "replace"  # networks, volumes, images, generated secrets: every input ForceNew


def plan_changes(current: dict[str, DeclaredResource], new: Declaration) -> Plan:
    """Steps from the resources that exist (by URN) to what `new` declares."""
    steps = []
    for resource in new.custom():
        before = current.get(resource.urn)
        if before is None:
            steps.append(Step("create", resource.urn))
            continue
        changed = new.changed_inputs(before)  # less what ignore_changes names
        steps.append(Step(change_kind(resource, changed), resource.urn, changed))
    new_urns = {r.urn for r in new.custom()}
    steps += [Step("delete", urn) for urn in current if urn not in new_urns]
    return Plan(steps)
