#!/bin/sh
# The gateway's command with tlsMode=letsEncrypt (uploaded by the dograh Pulumi program):
#   sh dograh-gateway-certificates CONFIG ISSUED_DIR CERTIFICATE PRIVATE_KEY
# nginx serves CERTIFICATE and PRIVATE_KEY: first the temporary self-signed pair pulumi up
# uploaded, then the pair the ACME client issues into ISSUED_DIR (certbot's live/<domain>:
# fullchain.pem and privkey.pem, on the certificate volume mounted read-only). A new pair is
# copied in before nginx starts and, every few seconds after, checked with `nginx -t` (a
# renewal caught half-written is put back and tried again) and loaded with a graceful
# reload: open connections, calls included, finish on the old workers. Then the gateway's
# usual start script runs nginx.
config=$1 issued=$2 certificate=$3 key=$4
installed=""
install_issued() {
  [ -s "$issued/fullchain.pem" ] && [ -s "$issued/privkey.pem" ] || return 1
  sum=$(cat "$issued/fullchain.pem" "$issued/privkey.pem" | cksum)
  [ "$sum" != "$installed" ] || return 1
  cp "$certificate" "$certificate.previous" && cp "$key" "$key.previous" || return 1
  cp "$issued/fullchain.pem" "$certificate.next" && cp "$issued/privkey.pem" "$key.next" &&
    mv "$certificate.next" "$certificate" && mv "$key.next" "$key" || return 1
  if [ -s "$config" ] && ! nginx -t -q -c "$config" 2>/dev/null; then
    mv "$certificate.previous" "$certificate"
    mv "$key.previous" "$key"
    echo "dograh-gateway: the certificate in $issued does not load yet; trying again" >&2
    return 1
  fi
  installed=$sum
  echo "dograh-gateway: serving the certificate issued into $issued" >&2
}
install_issued
(
  while sleep 5; do
    if install_issued && [ -s /var/run/nginx.pid ]; then
      nginx -c "$config" -s reload
    fi
  done
) &
exec sh "$(dirname "$0")/dograh-gateway-start" "$config"
