#!/usr/bin/env bash
# Stand-in for Dograh's scripts/run_migrate.sh (test only; shipped from release 1.40.0 on, the
# Dockerfile removes it below): the migrations alone, as Helm's migrate Job runs them.
set -euo pipefail

BASE_DIR="$(cd "$(dirname "$(dirname "${BASH_SOURCE[0]}")")" && pwd)"
if [[ -f "$BASE_DIR/api/.env" ]]; then
  set -a
  . "$BASE_DIR/api/.env"
  set +a
fi
cd "$BASE_DIR"
exec alembic -c "$BASE_DIR/api/alembic.ini" upgrade head
