#!/usr/bin/env bash
# Makes what the compose stack reads from ./secrets (never committed): passwords, the access
# token signing key, the database and Redis URLs, and a throwaway internal CA with a
# certificate for every service (mutual TLS between them, as on Kubernetes), PostgreSQL and
# Valkey.
# Run once before `docker compose up`; running it again keeps what exists.
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
cd secrets

random() { [ -s "$1" ] || openssl rand -hex 24 >"$1"; }
random postgres-password
random redis-password
random admin-password
[ -s signing-key.pem ] || openssl genpkey -algorithm ed25519 -out signing-key.pem 2>/dev/null
# Orders seals payment tokens with it, payments opens them: the same file for both.
[ -s payment-token-keys ] || openssl rand -base64 32 >payment-token-keys
# Webhooks seals its endpoints' signing secrets at rest with it.
[ -s webhook-secret-keys ] || openssl rand -base64 32 >webhook-secret-keys
# The storefront's session cookie is encrypted under it.
[ -s web-session-secret ] || openssl rand -base64 48 >web-session-secret
printf 'postgres://commercex:%s@postgres:5432/commercex?sslmode=verify-full&sslrootcert=/run/secrets/ca.pem\n' \
  "$(cat postgres-password)" >database-url
printf 'rediss://:%s@redis:6379\n' "$(cat redis-password)" >redis-url

if [ ! -s ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=CommerceX compose CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
fi
for name in gateway web users catalog inventory orders payments webhooks postgres redis; do
  [ -s "$name.pem" ] && continue
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$name-key.pem" -out "$name.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' "$name" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 90 \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
done
# The containers run as other users than yours: let them read (the directory stays private).
chmod 0644 ./*
echo "secrets and certificates are in $(pwd); the admin is admin@example.com, password: $(cat admin-password)"
