"""The README stays true to what the tests measured."""

import json

from tools.setting_changes_table import README_PATH, RESULTS_PATH, readme_with_table


def test_the_setting_changes_table_is_the_one_the_lifecycle_layer_measured():
    readme = README_PATH.read_text()
    rows = json.loads(RESULTS_PATH.read_text())
    assert rows, "docs/setting-changes.json is empty: run scripts/test.sh lifecycle"
    assert readme == readme_with_table(readme, rows), (
        "README.md's setting-changes table is stale: "
        "run `.venv/bin/python -m tools.setting_changes_table --write`"
    )
