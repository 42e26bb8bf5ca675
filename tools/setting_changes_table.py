"""The README's table of what each setting change does to a running stack, rendered from what
the lifecycle layer (tests/engine/test_lifecycle.py) measured on the real engine.

    .venv/bin/python -m tools.setting_changes_table           # print the table
    .venv/bin/python -m tools.setting_changes_table --write   # put it into README.md

The lifecycle layer writes docs/setting-changes.json; tests/test_readme.py fails when the
README's table is not the one this renders from that file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS_PATH = PROJECT_DIR / "docs" / "setting-changes.json"
README_PATH = PROJECT_DIR / "README.md"
START, END = "<!-- setting-changes:start -->", "<!-- setting-changes:end -->"
# A generation's container, or with apiContainers one of its containers (api-<id>-<n>).
_GENERATION = re.compile(r"^api-[0-9a-f]{6}(-\d+)?$")
_MIGRATION_JOB = re.compile(r"^dograh-api-migrate-[0-9a-f]{6}$")


def _service(resource_name: str) -> str | None:
    """A container resource's service (`dograh-postgres-container` -> postgres), with every
    api generation as `api-<generation>`, the migration job as `api-migrate`; None for what
    is not a container."""
    if _MIGRATION_JOB.match(resource_name):
        return "api-migrate"
    if not resource_name.endswith("-container"):
        return None
    service = resource_name.removeprefix("dograh-").removesuffix("-container")
    return "api-<generation>" if _GENERATION.match(service) else service


def step_kinds(ops: dict[str, str]) -> dict[str, Any]:
    """Steps by resource name -> what happened to which containers, and to nginx's config."""
    kinds: dict[str, Any] = {"replaced": [], "updated": [], "created": [], "deleted": []}
    verbs = {"replace": "replaced", "update": "updated", "create": "created", "delete": "deleted"}
    for name, op in ops.items():
        service = _service(name)
        if service is not None and op in verbs:
            kinds[verbs[op]].append(service)
    for key in verbs.values():
        kinds[key] = sorted(set(kinds[key]))
    reload_ops = {op for name, op in ops.items() if name.endswith("-reload")}
    kinds["nginx"] = "reloaded" if reload_ops & {"create", "replace", "update"} else ""
    return kinds


def _what_happens(row: dict[str, Any]) -> str:
    if row.get("what"):
        return str(row["what"])
    created, deleted = list(row["created"]), list(row["deleted"])
    replaced = list(row["replaced"])
    parts = []
    if "api-migrate" in created and "api-migrate" in deleted:
        parts.append("migrations run again (a new one-off job)")
        created.remove("api-migrate")
        deleted.remove("api-migrate")
    if "api-<generation>" in created and "api-<generation>" in deleted:
        parts.append("new api generation beside the old one, which is drained and removed")
        created.remove("api-<generation>")
        deleted.remove("api-<generation>")
    if replaced:
        parts.append("replaced (stopped first): " + ", ".join(replaced))
    if row["updated"]:
        parts.append("updated in place: " + ", ".join(row["updated"]))
    if created:
        parts.append("started: " + ", ".join(created))
    if deleted:
        parts.append("removed: " + ", ".join(deleted))
    if row["nginx"]:
        parts.append("nginx " + row["nginx"])
    return "; ".join(parts) or "nothing restarts"


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| setting | change | what happens to the running stack | failed requests | calls cut "
        "| took |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['setting']}` | {row['change']} | {_what_happens(row)} "
            f"| {row['failed_requests']} of {row['requests']} "
            f"| {row['calls_cut']} of {row['calls']} | {row['seconds']} s |"
        )
    return "\n".join(lines)


def readme_with_table(readme: str, rows: list[dict[str, Any]]) -> str:
    before, start, rest = readme.partition(START)
    _, end, after = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"README.md has no {START} ... {END} section")
    return f"{before}{START}\n{render(rows)}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args(argv)
    rows = json.loads(RESULTS_PATH.read_text())
    if args.write:
        README_PATH.write_text(readme_with_table(README_PATH.read_text(), rows))
    else:
        print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
