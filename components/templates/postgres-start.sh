# The postgres container's command (set by the dograh Pulumi program; runs under the image's
# own entrypoint). postgres keeps the password it was initialised with in its data volume and
# ignores POSTGRES_PASSWORD afterwards. This starts the image's entrypoint as usual and, once
# the server answers on its local socket (trusted inside the container, as the image's initdb
# sets it up), makes the role's password the configured one, so a changed postgresPassword
# takes effect. psql reads the password from the environment (\getenv): it is never on a
# command line. Stop signals are passed on, for postgres's clean shutdown.
docker-entrypoint.sh postgres &
server=$!
trap 'kill -INT "$server"' INT TERM
until printf '%s\n' '\getenv password POSTGRES_PASSWORD' \
    "ALTER ROLE \"$POSTGRES_USER\" PASSWORD :'password';" |
  psql -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres \
    >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || break
  sleep 1
done
while kill -0 "$server" 2>/dev/null; do wait "$server"; done
wait "$server"
