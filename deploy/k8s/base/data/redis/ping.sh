#!/bin/sh
# Liveness and readiness of a Valkey server or Sentinel on port $1, with the password from
# its file (never in the environment or on the command line).
set -eu
REDISCLI_AUTH="$(cat /run/secrets/valkey/password)"
export REDISCLI_AUTH
[ "$(valkey-cli --tls --cacert /tls/ca.crt -p "$1" ping)" = "PONG" ]
