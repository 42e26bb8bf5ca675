#!/usr/bin/env bash
# Stand-in for Dograh's scripts/start_services_docker.sh (test only; our own script, same
# behaviour at the release recorded in /app/.standin-release):
# - `set -e`; an api/.env file, if mounted, is loaded; `alembic upgrade head` runs first;
# - ari_manager and campaign_orchestrator start in the background: ALWAYS below 1.45.0, and
#   from 1.45.0 only when ENABLE_ARI_MANAGER / ENABLE_CAMPAIGN_ORCHESTRATOR (default "true")
#   are "true" (Dograh commit a9379406);
# - FASTAPI_WORKERS (default 1) uvicorn processes on UVICORN_BASE_PORT+i (default 8000) with
#   no proxy flags (uvicorn reads FORWARDED_ALLOW_IPS itself), and ARQ_WORKERS (default 1)
#   arq workers;
# - TERM/INT: TERM to every child, wait for them, exit 0;
# - `wait -n`: when any child exits, the others get TERM and the script exits; when that child
#   failed, `set -e` ends the script at once instead (the container exits either way).
set -e

BASE_DIR="$(cd "$(dirname "$(dirname "${BASH_SOURCE[0]}")")" && pwd)"
ENV_FILE="$BASE_DIR/api/.env"
RELEASE="$(cat "$BASE_DIR/.standin-release")"

ARQ_WORKERS=${ARQ_WORKERS:-1}
FASTAPI_WORKERS=${FASTAPI_WORKERS:-1}
UVICORN_BASE_PORT=${UVICORN_BASE_PORT:-8000}

release_number() {
  local IFS=.
  # shellcheck disable=SC2086
  set -- $1
  echo $(( $1 * 1000000 + $2 * 1000 + $3 ))
}

cd "$BASE_DIR"
echo "api stand-in for Dograh $RELEASE starting at $(date) in $BASE_DIR"

if [[ -f "$ENV_FILE" ]]; then
  set -a
  . "$ENV_FILE"
  set +a
fi

alembic -c "$BASE_DIR/api/alembic.ini" upgrade head

children=()

stop_children() {
  echo "stopping every service"
  for pid in "${children[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  wait
  exit 0
}
trap stop_children TERM INT

launch() {
  local label=$1
  shift
  "$@" &
  children+=($!)
  echo "started $label (pid $!)"
}

if (( $(release_number "$RELEASE") >= $(release_number 1.45.0) )); then
  ENABLE_ARI_MANAGER=${ENABLE_ARI_MANAGER:-true}
  ENABLE_CAMPAIGN_ORCHESTRATOR=${ENABLE_CAMPAIGN_ORCHESTRATOR:-true}
else
  # Releases before 1.45.0 do not read the switches.
  ENABLE_ARI_MANAGER=true
  ENABLE_CAMPAIGN_ORCHESTRATOR=true
fi

if [[ "$ENABLE_ARI_MANAGER" == "true" ]]; then
  launch ari_manager python -m api.services.telephony.ari_manager
else
  echo "ari_manager not started (ENABLE_ARI_MANAGER=$ENABLE_ARI_MANAGER)"
fi
if [[ "$ENABLE_CAMPAIGN_ORCHESTRATOR" == "true" ]]; then
  launch campaign_orchestrator python -m api.services.campaign.campaign_orchestrator
else
  echo "campaign_orchestrator not started (ENABLE_CAMPAIGN_ORCHESTRATOR=$ENABLE_CAMPAIGN_ORCHESTRATOR)"
fi

for ((i = 0; i < FASTAPI_WORKERS; i++)); do
  launch "uvicorn$i" uvicorn api.app:app --host 0.0.0.0 --port "$((UVICORN_BASE_PORT + i))" --workers 1
done

for ((i = 1; i <= ARQ_WORKERS; i++)); do
  launch "arq$i" python -m arq api.tasks.arq.WorkerSettings --custom-log-dict api.tasks.arq.LOG_CONFIG
done

wait -n
echo "a service exited; stopping the container"
stop_children
