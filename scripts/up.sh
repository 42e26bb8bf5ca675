#!/usr/bin/env bash
# Deploy (or update) a Dograh stack: scripts/up.sh [stack] [extra pulumi up flags]
# Sets up .venv with requirements.txt, logs in to a local file state backend (./.pulumi-state)
# unless you are already logged in somewhere, selects or creates the stack (default: dev) and
# runs `pulumi up`, which shows the preview and asks before changing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
stack="${1:-dev}"
shift || true

if ! command -v pulumi >/dev/null 2>&1; then
  cat >&2 <<'MSG'
The Pulumi CLI is not installed, so nothing was deployed.
Install it, then run this command again:
  curl -fsSL https://get.pulumi.com | sh        (or: brew install pulumi/tap/pulumi)
  export PATH="$HOME/.pulumi/bin:$PATH"
The tests (scripts/test.sh) do not need it.
MSG
  exit 127
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt

if ! pulumi whoami >/dev/null 2>&1; then
  mkdir -p .pulumi-state
  echo "== no Pulumi backend login: using the local file backend in $(pwd)/.pulumi-state"
  pulumi login "file://$(pwd)/.pulumi-state"
fi

if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ] \
  && pulumi whoami --verbose 2>/dev/null | grep -q "file://"; then
  echo "Note: the file backend encrypts this stack's secrets with a passphrase; set" >&2
  echo "PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE to skip the prompt." >&2
fi

pulumi stack select --create "$stack"
pulumi up --diff "$@"
