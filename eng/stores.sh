#!/usr/bin/env bash
# Throwaway redis-server and PostgreSQL for scripts (sourced, not run): data in a temporary folder of their own
# (STORES_DIR, readable by the user postgres), loopback only, free ports, stopped by their process ids. Used by eng/scale-out.sh and benchmarks/compare.sh (STORE=PostgreSql).
#
#   source eng/stores.sh
#   stores_start                # sets REDIS_CONFIGURATION and PG_CONNECTION (and STORES_DIR, REDIS_PID, PG_PORT)
#   ...
#   stores_stop                 # stops both and deletes STORES_DIR; safe to call twice, and from an EXIT trap
#
# Needs redis-server and PostgreSQL's server programs (Debian: apt-get install redis-server postgresql; .ci/run installs
# both). PostgreSQL refuses to run as root: as root, its programs run as the user postgres (runuser).

stores_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stores_pg_bin() {
    local dir
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return
    fi
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$dir" ]; then
        echo "stores: PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql" >&2
        return 1
    fi
    echo "$dir"
}

stores_as_pg() { # run a PostgreSQL program as a user PostgreSQL accepts
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stores_start() {
    local work bin i
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "stores: redis-server is not installed: apt-get install redis-server" >&2
        return 1
    fi
    bin=$(stores_pg_bin) || return 1

    STORES_DIR=$(mktemp -d -t mcpguard-stores.XXXXXX)
    chmod 755 "$STORES_DIR"   # PostgreSQL runs as postgres when this script runs as root: it must reach its data
    work=$STORES_DIR
    mkdir -p "$work/redis"
    REDIS_PORT=$(stores_free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work/redis" \
        --logfile "$work/redis/redis.log" --daemonize no >/dev/null 2>&1 &
    REDIS_PID=$!
    for i in $(seq 1 50); do
        if redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then break; fi
        if [ "$i" -eq 50 ]; then echo "stores: redis-server did not start" >&2; cat "$work/redis/redis.log" >&2; return 1; fi
        sleep 0.1
    done
    REDIS_CONFIGURATION="127.0.0.1:$REDIS_PORT"

    PG_DATA="$work/pg/data"
    PG_SOCKETS="$work/pg/sockets"
    mkdir -p "$PG_DATA" "$PG_SOCKETS"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$work/pg"; fi
    PG_BIN=$bin
    PG_PORT=$(stores_free_port)
    stores_as_pg "$bin/initdb" -D "$PG_DATA" -U postgres -A trust --no-sync >"$work/pg/initdb.log" 2>&1 \
        || { echo "stores: initdb failed" >&2; cat "$work/pg/initdb.log" >&2; return 1; }
    stores_as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$work/pg/postgres.log" -w -t 30 \
        -o "-p $PG_PORT -k $PG_SOCKETS -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
        || { echo "stores: PostgreSQL did not start" >&2; cat "$work/pg/postgres.log" >&2; return 1; }
    stores_as_pg "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres mcpguard
    PG_CONNECTION="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=mcpguard"
    export STORES_DIR REDIS_PORT REDIS_PID REDIS_CONFIGURATION PG_DATA PG_PORT PG_BIN PG_CONNECTION
}

stores_stop() {
    if [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        stores_as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    if [ -n "${REDIS_PID:-}" ] && kill -0 "$REDIS_PID" 2>/dev/null; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    REDIS_PID=""
    PG_DATA=""
    if [ -n "${STORES_DIR:-}" ]; then rm -rf "$STORES_DIR"; fi
    STORES_DIR=""
}
