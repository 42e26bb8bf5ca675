#!/bin/bash
# Like Dograh's api start script: migrations, then every process in the background; when any
# of them exits, the container exits (the restart policy brings it back).
set -euo pipefail
workers="${FASTAPI_WORKERS:-1}"
base_port="${UVICORN_BASE_PORT:-8000}"
python3 /opt/dograh/migrate.py
if [ "${ENABLE_ARI_MANAGER:-true}" = "true" ]; then
  python3 /opt/dograh/singleton.py ari_manager &
fi
if [ "${ENABLE_CAMPAIGN_ORCHESTRATOR:-true}" = "true" ]; then
  python3 /opt/dograh/singleton.py campaign_orchestrator &
fi
for ((i = 0; i < workers; i++)); do
  WORKER_INDEX="$i" WORKER_PORT="$((base_port + i))" \
    python3 -m uvicorn app:app --host 0.0.0.0 --port "$((base_port + i))" \
      --proxy-headers --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" \
      --log-level warning &
done
for ((i = 0; i < ${ARQ_WORKERS:-1}; i++)); do
  python3 /opt/dograh/singleton.py "arq_worker_$i" --not-exclusive &
done
trap 'kill -TERM $(jobs -p) 2>/dev/null; wait' TERM INT
wait -n
echo "a process exited; stopping the container" >&2
exit 1
