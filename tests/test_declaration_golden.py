"""The declaration a deployed stack sees (URNs, types, parents, options, inputs) is the one in
tests/golden/declaration-*.json: a change meant to leave deployed stacks alone shows nothing
here, as `pulumi preview` would show nothing. After an intended change of what is deployed,
regenerate with `.venv/bin/python -m tests.declarations --write` and review the diff."""

import json

import pytest

from tests.declarations import STACKS, current, golden_path


@pytest.mark.parametrize("name", sorted(STACKS))
def test_the_declaration_is_the_golden_one(name):
    golden = json.loads(golden_path(name).read_text())
    now = json.loads(json.dumps(current(name), sort_keys=True))
    added = sorted(set(now["resources"]) - set(golden["resources"]))
    removed = sorted(set(golden["resources"]) - set(now["resources"]))
    assert (added, removed) == ([], []), f"resources added {added}, removed {removed}"
    changed = {}
    for urn, was in golden["resources"].items():
        is_now = now["resources"][urn]
        keys = sorted(key for key in {*was, *is_now} if was.get(key) != is_now.get(key))
        if keys:
            changed[urn] = keys
    assert changed == {}, f"changed: {changed}"
    assert now["outputs"] == golden["outputs"]
