#!/bin/bash
# The official image's entrypoint contract (docker-library/postgres docker-entrypoint.sh):
# - arguments starting with '-' are postgres flags (`postgres` is put in front);
# - only a command of `postgres` initialises anything: as root it prepares the data directory
#   and runs itself again as the postgres user in the same process (gosu there, setpriv here:
#   both exec, so the server keeps the pid its parent started, and signals sent to that pid
#   reach it); as postgres, on an empty data directory, initdb with POSTGRES_USER and
#   POSTGRES_PASSWORD (local socket connections trusted, as initdb leaves them, remote ones
#   scram-sha-256) and create POSTGRES_DB;
# - any other command runs as given (as root), with no initialisation.
set -euo pipefail
if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") >/dev/null
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    pg_ctl -D "$PGDATA" -w start -o "-c listen_addresses=''" >/dev/null
    psql -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
    pg_ctl -D "$PGDATA" -w stop >/dev/null
  fi
fi
exec "$@" -D "$PGDATA" -c listen_addresses='*'
