#!/usr/bin/env bash
# Try McpGuard scaled out, on this machine: a throwaway redis-server and PostgreSQL (data in a temporary folder,
# loopback, free ports) and two instances of the sample sharing them, on http://127.0.0.1:5081/mcp and :5082/mcp.
#
#   eng/scale-out.sh            # start everything, print how to call it, stop everything on Ctrl+C
#   eng/scale-out.sh --demo     # start, show one rate limit, one balance and one key revocation across the two, stop
#   PORTS="6081 6082" eng/scale-out.sh
#
# Both instances run the sample's appsettings.json with McpGuard:Store=PostgreSql and McpGuard:RateLimits:Store=Redis
# given on the command line, the way you would give them to your own server. Needs the .NET 10 SDK, redis-server and
# PostgreSQL (Debian: apt-get install redis-server postgresql). Everything started is stopped by its process id on exit.
set -euo pipefail

DEMO=0
case "${1:-}" in
    "") ;;
    --demo) DEMO=1 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--demo]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=eng/stores.sh
source eng/stores.sh

read -r port_a port_b <<<"${PORTS:-5081 5082}"
work=$(mktemp -d -t mcpguard-scale-out.XXXXXX)
pids=()

cleanup() {
    local p
    for p in "${pids[@]}"; do
        if kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null || true; fi
    done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    stores_stop
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building the sample"
dotnet build -c Release samples/McpGuard.Sample -nologo -v quiet >/dev/null
dll=samples/McpGuard.Sample/bin/Release/net10.0/McpGuard.Sample.dll
content_root=$(cd "$(dirname "$dll")" && pwd)

echo "== starting redis-server and PostgreSQL"
stores_start
echo "redis-server on $REDIS_CONFIGURATION; PostgreSQL: $PG_CONNECTION (data in $STORES_DIR)"

for port in "$port_a" "$port_b"; do
    dotnet "$dll" --contentRoot "$content_root" --urls "http://127.0.0.1:$port" \
        --McpGuard:Auth:Resource="http://127.0.0.1:$port/mcp" \
        --McpGuard:Store=PostgreSql --McpGuard:PostgreSql:ConnectionString="$PG_CONNECTION" \
        --McpGuard:RateLimits:Store=Redis --McpGuard:Redis:Configuration="$REDIS_CONFIGURATION" \
        >"$work/sample-$port.log" 2>&1 &
    pids+=($!)
done

for port in "$port_a" "$port_b"; do
    for i in $(seq 1 150); do
        if curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/health"; then break; fi
        if [ "$i" -eq 150 ]; then echo "the sample on $port did not start:" >&2; cat "$work/sample-$port.log" >&2; exit 1; fi
        sleep 0.2
    done
done
echo "== two instances: http://127.0.0.1:$port_a/mcp and http://127.0.0.1:$port_b/mcp"

if [ "$DEMO" -eq 0 ]; then
    cat <<MSG
Call either one; both count the same limits and spend the same balances. For example:

  curl -s -o /dev/null -w '%{http_code} %header{ratelimit}\n' http://127.0.0.1:$port_a/mcp -H 'Authorization: Bearer mcpg_demo_alice' \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3}}}'
  curl -s http://127.0.0.1:$port_b/health

Logs: $work/sample-$port_a.log, $work/sample-$port_b.log. Ctrl+C stops everything.
MSG
    while kill -0 "${pids[0]}" 2>/dev/null && kill -0 "${pids[1]}" 2>/dev/null; do sleep 1; done
    echo "an instance stopped:" >&2
    tail -n 20 "$work"/sample-*.log >&2
    exit 1
fi

# --- the demo: each step prints what the instances answered, and fails when they disagree with one store ---
expect() { # expect <what> <pattern> <answer>
    grep -q -- "$2" <<<"$3" || { echo "demo: $1 answered '$3', expected '$2'" >&2; exit 1; }
}
mcp() { # mcp <port> <key> <tool> <arguments>: prints "<status> <ratelimit header> balance <balance header>"
    curl -s -o /dev/null -m 10 -w "%{http_code} %header{ratelimit} balance %header{mcpguard-balance-micro}\n" "http://127.0.0.1:$1/mcp" \
        -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$3\",\"arguments\":$4}}"
}
admin() { # admin <port> <method> <path> [json]
    curl -s -m 10 -X "$2" "http://127.0.0.1:$1/admin$3" -H 'Authorization: Bearer mcpg_demo_admin' -H 'Content-Type: application/json' ${4:+-d "$4"}
}

# The minute window is aligned to the clock: start its 31 calls early in a minute, so they all fall in one window.
second=$((10#$(date +%S)))
if [ "$second" -gt 40 ]; then sleep $((61 - second)); fi

echo
echo "-- add allows 30 calls a minute per account, counted in Redis: Alice calls A, B, A, B ..."
for i in $(seq 1 31); do
    if [ $((i % 2)) -eq 1 ]; then port=$port_a; else port=$port_b; fi
    answer=$(mcp "$port" mcpg_demo_alice add '{"a":2,"b":3}')
    if [ "$i" -le 30 ]; then expect "call $i" '^200 ' "$answer"; else expect "call $i" '^429 ' "$answer"; fi
    if [ "$i" -le 2 ] || [ "$i" -ge 30 ]; then printf 'call %2d on %s: %s\n' "$i" "$port" "$answer"; fi
done

echo
echo "-- one balance in PostgreSQL: Bob tops up through A, and B charges the new balance"
admin "$port_a" POST /accounts/bob/topup '{"amount_micro":10000}' >/dev/null
for i in 1 2 3; do mcp "$port_b" mcpg_demo_bob add '{"a":1,"b":1}' >/dev/null; done   # his three free calls
answer=$(mcp "$port_b" mcpg_demo_bob add '{"a":1,"b":1}')
expect "bob's first paid call" 'balance 9440$' "$answer"
echo "bob's first paid add on $port_b: $answer"
answer=$(mcp "$port_a" mcpg_demo_bob add '{"a":1,"b":1}')
expect "bob's second paid call" 'balance 8640$' "$answer"
echo "bob's next add on $port_a:       $answer"

echo
echo "-- a key made on A works on B; revoked on A, B refuses it within a second"
created=$(admin "$port_a" POST /keys '{"account":"bob","scopes":["tools:basic"]}')
key=$(sed -n 's/.*"key":"\([^"]*\)".*/\1/p' <<<"$created")
id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$created")
[ -n "$key" ] && [ -n "$id" ] || { echo "the admin API did not make a key: $created" >&2; exit 1; }
answer=$(mcp "$port_b" "$key" echo '{"message":"hi"}')
expect "the new key" '^200 ' "$answer"
echo "new key on $port_b: $answer"
admin "$port_a" POST "/keys/$id/revoke" >/dev/null
start=$(date +%s%N)
while :; do
    status=$(mcp "$port_b" "$key" echo '{"message":"hi"}')
    if [ "${status%% *}" = 401 ]; then break; fi
    if [ $(( ($(date +%s%N) - start) / 1000000 )) -gt 1000 ]; then echo "B still accepted the revoked key after 1 s: $status" >&2; exit 1; fi
    sleep 0.05
done
echo "revoked key on $port_b: $status (within 1 s)"
