"""The offline preview command, run as a reviewer runs it."""

import json
import re
import subprocess
import sys

from offline.declare import PROJECT_DIR
from offline.preview import main

CONTAINER_NAME = re.compile(r"dograh-dev-[a-z0-9-]+")


def run(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "offline.preview", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return completed.stdout


def change_section(output: str) -> str:
    return output.split("change:\n", 1)[1].split("\n\n", 1)[0]


def test_four_to_eight_workers_names_exactly_the_api_and_nginx_containers():
    output = run("--stack", "dev", "--from", "fastapiWorkers=4", "--set", "fastapiWorkers=8")
    assert "Not a substitute for `pulumi preview`" in output
    named = set(CONTAINER_NAME.findall(change_section(output)))
    api = {name for name in named if re.fullmatch(r"dograh-dev-api-[0-9a-f]{6}", name)}
    assert named == api | {"dograh-dev-gateway"} and len(api) == 2  # old and new generation
    assert "reload nginx in dograh-dev-gateway" in output
    assert "+        server api-" in output and ":8007 max_fails" in output
    assert "-        server api-" in output and ":8003 max_fails" in output


def test_recreate_four_to_eight_workers_replaces_the_api_and_nginx_containers(tmp_path):
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(
        (PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text()
        + "  dograh:rolloutStrategy: recreate\n"
    )
    before = run("--stack", "dev", "--against", str(stack_file))
    assert "replace dograh-dev-gateway -> dograh-dev-gateway" in before  # the strategy switch
    output = run(
        "--stack", "dev", "--from", "rolloutStrategy=recreate", "--from", "fastapiWorkers=4",
        "--set", "fastapiWorkers=8",
    )  # fmt: skip
    assert set(CONTAINER_NAME.findall(change_section(output))) == {
        "dograh-dev-api",
        "dograh-dev-gateway",
    }


def test_describes_containers_with_images_ports_and_only_non_secret_env():
    output = run("--stack", "dev")
    assert (
        "dograh-dev-gateway\n    image  nginx:1.27.5-alpine\n    ports  127.0.0.1:8080->80/tcp, 127.0.0.1:8443->443/tcp"
        in output
    )
    assert "env    FASTAPI_WORKERS=2" in output
    assert "env    POSTGRES_PASSWORD=[secret]" in output
    assert "upstream dograh_api" in output


def test_a_refused_setting_exits_non_zero(capsys):
    assert main(["--stack", "dev", "--set", "fastapiWorkers=0"]) == 1
    assert "dograh:fastapiWorkers = '0' is not allowed" in capsys.readouterr().err


def test_one_api_hosts_worker_change_names_that_host_and_its_nginx_lines():
    h2 = {"name": "h2", "dockerHost": "ssh://d@10.0.0.12", "address": "10.0.0.12"}
    before, after = json.dumps([h2]), json.dumps([{**h2, "fastapiWorkers": 4}])
    output = run(
        "--stack", "dev",
        "--from", "privateAddress=10.0.0.11", "--set", "privateAddress=10.0.0.11",
        "--from", f"apiHosts={before}", "--set", f"apiHosts={after}",
    )  # fmt: skip
    change = change_section(output)
    host = "dograh-dev-api on ssh://d@10.0.0.12"
    assert f"replace {host} -> {host}" in change
    assert "runs dograh-host-h2-in-upstream" in change
    assert "+        server 10.0.0.12:8003 max_fails" in output
