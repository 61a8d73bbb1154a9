#!/usr/bin/env bash
# What the guard costs: the sample with the guard on against the same sample with it off, same calls, same machine.
#
#   benchmarks/compare.sh                 # concurrency: echo and add at 1, 8, 32 and 128 connections (about 4 minutes)
#   benchmarks/compare.sh --sizes         # body size: echo with ~1 KB, 64 KB and ~1 MB bodies at 8 connections (2 minutes)
#   benchmarks/compare.sh --all           # both
#   CONNECTIONS="32" TOOLS=echo ROUNDS=5 DURATION=5 benchmarks/compare.sh
#   REV=HEAD benchmarks/compare.sh        # measure a commit (exported with git archive), not the working tree
#   GUARD_ARGS="--McpGuard:Credits:Enabled=false" benchmarks/compare.sh   # the guarded server with more configuration
#   TOGETHER=1 CONNECTIONS=32 benchmarks/compare.sh   # both servers under load at once (one wrk thread each) instead of
#                                         # in turn: the machine's drift hits both alike; read the CPU per request
#   GUARDED=floor CONNECTIONS=32 TOOLS=add benchmarks/compare.sh   # the floor under the guard: instead of the guarded
#                                         # sample, the benchmarks' guard-floor server (an API-key authentication scheme and
#                                         # a durable SQLite charge in front of the same MapMcp() server, none of McpGuard's gates;
#                                         # with STORE=PostgreSql the charge is on PostgreSQL and the add call's windows on Redis)
#   STORE=PostgreSql CONNECTIONS=32 benchmarks/compare.sh   # scaled out: ledger, keys and statuses on PostgreSQL,
#                                         # counters on Redis (a throwaway redis-server and PostgreSQL, eng/stores.sh)
#
# Installs wrk with apt-get when it is missing, builds Release and starts samples/McpGuard.Sample twice on 127.0.0.1:
#   guarded    Sample:Guard=true, SQLite ledger in a fresh temp dir, rate limits raised so they never cap the run,
#              alice's balance and monthly cap large enough for every call (echo is free, add costs 800 µ);
#   unguarded  Sample:Guard=false: the same MCP server and tools with no guard at all (no auth, no limits, no price).
# wrk sends the same requests, headers included, to both (benchmarks/wrk/*.lua). For each connection count (or body
# size) and tool, both servers get a warm-up, then ROUNDS runs each, alternating guarded, unguarded, guarded, … so
# machine noise hits both. It prints every run, then per row the median req/s, p50, p99 and server CPU per request
# of each server, the guarded/unguarded throughput ratio (of the medians, with the range of the per-round paired
# ratios), the added p50 and CPU (guarded − unguarded) and the non-2xx and socket-error count, and checks the targets
# in docs/performance.md.
# Each run's line ends with the 1-minute load average after it: on a shared machine, read the figures with it.
# Exits non-zero on errors (a server that does not start or answers wrongly, any non-2xx or socket error), never on a
# missed target. Both servers are stopped by their PIDs on every exit.
set -euo pipefail

MODE=concurrency
case "${1:-}" in
    "" | --concurrency) ;;
    --sizes) MODE=sizes ;;
    --all) MODE=all ;;
    -h | --help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--concurrency | --sizes | --all]" >&2; exit 2 ;;
esac

DURATION=${DURATION:-4}                            # seconds per measured wrk run
ROUNDS=${ROUNDS:-3}                                # guarded/unguarded pairs per row
WARMUP=${WARMUP:-2}                                # seconds of unreported warm-up per server and row
JIT_WARMUP=${JIT_WARMUP:-5}                        # seconds per server and tool at 8 connections, before anything else
CONNECTIONS=${CONNECTIONS:-"1 8 32 128"}           # concurrency mode: connection counts
TOOLS=${TOOLS:-"echo add"}                         # concurrency mode: tools
SIZES=${SIZES:-"1024 65536 1000000"}               # sizes mode: request body bytes (the guard's default limit is 1 MiB)
SIZE_CONNECTIONS=${SIZE_CONNECTIONS:-8}            # sizes mode: connections
STORE=${STORE:-Sqlite}                             # the guarded server's stores: Sqlite (the sample's), InMemory or PostgreSql (+ Redis)
REV=${REV:-}                                       # a commit to measure instead of the working tree (needs Sample:Guard)
GUARD_ARGS=${GUARD_ARGS:-}                         # more configuration for the guarded server, e.g. "--McpGuard:Credits:Enabled=false"
TOGETHER=${TOGETHER:-0}                            # 1: each round loads both servers at once, each with its own wrk
GUARDED=${GUARDED:-sample}                         # sample: the guarded sample; floor: the benchmarks' guard-floor server
                                                   # (GUARD_ARGS then takes it apart: "--auth false", "--charge false", "--tool echo")
case "$GUARDED" in sample | floor) ;; *) echo "GUARDED must be sample or floor (got '$GUARDED')" >&2; exit 2 ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# shellcheck source=benchmarks/ensure-wrk.sh
source benchmarks/ensure-wrk.sh
# shellcheck source=benchmarks/unlimited.sh
source benchmarks/unlimited.sh
# shellcheck source=benchmarks/bench-server.sh
source benchmarks/bench-server.sh


free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null || echo "$1"
}
guarded_port=$(free_port 5097)
open_port=$(free_port 5098)
work=$(mktemp -d -t mcpguard-compare.XXXXXX)
guarded_pid=""
open_pid=""

stop() { # stop <pid>: TERM, wait up to 10 s, then KILL
    local p=$1
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
        kill "$p" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    fi
}

stores_started=0
cleanup() {
    stop "$guarded_pid"
    stop "$open_pid"
    if [ "$stores_started" -eq 1 ]; then stores_stop; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$REV" ]; then
    # Measure a commit, not the working tree: export it (git archive) and build the copy.
    commit=$(git rev-parse --short "$REV^{commit}")
    echo "== building Release of $commit (exported to $work/src)"
    mkdir "$work/src"
    git archive "$commit" | tar -x -C "$work/src"
    sample="$work/src/samples/McpGuard.Sample"
else
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit+uncommitted"; fi
    echo "== building Release of the working tree ($commit)"
    sample=samples/McpGuard.Sample
fi
dotnet build -c Release "$sample" -nologo -v quiet >/dev/null
dll="$sample/bin/Release/net10.0/McpGuard.Sample.dll"
content_root=$(cd "$(dirname "$dll")" && pwd)   # the sample's appsettings.json sits next to it

store_args=()
if [ "$STORE" = PostgreSql ]; then
    # shellcheck source=eng/stores.sh
    source eng/stores.sh
    stores_started=1
    stores_start
    echo "== shared stores: redis-server on $REDIS_CONFIGURATION, PostgreSQL on port $PG_PORT (synchronous_commit on)"
    store_args=(--McpGuard:PostgreSql:ConnectionString="$PG_CONNECTION" --McpGuard:RateLimits:Store=Redis --McpGuard:Redis:Configuration="$REDIS_CONFIGURATION")
fi

echo "== starting guarded ($GUARDED) on 127.0.0.1:$guarded_port, unguarded on 127.0.0.1:$open_port"
if [ "$GUARDED" = floor ]; then
    bench_dir="$(dirname "$(dirname "$sample")")/benchmarks/McpGuard.Benchmarks"
    dotnet build -c Release "$bench_dir" -nologo -v quiet >/dev/null
    floor_args=()
    if [ "$STORE" = PostgreSql ]; then floor_args=(--redis "$REDIS_CONFIGURATION" --postgres "$PG_CONNECTION"); fi
    if [ "$STORE" = InMemory ]; then floor_args=(--journal memory); fi
    (bench_server "$bench_dir" guard-floor --urls "http://127.0.0.1:$guarded_port" \
        --ledger "$work/ledger.db" "${floor_args[@]}" $GUARD_ARGS) >"$work/guarded.log" 2>&1 &
else
    dotnet "$dll" --contentRoot "$content_root" --urls "http://127.0.0.1:$guarded_port" \
        --Sample:Guard=true \
        --McpGuard:Store="$STORE" \
        --McpGuard:SqlitePath="$work/ledger.db" \
        "${store_args[@]}" \
        "${UNLIMITED_ARGS[@]}" \
        $GUARD_ARGS \
        >"$work/guarded.log" 2>&1 &
fi
guarded_pid=$!
dotnet "$dll" --contentRoot "$content_root" --urls "http://127.0.0.1:$open_port" --Sample:Guard=false >"$work/open.log" 2>&1 &
open_pid=$!

url_of() { if [ "$1" = guarded ]; then echo "http://127.0.0.1:$guarded_port/mcp"; else echo "http://127.0.0.1:$open_port/mcp"; fi; }
pid_of() { if [ "$1" = guarded ]; then echo "$guarded_pid"; else echo "$open_pid"; fi; }

call() { # call <server> <tool> [key]: one request with the body and headers wrk sends; prints the body and "HTTP <status>"
    local body auth=()
    body=$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "benchmarks/wrk/$2.lua")
    if [ -n "${3-mcpg_demo_alice}" ]; then auth=(-H "Authorization: Bearer ${3-mcpg_demo_alice}"); fi
    curl -s -m 10 -w '\nHTTP %{http_code}\n' "$(url_of "$1")" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "${auth[@]}" -d "$body"
}

for server in guarded open; do
    for i in $(seq 1 150); do
        if ! kill -0 "$(pid_of $server)" 2>/dev/null; then
            echo "the $server sample exited during start-up:" >&2
            cat "$work/$server.log" >&2
            exit 1
        fi
        if call "$server" echo 2>/dev/null | grep -q '^HTTP 200$'; then break; fi
        if [ "$i" -eq 150 ]; then echo "the $server sample did not answer within 30 s" >&2; cat "$work/$server.log" >&2; exit 1; fi
        sleep 0.2
    done
done

echo "== smoke check"
expect() { # expect <what> <pattern> <output>
    grep -q -- "$2" <<<"$3" || { echo "$1 did not answer as expected:" >&2; echo "$3" >&2; exit 1; }
}
for server in guarded open; do
    expect "$server echo" '"text":"hello"' "$(call $server echo)"
    expect "$server add" '"text":"5"' "$(call $server add)"
done
if [ -z "$GUARD_ARGS" ]; then
    expect "guarded echo without a key" '^HTTP 401$' "$(call guarded echo '')"
else
    echo "GUARD_ARGS: $GUARD_ARGS (the guarded server's answer without a key is not checked)"
fi
expect "unguarded echo without a key" '^HTTP 200$' "$(call open echo '')"
echo "both answer echo and add; without a key the guarded server answers 401, the unguarded one 200"

run_wrk() { # run_wrk <server> <script> <connections> <seconds>: prints wrk's RESULT line
    local threads=$(( $3 < 2 || TOGETHER == 1 ? 1 : 2 )) out
    out=$(timeout $(( $4 + 30 )) wrk -t"$threads" -c"$3" -d"$4"s --timeout 10s --latency -s "benchmarks/wrk/$2.lua" "$(url_of "$1")") \
        || { echo "wrk failed against $1 ($2, $3 connections)" >&2; echo "$out" >&2; exit 1; }
    grep '^RESULT' <<<"$out" || { echo "wrk printed no RESULT line:" >&2; echo "$out" >&2; exit 1; }
}

field() { # field <name> <RESULT line>
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}

results="$work/results.tsv"
: >"$results"

tick=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_ticks() { # cpu_ticks <pid>: user + system CPU of the process so far, in clock ticks (fields 14 and 15 of /proc/<pid>/stat)
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

measure() { # measure <mode> <row key> <label> <script> <connections>: warm-up, then ROUNDS alternating (or TOGETHER) runs
    local mode=$1 key=$2 label=$3 script=$4 c=$5 line before after cpu
    for server in guarded open; do run_wrk "$server" "$script" "$c" "$WARMUP" >/dev/null; done
    for round in $(seq 1 "$ROUNDS"); do
        if [ "$TOGETHER" = 1 ]; then
            # Both servers at once: each run's line and CPU are read after both wrk processes end.
            local -A started=() waiting=()
            for server in guarded open; do
                started[$server]=$(cpu_ticks "$(pid_of $server)")
                run_wrk "$server" "$script" "$c" "$DURATION" >"$work/$server.run" &
                waiting[$server]=$!
            done
            for server in guarded open; do wait "${waiting[$server]}" || exit 1; done
            for server in guarded open; do started[$server.after]=$(cpu_ticks "$(pid_of $server)"); done
        fi
        for server in guarded open; do
            if [ "$TOGETHER" = 1 ]; then
                before=${started[$server]}
                line=$(cat "$work/$server.run")
                after=${started[$server.after]}
            else
                before=$(cpu_ticks "$(pid_of $server)")
                line=$(run_wrk "$server" "$script" "$c" "$DURATION")
                after=$(cpu_ticks "$(pid_of $server)")
            fi
            # The server's CPU per answered request: what the machine's other load cannot inflate much.
            cpu=$(awk -v t=$(( after - before )) -v hz="$tick" -v n="$(field requests "$line")" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
            printf '%-8s %-6s %-9s %5s %10s %9s %9s %9s %7s %7s %6s\n' "$key" "$label" "$server" "$round" "$(field rps "$line")" \
                "$(field p50_ms "$line")" "$(field p99_ms "$line")" "$cpu" "$(field non2xx "$line")" "$(field socket_errors "$line")" \
                "$(cut -d' ' -f1 /proc/loadavg)"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$key" "$label" "$server" "$round" "$(field rps "$line")" \
                "$(field p50_ms "$line")" "$(field p99_ms "$line")" "$(field non2xx "$line")" "$(field socket_errors "$line")" "$cpu" >>"$results"
        done
    done
}

run_header() {
    printf '%-8s %-6s %-9s %5s %10s %9s %9s %9s %7s %7s %6s\n' "$1" tool server round "req/s" "p50 ms" "p99 ms" "cpu us/r" non2xx sockerr load1
}

summary() { # summary <mode> <row heading>: one line per row, medians over the rounds
    awk -F'\t' -v mode="$1" -v heading="$2" '
        function median(list,    a, n, i, j, t) {
            n = split(list, a, " ")
            for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $1 == mode {
            k = $2 SUBSEP $3
            if (!(k in seen)) { seen[k] = 1; order[++rows] = k }
            s = $4
            rps[k, s] = rps[k, s] " " $6; p50[k, s] = p50[k, s] " " $7; p99[k, s] = p99[k, s] " " $8; cpu[k, s] = cpu[k, s] " " $11
            bad[k] += $9 + $10
            if (s == "guarded") g[k, $5] = $6; else o[k, $5] = $6
            if ($5 > maxround[k]) maxround[k] = $5
        }
        END {
            printf "%-7s %-4s %7s %6s %6s %6s | %7s %6s %6s %6s | %6s %12s %6s %6s %4s\n", heading, "tool",
                "g r/s", "p50", "p99", "cpu", "u r/s", "p50", "p99", "cpu", "ratio", "paired", "+p50", "+cpu", "errs"
            for (r = 1; r <= rows; r++) {
                k = order[r]; split(k, part, SUBSEP)
                gr = median(rps[k, "guarded"]); orr = median(rps[k, "open"])
                gp50 = median(p50[k, "guarded"]); op50 = median(p50[k, "open"])
                gc = median(cpu[k, "guarded"]); oc = median(cpu[k, "open"])
                lo = ""; hi = ""
                for (i = 1; i <= maxround[k]; i++) {
                    if ((k SUBSEP i) in g && (k SUBSEP i) in o && o[k, i] > 0) {
                        q = 100 * g[k, i] / o[k, i]
                        if (lo == "" || q < lo) lo = q
                        if (hi == "" || q > hi) hi = q
                    }
                }
                range = lo == "" ? "-" : sprintf("%.0f-%.0f%%", lo, hi)
                printf "%-7s %-4s %7.0f %6.3f %6.2f %6.1f | %7.0f %6.3f %6.2f %6.1f | %5.1f%% %12s %6.3f %6.1f %4d\n", part[1], part[2],
                    gr, gp50, median(p99[k, "guarded"]), gc, orr, op50, median(p99[k, "open"]), oc,
                    100 * gr / orr, range, gp50 - op50, gc - oc, bad[k]
            }
        }' "$results"
}

echo "== commit $commit; $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== guarded ledger: $STORE; ${ROUNDS} rounds of ${DURATION}s per server and row after ${WARMUP}s warm-ups; medians over the rounds"
if [ "$TOGETHER" = 1 ]; then echo "== TOGETHER: each round loads both servers at once (one wrk thread each); compare the CPU per request"; fi

echo "== JIT warm-up: ${JIT_WARMUP}s per server and tool at 8 connections, not reported"
for tool in echo add; do
    for server in guarded open; do run_wrk "$server" "$tool" 8 "$JIT_WARMUP" >/dev/null; done
done

if [ "$MODE" != sizes ]; then
    echo "== concurrency: tools/call $TOOLS at $CONNECTIONS connections"
    run_header conns
    for c in $CONNECTIONS; do
        for tool in $TOOLS; do measure concurrency "$c" "$tool" "$tool" "$c"; done
    done
fi

if [ "$MODE" != concurrency ]; then
    echo "== body size: tools/call echo at $SIZE_CONNECTIONS connections, request bodies of $SIZES bytes"
    run_header bytes
    for size in $SIZES; do
        export ECHO_BODY_BYTES=$size
        measure sizes "$size" echo echo-size "$SIZE_CONNECTIONS"
    done
fi

echo
echo "== summary, commit $commit, load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   g = guarded, u = unguarded: median req/s, p50 and p99 (ms) and server CPU per request (us) over the rounds;"
echo "   ratio = g/u median req/s; paired = min-max of the per-round g/u ratios; +p50 (ms) and +cpu (us) = g - u"
if [ "$MODE" != sizes ]; then summary concurrency conns; fi
if [ "$MODE" != concurrency ]; then
    [ "$MODE" = all ] && echo
    summary sizes bytes
fi

if [ "$MODE" != sizes ] && [ "$TOGETHER" = 1 ]; then
    echo
    echo "== targets not checked: with TOGETHER=1 the two servers share the cores (the scheduler, not the request's cost, splits"
    echo "   the throughput between them), so the req/s ratio is not the targets' ratio; compare the CPU per request (cpu, +cpu)"
elif [ "$MODE" != sizes ]; then
    echo
    echo "== targets (32 connections)"
    summary concurrency conns | awk '
        $1 == "32" && $2 == "echo" {
            r = $13 + 0; a = $15 + 0; found = 1
            printf "echo guarded/unguarded >= 90%%: %.1f%% %s\n", r, (r >= 90 ? "met" : "MISSED")
            printf "echo added p50 < 0.2 ms: %.3f ms %s\n", a, (a < 0.2 ? "met" : "MISSED")
        }
        $1 == "32" && $2 == "add" {
            r = $13 + 0; found = 1
            printf "add guarded/unguarded >= 80%%: %.1f%% %s\n", r, (r >= 80 ? "met" : "MISSED")
        }
        END { if (!found) print "no 32-connection row in this run" }'
fi

errors=$(awk -F'\t' '{ n += $9 + $10 } END { print n + 0 }' "$results")
if [ "$errors" -gt 0 ]; then
    echo "$errors non-2xx answers or socket errors (see the runs above); guarded server log tail:" >&2
    tail -n 20 "$work/guarded.log" >&2
    exit 1
fi
