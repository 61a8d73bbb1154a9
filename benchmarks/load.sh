#!/usr/bin/env bash
# Load run: the guarded sample's priced `add` against its free `echo`, in the same run, on loopback.
#
#   benchmarks/load.sh                          # 1, 8 and 32 connections, E A E A, 4 s each
#   CONNECTIONS=32 DURATION=5 ROUNDS=3 benchmarks/load.sh
#
# Builds Release, starts samples/McpGuard.Sample on 127.0.0.1 with a fresh SQLite ledger in a temp dir, rate
# limits raised so they never cap the run and alice's balance and cap large enough for every call, then drives
# `tools/call echo` and `tools/call add` as alice with wrk (benchmarks/wrk/*.lua). Runs alternate echo and add
# (E A E A …) so machine noise hits both. Prints requests/s, p50 and p99 per run and per tool, the add/echo
# ratio and non-2xx counts, then reads the ledger: one usage row per add the server answered, and refunds only for
# calls cut off when a wrk run ends (a charged call whose client goes away is refunded).
# The server is stopped (by its PID) on every exit.
set -euo pipefail

DURATION=${DURATION:-4}                # seconds per wrk run
CONNECTIONS=${CONNECTIONS:-"1 8 32"}   # space-separated connection counts
ROUNDS=${ROUNDS:-2}                    # echo/add pairs per connection count
WARMUP=${WARMUP:-2}                    # seconds of unreported warm-up per tool
PORT=${PORT:-}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# shellcheck source=benchmarks/ensure-wrk.sh
source benchmarks/ensure-wrk.sh
# shellcheck source=benchmarks/unlimited.sh
source benchmarks/unlimited.sh

echo "== building Release"
dotnet build -c Release samples/McpGuard.Sample -nologo -v quiet >/dev/null
dll=samples/McpGuard.Sample/bin/Release/net10.0/McpGuard.Sample.dll
content_root=$(cd "$(dirname "$dll")" && pwd)   # the sample's appsettings.json sits next to it

if [ -z "$PORT" ]; then
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null || echo 5097)
fi
url="http://127.0.0.1:$PORT/mcp"
work=$(mktemp -d -t mcpguard-load.XXXXXX)
db="$work/ledger.db"
pid=""

stop_server() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    pid=""
}

cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting the sample on $url (ledger $db)"
dotnet "$dll" --contentRoot "$content_root" --urls "http://127.0.0.1:$PORT" \
    --McpGuard:Store=Sqlite \
    --McpGuard:SqlitePath="$db" \
    "${UNLIMITED_ARGS[@]}" \
    >"$work/server.log" 2>&1 &
pid=$!

call() { # call <tool-lua-name>: one request with the same body and headers wrk sends
    local body
    body=$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "benchmarks/wrk/$1.lua")
    curl -s -m 10 -w '\nHTTP %{http_code}\n' "$url" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H 'Authorization: Bearer mcpg_demo_alice' -d "$body"
}

for i in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "the sample exited during start-up:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    if call echo 2>/dev/null | grep -q '^HTTP 200$'; then break; fi
    if [ "$i" -eq 150 ]; then echo "the sample did not answer within 30 s" >&2; cat "$work/server.log" >&2; exit 1; fi
    sleep 0.2
done

echo "== smoke check"
echo_out=$(call echo)
add_out=$(call add)
echo "$echo_out" | grep -q '"text":"hello"' || { echo "echo did not answer as expected:" >&2; echo "$echo_out" >&2; exit 1; }
echo "$add_out" | grep -q '"text":"5"' || { echo "add did not answer as expected:" >&2; echo "$add_out" >&2; exit 1; }
echo "echo and add both answer 200 with their results"

run_wrk() { # run_wrk <tool> <connections> <seconds>: prints wrk's RESULT line
    local threads=$(( $2 < 2 ? $2 : 2 ))
    timeout $(( $3 + 30 )) wrk -t"$threads" -c"$2" -d"$3"s --latency -s "benchmarks/wrk/$1.lua" "$url" | grep '^RESULT'
}

field() { # field <name> <RESULT line>
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}

results="$work/results.tsv"
: >"$results"
add_requests=0
for c in $CONNECTIONS; do
    echo "== $c connections: warm-up ${WARMUP}s each, then $ROUNDS x (echo, add) of ${DURATION}s"
    for tool in echo add; do
        line=$(run_wrk "$tool" "$c" "$WARMUP")
        if [ "$tool" = add ]; then add_requests=$(( add_requests + $(field requests "$line") )); fi
    done
    printf '%-6s %-5s %5s %10s %9s %9s %8s %7s\n' conns tool round "req/s" "p50 ms" "p99 ms" non2xx sockerr
    for round in $(seq 1 "$ROUNDS"); do
        for tool in echo add; do
            line=$(run_wrk "$tool" "$c" "$DURATION")
            printf '%-6s %-5s %5s %10s %9s %9s %8s %7s\n' "$c" "$tool" "$round" "$(field rps "$line")" "$(field p50_ms "$line")" \
                "$(field p99_ms "$line")" "$(field non2xx "$line")" "$(field socket_errors "$line")"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$tool" "$(field requests "$line")" "$(field seconds "$line")" \
                "$(field p50_ms "$line")" "$(field p99_ms "$line")" "$(field non2xx "$line")" "$(field socket_errors "$line")" >>"$results"
            if [ "$tool" = add ]; then add_requests=$(( add_requests + $(field requests "$line") )); fi
        done
    done
done

echo
echo "== summary (req/s = all requests / all seconds of the tool's runs; p50/p99 = mean over its runs)"
awk -F'\t' '
    { k = $1 SUBSEP $2; req[k] += $3; sec[k] += $4; p50[k] += $5; p99[k] += $6; n[k]++; bad[k] += $7 + $8; seen[$1] = 1 }
    END {
        printf "%-6s %10s %9s %9s %10s %9s %9s %8s %10s\n", "conns", "echo r/s", "echo p50", "echo p99", "add r/s", "add p50", "add p99", "non2xx", "add/echo"
        for (c in seen) {
            e = c SUBSEP "echo"; a = c SUBSEP "add"
            er = req[e] / sec[e]; ar = req[a] / sec[a]
            printf "%-6s %10.0f %9.2f %9.2f %10.0f %9.2f %9.2f %8d %9.1f%%\n", c, er, p50[e] / n[e], p99[e] / n[e], ar, p50[a] / n[a], p99[a] / n[a], bad[e] + bad[a], 100 * ar / er
        }
    }' "$results" | sort -n

stop_server
if command -v python3 >/dev/null 2>&1; then
    python3 - "$db" "$add_requests" <<'EOF'
import sqlite3, sys
db, counted = sys.argv[1], int(sys.argv[2])
rows = dict(sqlite3.connect(db).execute("SELECT kind, COUNT(*) FROM ledger WHERE tool = 'add' GROUP BY kind").fetchall())
usage, refunds = rows.get("Usage", 0), rows.get("Refund", 0)
# wrk counts the answers it read; calls in flight when a run ends were still charged (and answered) by the server.
print(f"ledger: {usage} add charges, {refunds} refunds; wrk read {counted} add answers (+1 smoke check); "
      f"charged - refunded - read = {usage - refunds - counted - 1} answered after wrk stopped reading")
EOF
fi
