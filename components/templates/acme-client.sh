#!/bin/sh
# The ACME client's command (uploaded by the dograh Pulumi program), run by sh in certbot's
# image. It gets a certificate for ACME_DOMAIN over HTTP-01 (challenge files in ACME_WEBROOT,
# which nginx serves), then checks it every ACME_CHECK_SECONDS and renews it when due; after
# a failure it tries again in ACME_RETRY_SECONDS. Each outcome is one line starting
# "dograh-acme:" in the container's log (pulumi up prints the first). nginx's start script
# installs what lands in /etc/letsencrypt/live/ACME_DOMAIN.
#
# `certonly --keep-until-expiring` asks the CA only for a certificate that is missing or due
# for renewal (certbot's main.py, _handle_identical_cert_request, v5.6.0): a restarted or new
# client container never asks again for one that is still valid.
set -u
live=/etc/letsencrypt/live/$ACME_DOMAIN
renewal=/etc/letsencrypt/renewal/$ACME_DOMAIN.conf
attempt=/tmp/dograh-acme-attempt.log
contact=/etc/letsencrypt/dograh-account-contact
report() { echo "dograh-acme: $*"; }
while :; do
  # A certificate from another ACME server (staging, then production) is replaced at once.
  switch=""
  if [ -f "$renewal" ] && ! grep -qxF "server = $ACME_SERVER" "$renewal"; then
    switch="--force-renewal --break-my-certs"
  fi
  # shellcheck disable=SC2086 # $switch is two flags or none
  certbot certonly --webroot --webroot-path "$ACME_WEBROOT" \
    --cert-name "$ACME_DOMAIN" --domain "$ACME_DOMAIN" --email "$ACME_EMAIL" \
    --agree-tos --no-eff-email --non-interactive --keep-until-expiring \
    --server "$ACME_SERVER" $switch >"$attempt" 2>&1
  outcome=$?
  cat "$attempt"
  valid_until=$(openssl x509 -in "$live/fullchain.pem" -noout -enddate 2>/dev/null | cut -d= -f2)
  if [ "$outcome" -eq 0 ] && [ -n "$valid_until" ]; then
    # A changed acmeEmail: the account's contact at the CA follows (certbot keeps no copy of
    # it on disk, so the last one set is noted beside the account).
    if [ "$(cat "$contact" 2>/dev/null)" != "$ACME_EMAIL" ]; then
      if certbot update_account --email "$ACME_EMAIL" --no-eff-email --non-interactive \
           --server "$ACME_SERVER" 2>&1; then
        echo "$ACME_EMAIL" >"$contact"
      else
        echo "update_account failed: the account's contact stays as it was; trying again later"
      fi
    fi
    issuer=$(openssl x509 -in "$live/fullchain.pem" -noout -issuer | sed 's/^issuer= *//')
    report "certificate for $ACME_DOMAIN issued by $issuer, valid until $valid_until;" \
      "next check in ${ACME_CHECK_SECONDS}s"
    sleep "$ACME_CHECK_SECONDS"
    continue
  fi
  why=$(grep -E 'Detail:|Error|error' "$attempt" | tail -n 1 | sed 's/^ *//')
  if [ -n "$valid_until" ]; then
    report "certificate for $ACME_DOMAIN not renewed (${why:-see above}); nginx keeps" \
      "serving the current one, valid until $valid_until; trying again in ${ACME_RETRY_SECONDS}s"
  else
    report "certificate for $ACME_DOMAIN not issued (${why:-see above}); nginx serves the" \
      "temporary self-signed certificate; trying again in ${ACME_RETRY_SECONDS}s"
  fi
  sleep "$ACME_RETRY_SECONDS"
done
