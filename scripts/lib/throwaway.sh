# Throwaway servers for the test suite and the fault run: PostgreSQL (with TLS), Redis and a
# tansu Kafka-protocol broker, each on a free loopback port, and their cleanup. Sourced by
# scripts/test and scripts/chaos; each start_* function exports the variable the tests read
# (TEST_DATABASE_URL, REDIS_URL, KAFKA_BROKERS) and returns non-zero when it cannot start.
# shellcheck shell=bash

log() { printf '==> %s\n' "$*" >&2; }

find_pg_bin() {
  local dir
  dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_throwaway_postgres() {
  local bin
  bin=$(find_pg_bin)
  if [ -z "$bin" ] && [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ]; then
    log "installing PostgreSQL with apt"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(find_pg_bin)
  fi
  [ -n "$bin" ] || return 1

  PG_TMP=$(mktemp -d /tmp/commercex-pg.XXXXXX)
  local port run_as=()
  port=$(free_port)
  # initdb and postgres refuse to run as root.
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_TMP"
    run_as=(runuser -u postgres --)
  fi
  "${run_as[@]}" "$bin/initdb" -D "$PG_TMP/data" -U postgres -A trust >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log" >&2; return 1; }
  # TLS with a throwaway CA and a server certificate for localhost from it, so clients can
  # verify the server (sslmode=verify-full).
  local tls=()
  if command -v openssl >/dev/null; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=CommerceX test CA" \
      -keyout "$PG_TMP/ca.key" -out "$PG_TMP/ca.crt" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$PG_TMP/server.key" -out "$PG_TMP/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
      >"$PG_TMP/server.ext"
    openssl x509 -req -in "$PG_TMP/server.csr" -CA "$PG_TMP/ca.crt" -CAkey "$PG_TMP/ca.key" \
      -CAcreateserial -days 2 -extfile "$PG_TMP/server.ext" -out "$PG_TMP/server.crt" >/dev/null 2>&1
    chmod 600 "$PG_TMP/server.key"
    if [ "$(id -u)" = 0 ]; then chown postgres "$PG_TMP/server.key" "$PG_TMP/server.crt"; fi
    tls=(-c ssl=on -c "ssl_cert_file=$PG_TMP/server.crt" -c "ssl_key_file=$PG_TMP/server.key")
    export TEST_DATABASE_CA="$PG_TMP/ca.crt"
  fi
  # Tests trade durability for speed; the fault run crashes the server, so it keeps every
  # commit it acknowledged (PG_DURABLE=true), as production does.
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if [ "${PG_DURABLE:-}" = "true" ]; then durability=""; fi
  "${run_as[@]}" "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
    -o "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 $durability -c max_connections=400 ${tls[*]}" \
    start >/dev/null || { cat "$PG_TMP/server.log" >&2; return 1; }
  PG_STOP=("${run_as[@]}" "$bin/pg_ctl" -D "$PG_TMP/data" -m immediate stop)
  # A crash-like restart (no checkpoint, recovery from the WAL), for the fault run.
  # shellcheck disable=SC2034 # read by scripts/chaos
  PG_RESTART="${run_as[*]} $bin/pg_ctl -D $PG_TMP/data -m immediate -w -t 60 restart"
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  log "started a throwaway PostgreSQL ($("$bin/postgres" --version)) on port $port"
}

apt_install() {
  if [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ]; then
    log "installing $* with apt"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

start_throwaway_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-server >/dev/null || return 1
  local port
  port=$(free_port)
  REDIS_TMP=$(mktemp -d /tmp/commercex-redis.XXXXXX)
  # Started the same way again after the fault run stops it.
  REDIS_START="redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --dir $REDIS_TMP \
--daemonize yes --pidfile $REDIS_TMP/redis.pid --logfile $REDIS_TMP/redis.log >/dev/null \
&& for _ in \$(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done"
  # shellcheck disable=SC2034 # read by scripts/chaos
  REDIS_STOP="redis-cli -p $port shutdown nosave >/dev/null 2>&1; true"
  sh -c "$REDIS_START"
  export REDIS_URL="redis://127.0.0.1:$port"
  log "started a throwaway Redis ($(redis-server --version | cut -d' ' -f3)) on port $port"
}

find_tansu() {
  if [ -n "${TANSU:-}" ] && [ -x "$TANSU" ]; then echo "$TANSU"; return; fi
  command -v tansu 2>/dev/null || { [ -x "$HOME/.cargo/bin/tansu" ] && echo "$HOME/.cargo/bin/tansu"; } || true
}

# The storage engines the broker is built with: memory for the test suite, SQLite (libsql)
# for the fault run, whose broker must keep its log across a stop and a start.
TANSU_FEATURES=dynostore,postgres,libsql

# Starts tansu on a free port. TANSU_STORAGE=sqlite keeps its log in a file, and exports
# KAFKA_STOP and KAFKA_START (shell commands) that stop the broker and start it again on the
# same port and file; the default, memory, loses the log when the process ends. A stopped
# broker is marked (`$KAFKA_TMP/stopped`) until it is started again, so that
# `supervise_tansu` knows a stop from a crash.
start_throwaway_tansu() {
  local tansu port storage
  tansu=$(find_tansu)
  if [ -z "$tansu" ] && [ "${CI:-}" = "true" ]; then
    # The default build has no storage engine; about 13 minutes on 2 cores, once per machine.
    log "building the tansu broker (cargo install, cached in ~/.cargo/bin)"
    CARGO_TARGET_DIR="$HOME/.cache/tansu-build" cargo install tansu --locked --features "$TANSU_FEATURES" >&2
    tansu=$(find_tansu)
  fi
  [ -n "$tansu" ] || return 1
  port=$(free_port)
  KAFKA_TMP=$(mktemp -d /tmp/commercex-tansu.XXXXXX)
  case "${TANSU_STORAGE:-memory}" in
    memory) storage=memory://tansu/ ;;
    sqlite) storage=sqlite://tansu.db ;;
    *) log "TANSU_STORAGE is memory or sqlite"; return 1 ;;
  esac
  KAFKA_START="cd $KAFKA_TMP && { $tansu broker --listener-url tcp://127.0.0.1:$port \
--advertised-listener-url tcp://127.0.0.1:$port --storage-engine $storage >>tansu.log 2>&1 & \
echo \$! >tansu.pid; rm -f stopped; }"
  # TERM, and KILL if it has not exited within 10 s; then the port is closed.
  KAFKA_STOP="touch $KAFKA_TMP/stopped; pid=\$(cat $KAFKA_TMP/tansu.pid); kill \$pid; \
for _ in \$(seq 100); do kill -0 \$pid 2>/dev/null || exit 0; sleep 0.1; done; kill -9 \$pid"
  export KAFKA_START KAFKA_STOP
  sh -c "$KAFKA_START"
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    tail -n 5 "$KAFKA_TMP/tansu.log" >&2
    log "tansu did not start with $storage (built without it? cargo install tansu --locked --features $TANSU_FEATURES)"
    return 1
  fi
  export KAFKA_BROKERS="127.0.0.1:$port" TANSU="$tansu"
  log "started a throwaway tansu broker ($("$tansu" --version 2>/dev/null | head -n 1), $storage) on port $port"
}

# Restarts the broker whenever it has exited without being stopped, or answers requests only
# with storage errors, as an orchestrator restarts a crashed container or one whose liveness
# probe fails; logs each restart to $KAFKA_TMP/restarts.log; runs until killed. (tansu 0.6's
# SQLite storage panics, "entered unreachable code" in update_group, when a client is killed
# in the middle of joining a group: the broker then exits, or stays up answering every
# request with `UnableToSend`.)
supervise_tansu() {
  local pid state seen=0 lines
  while sleep 1; do
    [ -f "$KAFKA_TMP/stopped" ] && continue
    pid=$(cat "$KAFKA_TMP/tansu.pid" 2>/dev/null) || continue
    state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    lines=$(wc -l <"$KAFKA_TMP/tansu.log")
    if [ -z "$state" ] || [[ "$state" == Z* ]]; then
      echo "$(date -u +%T) the broker (pid $pid) exited on its own" >>"$KAFKA_TMP/restarts.log"
    elif tail -n "+$((seen + 1))" "$KAFKA_TMP/tansu.log" | head -n "$((lines - seen))" | grep -q 'UnableToSend'; then
      echo "$(date -u +%T) the broker (pid $pid) answers with storage errors (UnableToSend)" >>"$KAFKA_TMP/restarts.log"
      kill -9 "$pid" 2>/dev/null || true
      sleep 0.5
    else
      seen=$lines
      continue
    fi
    seen=$(wc -l <"$KAFKA_TMP/tansu.log")
    sh -c "$KAFKA_START"
  done
}

# A tmpfs of SIZE (e.g. 64m) in $SMALL_DISK, writable by the throwaway PostgreSQL server:
# a disk that a test can fill up. Needs root.
mount_small_disk() {
  SMALL_DISK=$(mktemp -d /tmp/commercex-small-disk.XXXXXX)
  if ! mount -t tmpfs -o "size=$1" tmpfs "$SMALL_DISK" 2>/dev/null; then
    rmdir "$SMALL_DISK"
    SMALL_DISK=""
    return 1
  fi
  if [ "$(id -u)" = 0 ]; then chown postgres "$SMALL_DISK"; fi
}

cleanup() {
  if [ -n "${PG_STOP:-}" ]; then "${PG_STOP[@]}" >/dev/null 2>&1 || true; fi
  # After the server that keeps files on it has stopped.
  if [ -n "${SMALL_DISK:-}" ]; then umount "$SMALL_DISK" 2>/dev/null || true; rmdir "$SMALL_DISK" 2>/dev/null || true; fi
  if [ -n "${PG_TMP:-}" ]; then rm -rf "$PG_TMP"; fi
  if [ -n "${REDIS_TMP:-}" ]; then
    kill "$(cat "$REDIS_TMP/redis.pid" 2>/dev/null)" 2>/dev/null || true
    rm -rf "$REDIS_TMP"
  fi
  if [ -n "${KAFKA_TMP:-}" ]; then
    kill "$(cat "$KAFKA_TMP/tansu.pid" 2>/dev/null)" 2>/dev/null || true
    rm -rf "$KAFKA_TMP"
  fi
}
