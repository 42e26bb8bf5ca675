#!/bin/sh
# The official image's entrypoint contract (docker-library/redis docker-entrypoint.sh):
# - a first argument that is an option (starts with '-') or a config file (ends in '.conf')
#   is for redis-server, so `redis-server` is put in front of the command line;
# - a `redis-server` command started as root first hands every file under the working
#   directory (/data) that redis does not own to redis, then runs this script again as the
#   redis user in the same process (gosu there, setpriv here: both exec, so the server keeps
#   the pid Docker started and receives its signals directly);
# - with the default umask 0022 the server gets 0077 (its files readable by redis only);
# - any other command (`sh -c ...`, `redis-cli`, ...) runs as given, as whoever started it.
set -e

case "$1" in
  -*|*.conf) set -- redis-server "$@" ;;
esac

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . ! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "$(umask)" = 0022 ]; then
  umask 0077
fi

exec "$@"
