#!/bin/sh
# Writes valkey.conf and sentinel.conf for this pod (the init container of commercex-redis).
# The primary is whoever the Sentinels say it is; when none answers (a new cluster), pod 0.
# Environment: REPLICAS, SENTINEL_QUORUM, SERVICE (the headless service); the password is
# the file /run/secrets/valkey/password.
set -eu

REDIS_PASSWORD="$(cat /run/secrets/valkey/password)"

pod="$(hostname)"
statefulset="${pod%-*}"
self="${pod}.${SERVICE}"
primary=""
i=0
while [ "$i" -lt "$REPLICAS" ] && [ -z "$primary" ]; do
  peer="${statefulset}-${i}.${SERVICE}"
  if [ "$peer" != "$self" ]; then
    primary="$(REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 valkey-cli --tls --cacert /tls/ca.crt \
      -h "$peer" -p 26379 SENTINEL get-master-addr-by-name commercex 2>/dev/null | head -n 1 || true)"
  fi
  i=$((i + 1))
done
primary="${primary:-${statefulset}-0.${SERVICE}}"
echo "primary: ${primary}; this pod: ${self}"

# TLS only, for clients, replication and Sentinel alike (certificate from the internal CA).
tls='tls-cert-file /tls/tls.crt
tls-key-file /tls/tls.key
tls-ca-cert-file /tls/ca.crt
tls-auth-clients no
tls-replication yes'

cat >/conf/valkey.conf <<CONF
port 0
tls-port 6379
${tls}
bind * -::*
protected-mode no
requirepass "${REDIS_PASSWORD}"
masterauth "${REDIS_PASSWORD}"
replica-announce-ip ${self}
dir /data
# Quotas, login throttles and a cache: nothing that must survive a restart.
save ""
appendonly no
maxmemory 256mb
maxmemory-policy allkeys-lru
CONF
if [ "$primary" != "$self" ]; then
  echo "replicaof ${primary} 6379" >>/conf/valkey.conf
fi

cat >/conf/sentinel.conf <<CONF
port 0
tls-port 26379
${tls}
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${self}
requirepass "${REDIS_PASSWORD}"
sentinel sentinel-pass "${REDIS_PASSWORD}"
sentinel monitor commercex ${primary} 6379 ${SENTINEL_QUORUM}
sentinel auth-pass commercex "${REDIS_PASSWORD}"
sentinel down-after-milliseconds commercex 5000
sentinel failover-timeout commercex 60000
sentinel parallel-syncs commercex 1
CONF
