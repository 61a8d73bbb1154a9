#!/usr/bin/env bash
# What the gateway costs: calls through mcpguard-gateway against the same calls straight to its upstream.
#
#   benchmarks/gateway.sh                       # upstream: the unguarded C# sample (stateless MapMcp), echo, 32 connections
#   UPSTREAM=everything benchmarks/gateway.sh   # upstream: server-everything (Node, one stateful session)
#   CONNECTIONS=32 ROUNDS=5 DURATION=5 benchmarks/gateway.sh
#   BASELINE=1 benchmarks/gateway.sh            # also YARP's bare MapForwarder in front of the same upstream
#
# Builds Release, starts the upstream and the gateway in front of it on 127.0.0.1 (the gateway: alice's demo key, an
# in-memory store, no credits, no rate limits: the proxy's own cost), then for each round runs wrk against the gateway
# and against the upstream directly, alternating, with the same requests (benchmarks/wrk/echo*.lua). Prints every run,
# the median req/s and p50 of each, the gateway/direct ratio and the added p50, and the targets of docs/performance.md.
# Exits non-zero on errors (a process that does not start, any non-2xx or socket error), never on a missed target.
# Everything started is stopped by its process id on exit.
set -euo pipefail

UPSTREAM=${UPSTREAM:-sample}
BASELINE=${BASELINE:-0}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-3}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=benchmarks/ensure-wrk.sh
source benchmarks/ensure-wrk.sh
# shellcheck source=benchmarks/bench-server.sh
source benchmarks/bench-server.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
upstream_port=$(free_port)
gateway_port=$(free_port)
bare_port=$(free_port)
# shellcheck source=eng/processes.sh
source eng/processes.sh
processes_init mcpguard-gateway-bench

dotnet build -c Release samples/McpGuard.Sample -nologo -v quiet >/dev/null
dotnet build -c Release src/McpGuard.Gateway -nologo -v quiet >/dev/null
targets="gateway direct"
if [ "$BASELINE" = 1 ]; then
    dotnet build -c Release benchmarks/McpGuard.Benchmarks -nologo -v quiet >/dev/null
    targets="gateway yarp direct"
fi

script=echo
if [ "$UPSTREAM" = everything ]; then
    everything=tests/interop-ts/node_modules/@modelcontextprotocol/server-everything/dist/index.js
    [ -f "$everything" ] || { echo "run npm ci --prefix tests/interop-ts first" >&2; exit 2; }
    PORT=$upstream_port node "$everything" streamableHttp >"$work/upstream.log" 2>&1 &
    pids+=($!)
    script=echo-session
else
    sample=$root/samples/McpGuard.Sample/bin/Release/net10.0
    dotnet "$sample/McpGuard.Sample.dll" --contentRoot "$sample" --urls "http://127.0.0.1:$upstream_port" --Sample:Guard=false >"$work/upstream.log" 2>&1 &
    pids+=($!)
fi

cat >"$work/appsettings.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "McpGuard": {
    "Store": "InMemory",
    "Upstream": { "Url": "http://127.0.0.1:$upstream_port/mcp" },
    "Auth": {
      "Resource": "http://127.0.0.1:$gateway_port/mcp",
      "ApiKeys": { "Enabled": true, "Keys": [ { "Id": "alice", "Account": "alice", "Hash": "$(dotnet src/McpGuard.Gateway/bin/Release/net10.0/McpGuard.Gateway.dll hash mcpg_demo_alice)" } ] }
    }
  }
}
JSON
(cd "$work" && exec dotnet "$root/src/McpGuard.Gateway/bin/Release/net10.0/McpGuard.Gateway.dll" --urls "http://127.0.0.1:$gateway_port" >"$work/gateway.log" 2>&1) &
pids+=($!)
wait_for "http://127.0.0.1:$upstream_port/mcp" || exit 1
wait_for "http://127.0.0.1:$gateway_port/health" || exit 1
if [ "$BASELINE" = 1 ]; then
    (bench_server benchmarks/McpGuard.Benchmarks bare-proxy --urls "http://127.0.0.1:$bare_port" \
        --upstream "http://127.0.0.1:$upstream_port") >"$work/yarp.log" 2>&1 &
    pids+=($!)
    wait_for "http://127.0.0.1:$bare_port/mcp" || exit 1
fi

if [ "$UPSTREAM" = everything ]; then
    # One session, opened through the gateway (the session id is the upstream's): both paths call on it.
    init=$(curl -s -i "http://127.0.0.1:$gateway_port/mcp" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H 'Authorization: Bearer mcpg_demo_alice' \
        -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}' | tr -d '\r')
    MCP_SESSION_ID=$(awk 'tolower($1) == "mcp-session-id:" {print $2}' <<<"$init")
    export MCP_SESSION_ID
    curl -s -o /dev/null "http://127.0.0.1:$gateway_port/mcp" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H 'Authorization: Bearer mcpg_demo_alice' -H "Mcp-Session-Id: $MCP_SESSION_ID" -H 'MCP-Protocol-Version: 2025-06-18' \
        -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
fi

url_of() {
    case "$1" in
        gateway) echo "http://127.0.0.1:$gateway_port/mcp" ;;
        yarp) echo "http://127.0.0.1:$bare_port/mcp" ;;
        *) echo "http://127.0.0.1:$upstream_port/mcp" ;;
    esac
}
run_wrk() { # run_wrk <target> <seconds>
    local out
    out=$(timeout $(( $2 + 30 )) wrk -t2 -c"$CONNECTIONS" -d"$2"s --timeout 10s --latency -s "benchmarks/wrk/$script.lua" "$(url_of "$1")")
    grep '^RESULT' <<<"$out"
}
field() { sed -nE "s/.*[ ]$1=([^ ]+).*/\\1/p" <<<"$2"; }

echo "== commit $(git rev-parse --short HEAD); $(nproc) cores; upstream: $UPSTREAM; $CONNECTIONS connections, echo; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for target in $targets; do run_wrk "$target" "$WARMUP" >/dev/null; done
results="$work/results"
for round in $(seq 1 "$ROUNDS"); do
    for target in $targets; do
        line=$(run_wrk "$target" "$DURATION")
        if [ "$(field non2xx "$line")" != 0 ] || [ "$(field socket_errors "$line")" != 0 ]; then
            echo "errors against $target: $line" >&2
            exit 1
        fi
        printf '%-8s round %d  %10s req/s  p50 %7s ms  p99 %7s ms  load1 %s\n' "$target" "$round" "$(field rps "$line")" "$(field p50_ms "$line")" "$(field p99_ms "$line")" "$(cut -d' ' -f1 /proc/loadavg)"
        echo "$target $(field rps "$line") $(field p50_ms "$line")" >>"$results"
    done
done

awk '
    function median(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { rps[$1] = rps[$1] " " $2; p50[$1] = p50[$1] " " $3 }
    END {
        g = median(rps["gateway"]); d = median(rps["direct"]); gp = median(p50["gateway"]); dp = median(p50["direct"])
        printf "== median: gateway %.0f req/s (p50 %.3f ms), direct %.0f req/s (p50 %.3f ms)\n", g, gp, d, dp
        printf "== ratio %.2f (target 0.85); added p50 %.3f ms (target < 0.3)\n", g / d, gp - dp
        if ("yarp" in rps) {
            y = median(rps["yarp"]); yp = median(p50["yarp"])
            printf "== baseline: bare YARP %.0f req/s (p50 %.3f ms), ratio %.2f to direct; the gateway is %.2f of bare YARP, +%.3f ms p50\n", y, yp, y / d, g / y, gp - yp
        }
    }' "$results"
