#!/bin/sh
# The gateway's command (uploaded by the dograh Pulumi program): sh dograh-gateway-start CONFIG
# 1. Wait for CONFIG. With rolloutStrategy=zeroDowntime a new gateway is created without it
#    and the program's reload step writes it, so a gateway never starts with a stale config.
# 2. Wait (up to two minutes) until the upstream names resolve: after a host reboot the api may
#    come back after nginx, and nginx refuses to start on a name it cannot resolve.
# 3. nginx resolves upstream names when it starts or reloads, and a container that Docker
#    restarts can come back at another address: every few seconds look the names up again and
#    reload nginx when an address changed. nginx itself runs in the foreground.
config=$1
until [ -s "$config" ]; do
  [ $((waited = ${waited:-0} + 1)) -eq 1 ] && echo "waiting for $config from pulumi up" >&2
  sleep 0.2
done
addresses() {
  for host in $(sed -n -e 's/^ *server \([A-Za-z0-9_-]*\):[0-9]* .*/\1/p' \
                       -e 's/^ *proxy_pass http:\/\/\([A-Za-z0-9_-]*\):[0-9]*.*/\1/p' "$config" | sort -u); do
    getent hosts "$host" || echo "unresolved $host"
  done
}
tries=0
while addresses | grep -q '^unresolved' && [ $((tries += 1)) -le 600 ]; do
  sleep 0.2
done
(
  sleep 5
  known=$(addresses)
  while sleep 3; do
    current=$(addresses)
    if [ "$current" != "$known" ] && nginx -c "$config" -s reload 2>/dev/null; then
      known=$current
    fi
  done
) &
exec nginx -c "$config" -g 'daemon off;'
