#!/usr/bin/env bash
# Two builds of the guarded sample, loaded at once: what a change to McpGuard costs or saves per request, in server CPU.
#
#   benchmarks/ab.sh HEAD~1 HEAD                 # echo and add, two passes of 6 rounds of 8 s after 30 s warm-ups
#   benchmarks/ab.sh main WORKTREE               # WORKTREE: the working tree as it is, uncommitted changes included
#   TOOLS=add STORE=InMemory ROUNDS=6 benchmarks/ab.sh HEAD~1 HEAD
#
# compare.sh measures the guard against no guard; this measures one guard against another. Both builds run side by side
# on 127.0.0.1 with the same configuration as compare.sh's guarded server (rate limits raised, alice's balance and cap
# large enough), each under its own wrk (one thread, CONNECTIONS connections) at the same time, so the machine's drift
# hits both alike. One server process can cost 1-2 µs per request more than another of the same build for its whole
# life (the same build against itself), so there are two passes, the servers restarted in the other order for the
# second, and the difference is read over both. Each round prints both servers' CPU per request (from /proc) and
# B − A; the summary gives the medians and how many rounds B was lower in.
# A difference of about 1 µs shows as the same sign in most rounds; a single round means nothing. Both servers are
# stopped by their PIDs on every exit. Exits non-zero when a build or a server fails, or when wrk sees a non-2xx
# answer or a socket error.
set -euo pipefail

if [ $# -ne 2 ] || [ "$1" = -h ] || [ "$1" = --help ]; then sed -n '2,17p' "$0"; exit 2; fi

TOOLS=${TOOLS:-"echo add"}
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-30}
CONNECTIONS=${CONNECTIONS:-32}
STORE=${STORE:-Sqlite}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=benchmarks/ensure-wrk.sh
source benchmarks/ensure-wrk.sh
# shellcheck source=benchmarks/unlimited.sh
source benchmarks/unlimited.sh

work=$(mktemp -d -t mcpguard-ab.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill "$p" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$p" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build() { # build <A|B> <rev or WORKTREE>: prints the folder of the built sample
    local name=$1 rev=$2 src
    if [ "$rev" = WORKTREE ]; then
        src=$root
    else
        src=$work/$name
        mkdir "$src"
        git archive "$(git rev-parse "$rev^{commit}")" | tar -x -C "$src"
    fi
    dotnet build -c Release "$src/samples/McpGuard.Sample" -nologo -v quiet >"$work/$name.build" 2>&1 \
        || { cat "$work/$name.build" >&2; exit 1; }
    echo "$src/samples/McpGuard.Sample/bin/Release/net10.0"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

echo "== building A = $1 and B = $2 (Release)"
dir_a=$(build A "$1")
dir_b=$(build B "$2")
declare -A port pid
start() { # start <first> <second>: both servers, in that order, and wait until each answers
    for name in "$@"; do
        dir=dir_${name,,}
        port[$name]=$(free_port)
        dotnet "${!dir}/McpGuard.Sample.dll" --contentRoot "${!dir}" --urls "http://127.0.0.1:${port[$name]}" \
            --Sample:Guard=true --McpGuard:Store="$STORE" --McpGuard:SqlitePath="$work/$name-$(date +%s%N).db" \
            "${UNLIMITED_ARGS[@]}" >"$work/$name.log" 2>&1 &
        pid[$name]=$!
        pids+=("$!")
        for i in $(seq 1 150); do
            kill -0 "${pid[$name]}" 2>/dev/null || { echo "server $name exited during start-up:" >&2; cat "$work/$name.log" >&2; exit 1; }
            status=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:${port[$name]}/mcp" -H 'Content-Type: application/json' \
                -H 'Accept: application/json, text/event-stream' -H 'Authorization: Bearer mcpg_demo_alice' \
                -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}' || true)
            [ "$status" = 200 ] && break
            [ "$i" -eq 150 ] && { echo "server $name did not answer within 30 s" >&2; cat "$work/$name.log" >&2; exit 1; }
            sleep 0.2
        done
    done
}

tick=$(getconf CLK_TCK)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

both() { # both <tool> <seconds> [first]: one wrk per server at once, <first>'s started first; RESULT lines in $work/<name>.run
    local -A waiting=()
    local order="A B"
    if [ "${3:-A}" = B ]; then order="B A"; fi
    for name in $order; do
        timeout $(( $2 + 30 )) wrk -t1 -c"$CONNECTIONS" -d"$2"s --timeout 10s -s "benchmarks/wrk/$1.lua" "http://127.0.0.1:${port[$name]}/mcp" \
            | grep '^RESULT' >"$work/$name.run" &
        waiting[$name]=$!
    done
    for name in A B; do wait "${waiting[$name]}" || { echo "wrk failed against $name" >&2; exit 1; }; done
}

echo "== $(nproc) cores; store $STORE; $CONNECTIONS connections; per pass and tool ${WARMUP}s warm-up, then $ROUNDS rounds of ${DURATION}s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Two passes, the servers started in the opposite order: one server process can cost 1-2 us per request more than
# another of the same build for its whole life, and the two passes average that out.
for pass in 1 2; do
    if [ "$pass" = 1 ]; then start A B; else start B A; fi
    echo "== pass $pass: $([ "$pass" = 1 ] && echo "A started first" || echo "B started first")"
    for tool in $TOOLS; do
        both "$tool" "$WARMUP"
        for round in $(seq 1 "$ROUNDS"); do
            declare -A before=() cpu=()
            for name in A B; do before[$name]=$(cpu_ticks "${pid[$name]}"); done
            both "$tool" "$DURATION" "$([ $((round % 2)) -eq 1 ] && echo A || echo B)"
            for name in A B; do
                line=$(cat "$work/$name.run")
                if [ "$(field non2xx "$line")" != 0 ] || [ "$(field socket_errors "$line")" != 0 ]; then echo "errors against $name: $line" >&2; exit 1; fi
                cpu[$name]=$(awk -v t=$(( $(cpu_ticks "${pid[$name]}") - before[$name] )) -v hz="$tick" -v n="$(field requests "$line")" \
                    'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
                echo "$tool $name ${cpu[$name]}" >>"$work/results"
            done
            d=$(awk -v a="${cpu[A]}" -v b="${cpu[B]}" 'BEGIN { printf "%.1f", b - a }')
            echo "$tool diff $d" >>"$work/results"
            printf '%-5s pass %d round %2d   A %6.1f us   B %6.1f us   B-A %5.1f us   load %s\n' "$tool" "$pass" "$round" "${cpu[A]}" "${cpu[B]}" "$d" "$(cut -d' ' -f1 /proc/loadavg)"
        done
    done
    for name in A B; do
        kill "${pid[$name]}" 2>/dev/null || true
        wait "${pid[$name]}" 2>/dev/null || true
    done
done

echo
echo "== summary: server CPU per request (us), medians over both passes' rounds; A = $1, B = $2"
awk '
    function median(list,    a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    !($1 in seen) { seen[$1] = 1; order[++n] = $1 }
    $2 == "A" { a[$1] = a[$1] " " $3 } $2 == "B" { b[$1] = b[$1] " " $3 }
    $2 == "diff" { d[$1] = d[$1] " " $3; rounds[$1]++; if ($3 + 0 < 0) lower[$1]++; else if ($3 + 0 > 0) higher[$1]++ }
    END { for (i = 1; i <= n; i++) { t = order[i]
        printf "%-5s A %6.1f   B %6.1f   B-A %5.1f (median of the rounds)   B lower in %d, higher in %d of %d rounds\n",
            t, median(a[t]), median(b[t]), median(d[t]), lower[t], higher[t], rounds[t] } }' "$work/results"
