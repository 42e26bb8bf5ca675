#!/bin/sh
# The gateway's command (uploaded by the dograh Pulumi program). nginx resolves upstream host
# names when it starts or reloads; a container that Docker restarts can come back with another
# address. Every few seconds this looks the names up again and reloads nginx when an address
# changed, then nginx runs in the foreground as usual.
config=/etc/nginx/nginx.conf
addresses() {
  for host in $(sed -n -e 's/^ *server \([A-Za-z0-9_-]*\):[0-9]* .*/\1/p' \
                       -e 's/^ *proxy_pass http:\/\/\([A-Za-z0-9_-]*\):[0-9]*.*/\1/p' "$config" | sort -u); do
    getent hosts "$host" || echo "unresolved $host"
  done
}
(
  sleep 5
  known=$(addresses)
  while sleep 3; do
    current=$(addresses)
    if [ "$current" != "$known" ] && nginx -s reload 2>/dev/null; then
      known=$current
    fi
  done
) &
exec nginx -g 'daemon off;'
