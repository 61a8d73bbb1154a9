#!/usr/bin/env bash
# Soak: the guarded sample under priced calls for MINUTES minutes, then a restart on the soaked ledger.
#
#   benchmarks/soak.sh                         # 30 minutes of tools/call add at 32 connections, then the restart
#   benchmarks/soak.sh --ci                    # the same for 1 minute (what CI runs)
#   benchmarks/soak.sh --minutes 5             # or MINUTES=5
#   CONNECTIONS=64 SLICE=5 benchmarks/soak.sh --minutes 10
#   benchmarks/soak.sh --restart-only big.db   # no soak: time to ready on an existing ledger (generate-ledger makes one)
#
# Installs wrk with apt-get when it is missing, builds Release and starts samples/McpGuard.Sample guarded on 127.0.0.1
# as compare.sh does (Sample:Guard=true, a fresh SQLite ledger in a temp dir, rate limits raised so they never cap the
# run, alice's balance and monthly cap large enough for every call), logging at Warning. Each start is timed from
# spawning the process until GET /admin/accounts/alice answers 200 (polled every 50 ms, 120 s at most), and the
# server's RSS (VmRSS) is read then. After a smoke check and a WARMUP of add (not reported), wrk drives priced
# `tools/call add` (800 µ, wrk/add.lua) as alice at CONNECTIONS connections in back-to-back slices of SLICE seconds.
# Per minute it prints calls/s, p50 (median of the minute's slices), p99 (worst slice of the minute), the server's
# RSS at the minute's end, the ledger's rows (MAX(id), read-only) and its size (db + -wal), non-2xx and socket
# errors and the 1-minute load average. After the run: RSS after IDLE seconds idle; a summary with the worst slice
# p99 against the median slice p99 (target <= 3x) and RSS at the last minute against minute 5 (minute 1 in runs
# shorter than 5 minutes; target within 10%); the money check (alice's balance fell by exactly 800 x (her usage
# rows - her refund rows)) and GET /admin/ledger/verify when the server has it (404: reported as not available).
# Then the restart: SIGTERM, wait for the exit, start again on the same ledger with the same arguments, and print
# the time to ready and RSS at ready next to the first (fresh) start's.
# --restart-only <ledger.db>: starts the sample on that file (nothing copied), times it to ready, reads its RSS,
# calls verify and stops it.
# Exits non-zero on errors (a server that does not start or stop, any non-2xx or socket error, a money mismatch,
# verify differences), never on a missed target. The server is stopped by its PID on every exit.
set -euo pipefail

usage() {
    echo "usage: $0 [--ci | --minutes N] | --restart-only <ledger.db>" >&2
    exit 2
}

MINUTES=${MINUTES:-30}                 # minutes of soak
SLICE=${SLICE:-10}                     # seconds per wrk run (slice); divides 60
CONNECTIONS=${CONNECTIONS:-32}         # wrk connections
WARMUP=${WARMUP:-5}                    # seconds of unreported add before the first slice
IDLE=${IDLE:-10}                       # seconds idle after the run before RSS is read again
restart_only=""

while [ $# -gt 0 ]; do
    case "$1" in
        --ci) MINUTES=1 ;;
        --minutes) [ $# -ge 2 ] || usage; MINUTES=$2; shift ;;
        --restart-only) [ $# -ge 2 ] || usage; restart_only=$2; shift ;;
        -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
        *) usage ;;
    esac
    shift
done

for knob in MINUTES SLICE CONNECTIONS WARMUP IDLE; do
    [[ ${!knob} =~ ^[0-9]+$ ]] || { echo "$knob must be a whole number, not '${!knob}'" >&2; exit 2; }
done
if [ "$MINUTES" -lt 1 ] || [ "$SLICE" -lt 1 ] || [ $(( 60 % SLICE )) -ne 0 ] || [ "$CONNECTIONS" -lt 1 ]; then
    echo "MINUTES and CONNECTIONS must be at least 1, and SLICE must divide 60" >&2
    exit 2
fi
if [ -n "$restart_only" ]; then
    [ -f "$restart_only" ] || { echo "$restart_only: no such ledger file" >&2; exit 2; }
    restart_only=$(cd "$(dirname "$restart_only")" && pwd)/$(basename "$restart_only")
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ -z "$restart_only" ]; then
    # shellcheck source=benchmarks/ensure-wrk.sh
    source benchmarks/ensure-wrk.sh
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null || echo 5097)
url="http://127.0.0.1:$port/mcp"
admin="http://127.0.0.1:$port/admin"
admin_auth="Authorization: Bearer mcpg_demo_admin"   # the sample's demo admin key (docs/admin-api.md)
work=$(mktemp -d -t mcpguard-soak.XXXXXX)
db=${restart_only:-$work/ledger.db}
pid=""

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

cleanup() {
    stop "$pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit+uncommitted"; fi
echo "== building Release of the working tree ($commit)"
dotnet build -c Release samples/McpGuard.Sample -nologo -v quiet >/dev/null
dll=samples/McpGuard.Sample/bin/Release/net10.0/McpGuard.Sample.dll
content_root=$(cd "$(dirname "$dll")" && pwd)   # the sample's appsettings.json sits next to it

# shellcheck source=benchmarks/unlimited.sh
source benchmarks/unlimited.sh
server_args=(--contentRoot "$content_root" --urls "http://127.0.0.1:$port"
    --Sample:Guard=true
    --Logging:LogLevel:Default=Warning
    --McpGuard:Store=Sqlite
    --McpGuard:SqlitePath="$db"
    "${UNLIMITED_ARGS[@]}")

rss_mb() { # rss_mb <pid>: VmRSS in MB
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

ledger_stats() { # ledger_stats <db>: "<rows> <MB>": MAX(id) of the ledger (read-only), and the size of the file and its -wal
    python3 - "$1" <<'EOF'
import os, pathlib, sqlite3, sys
db = sys.argv[1]
con = sqlite3.connect(pathlib.Path(db).absolute().as_uri() + "?mode=ro", uri=True)
rows = con.execute("SELECT MAX(id) FROM ledger").fetchone()[0] or 0
con.close()
size = sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))
print(rows, f"{size / 1048576:.1f}")
EOF
}

alice_rows() { # alice_rows <db>: "<usage rows> <refund rows>" of alice's (read-only)
    python3 - "$1" <<'EOF'
import pathlib, sqlite3, sys
con = sqlite3.connect(pathlib.Path(sys.argv[1]).absolute().as_uri() + "?mode=ro", uri=True)
counts = dict(con.execute("SELECT kind, COUNT(*) FROM ledger WHERE account = 'alice' AND kind IN ('Usage', 'Refund') GROUP BY kind"))
con.close()
print(counts.get("Usage", 0), counts.get("Refund", 0))
EOF
}

json_field() { # json_field <file> <name>
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

start_server() { # start_server <log>: spawns the sample on $db; sets pid, ready_ms (spawn to the first 200 of GET /admin/accounts/alice) and ready_rss
    local log=$1 t0 now status
    t0=$(date +%s%N)
    dotnet "$dll" "${server_args[@]}" >"$log" 2>&1 &
    pid=$!
    while :; do
        status=$(curl -s -m 2 -o "$work/alice.json" -w '%{http_code}' "$admin/accounts/alice" -H "$admin_auth" 2>/dev/null || true)
        now=$(date +%s%N)
        if [ "$status" = 200 ]; then break; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the sample exited during start-up:" >&2
            cat "$log" >&2
            exit 1
        fi
        if [ $(( (now - t0) / 1000000 )) -ge 120000 ]; then
            echo "the sample did not answer GET /admin/accounts/alice with 200 within 120 s (last status $status)" >&2
            tail -n 20 "$log" >&2
            exit 1
        fi
        sleep 0.05
    done
    ready_ms=$(( (now - t0) / 1000000 ))
    ready_rss=$(rss_mb "$pid")
}

stop_for_restart() { # SIGTERM and wait (30 s at most) for the exit: prints the seconds it took and the exit code
    local t0 now code=0
    t0=$(date +%s%N)
    kill -TERM "$pid"
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    now=$(date +%s%N)
    if kill -0 "$pid" 2>/dev/null; then
        echo "the sample did not exit within 30 s of SIGTERM; killed" >&2
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
        exit 1
    fi
    wait "$pid" || code=$?
    pid=""
    awk -v ns=$(( now - t0 )) -v code="$code" 'BEGIN { printf "stopped by SIGTERM in %.2f s (exit code %d)\n", ns / 1e9, code }'
}

verify() { # GET /admin/ledger/verify: 200 with no differences, or 404 (not there yet); anything else is an error
    local status t0 now
    rm -f "$work/verify.json"
    t0=$(date +%s%N)
    status=$(curl -s -m 600 -o "$work/verify.json" -w '%{http_code}' "$admin/ledger/verify" -H "$admin_auth" || true)
    now=$(date +%s%N)
    case "$status" in
        200)
            python3 - "$work/verify.json" $(( (now - t0) / 1000000 )) <<'EOF' || errors=$(( errors + 1 ))
import json, sys
body = json.load(open(sys.argv[1]))
differences = body["differences"]
print(f"ledger verify: {body['accounts_checked']} accounts, {body['rows_checked']} rows checked in {sys.argv[2]} ms, "
      f"{len(differences)} difference{'' if len(differences) == 1 else 's'}" + ("" if differences else " (the invariant holds)"))
for d in differences[:20]:
    print(f"  {json.dumps(d)}", file=sys.stderr)
sys.exit(1 if differences else 0)
EOF
            ;;
        404) echo "ledger verify: not available (GET /admin/ledger/verify answered 404)" ;;
        *)
            if [ "${status:-000}" = 000 ]; then
                echo "ledger verify: GET /admin/ledger/verify got no answer" >&2
            else
                echo "ledger verify: GET /admin/ledger/verify answered $status:" >&2
                cat "$work/verify.json" >&2 2>/dev/null || true
                echo >&2
            fi
            errors=$(( errors + 1 ))
            ;;
    esac
}

errors=0
echo "== commit $commit; $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -n "$restart_only" ]; then
    read -r rows size <<<"$(ledger_stats "$db")"
    echo "== restart-only on $db: $rows ledger rows, $size MB"
    start_server "$work/server.log"
    echo "time to ready: $ready_ms ms; RSS at ready: $ready_rss MB"
    verify
    stop "$pid"
    pid=""
    if [ "$errors" -gt 0 ]; then exit 1; fi
    exit 0
fi

echo "== starting the sample on $url (ledger $db)"
start_server "$work/server.log"
fresh_ms=$ready_ms
fresh_rss=$ready_rss
balance_before=$(json_field "$work/alice.json" balance_micro)
echo "fresh start: ready in $fresh_ms ms, RSS at ready $fresh_rss MB; alice's balance $balance_before µ"

call() { # call <tool>: one request with the body and headers wrk sends; prints the body and "HTTP <status>"
    local body
    body=$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "benchmarks/wrk/$1.lua")
    curl -s -m 10 -w '\nHTTP %{http_code}\n' "$url" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -H 'Authorization: Bearer mcpg_demo_alice' -d "$body"
}
smoke=$(call add)
if ! grep -q '"text":"5"' <<<"$smoke" || ! grep -q '^HTTP 200$' <<<"$smoke"; then
    echo "add did not answer as expected:" >&2
    echo "$smoke" >&2
    exit 1
fi
echo "smoke check: add answers 200 with its result"

run_wrk() { # run_wrk <seconds>: prints wrk's RESULT line
    local threads=$(( CONNECTIONS < 2 ? CONNECTIONS : 2 )) out
    out=$(timeout $(( $1 + 30 )) wrk -t"$threads" -c"$CONNECTIONS" -d"$1"s --timeout 10s --latency -s benchmarks/wrk/add.lua "$url") \
        || { echo "wrk failed" >&2; echo "$out" >&2; exit 1; }
    grep '^RESULT' <<<"$out" || { echo "wrk printed no RESULT line:" >&2; echo "$out" >&2; exit 1; }
}

field() { # field <name> <RESULT line>
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}

if [ "$WARMUP" -gt 0 ]; then
    echo "== warm-up: ${WARMUP}s of add at $CONNECTIONS connections, not reported"
    line=$(run_wrk "$WARMUP")
    if [ $(( $(field non2xx "$line") + $(field socket_errors "$line") )) -gt 0 ]; then
        echo "warm-up: $(field non2xx "$line") non-2xx answers, $(field socket_errors "$line") socket errors" >&2
        errors=$(( errors + 1 ))
    fi
fi

per_minute=$(( 60 / SLICE ))
slices="$work/slices.tsv"      # minute, slice, requests, seconds, req/s, p50, p99, non-2xx, socket errors
minutes="$work/minutes.tsv"    # minute, RSS MB
: >"$slices"
: >"$minutes"
echo "== soak: tools/call add (800 µ) at $CONNECTIONS connections for $MINUTES min, in slices of ${SLICE}s"
printf '%6s %9s %8s %8s %8s %12s %10s %7s %6s\n' minute "calls/s" "p50 ms" "p99 ms" "RSS MB" "ledger rows" "ledger MB" errors load1
for minute in $(seq 1 "$MINUTES"); do
    for slice in $(seq 1 "$per_minute"); do
        line=$(run_wrk "$SLICE")
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the sample exited during the soak (minute $minute); its log:" >&2
            tail -n 40 "$work/server.log" >&2
            exit 1
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$minute" "$slice" "$(field requests "$line")" "$(field seconds "$line")" \
            "$(field rps "$line")" "$(field p50_ms "$line")" "$(field p99_ms "$line")" "$(field non2xx "$line")" "$(field socket_errors "$line")" >>"$slices"
    done
    rss=$(rss_mb "$pid")
    read -r rows size <<<"$(ledger_stats "$db")"
    printf '%s\t%s\n' "$minute" "$rss" >>"$minutes"
    awk -F'\t' -v m="$minute" -v rss="$rss" -v rows="$rows" -v size="$size" -v load="$(cut -d' ' -f1 /proc/loadavg)" '
        $1 == m { req += $3; sec += $4; p50[++n] = $6; if ($7 + 0 > p99) p99 = $7 + 0; bad += $8 + $9 }
        END {
            for (i = 2; i <= n; i++) { t = p50[i] + 0; for (j = i - 1; j >= 1 && p50[j] + 0 > t; j--) p50[j + 1] = p50[j]; p50[j + 1] = t }
            med = n % 2 ? p50[(n + 1) / 2] : (p50[n / 2] + p50[n / 2 + 1]) / 2
            printf "%6d %9.0f %8.3f %8.3f %8.1f %12d %10.1f %7d %6s\n", m, req / sec, med, p99, rss, rows, size, bad, load
        }' "$slices"
done

echo "== idle ${IDLE}s"
sleep "$IDLE"
idle_rss=$(rss_mb "$pid")
echo "RSS after ${IDLE}s idle: $idle_rss MB"

echo
echo "== summary, commit $commit, load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -F'\t' '
    { req += $3; sec += $4; p99[++n] = $7 + 0; if ($7 + 0 > worst) { worst = $7 + 0; at = sprintf("minute %d, slice %d", $1, $2) } }
    END {
        for (i = 2; i <= n; i++) { t = p99[i]; for (j = i - 1; j >= 1 && p99[j] > t; j--) p99[j + 1] = p99[j]; p99[j + 1] = t }
        med = n % 2 ? p99[(n + 1) / 2] : (p99[n / 2] + p99[n / 2 + 1]) / 2
        printf "calls: %d answered by wrk in %d slices (%.0f calls/s)\n", req, n, req / sec
        r = med > 0 ? worst / med : 0
        printf "worst slice p99 %.3f ms (%s) against the median slice p99 %.3f ms: %.2fx, target <= 3x: %s\n", worst, at, med, r, (r <= 3 ? "met" : "MISSED")
    }' "$slices"
ref=$(( MINUTES >= 5 ? 5 : 1 ))
awk -F'\t' -v ref="$ref" -v last="$MINUTES" '
    $1 == ref { a = $2 } $1 == last { b = $2 }
    END {
        d = 100 * (b - a) / a
        printf "RSS at minute %d %.1f MB against minute %d %.1f MB: %.3f (%+.1f%%), target within 10%%: %s\n", last, b, ref, a, b / a, d, (d <= 10 && d >= -10 ? "met" : "MISSED")
    }' "$minutes"

soak_errors=$(awk -F'\t' '{ n += $8 + $9 } END { print n + 0 }' "$slices")
if [ "$soak_errors" -gt 0 ]; then
    echo "$soak_errors non-2xx answers or socket errors during the soak (see the minutes above); server log tail:" >&2
    tail -n 20 "$work/server.log" >&2
    errors=$(( errors + 1 ))
fi

echo
echo "== money check"
status=$(curl -s -m 10 -o "$work/alice.json" -w '%{http_code}' "$admin/accounts/alice" -H "$admin_auth" || true)
if [ "$status" != 200 ]; then echo "GET /admin/accounts/alice answered ${status:-nothing} after the soak" >&2; exit 1; fi
balance_after=$(json_field "$work/alice.json" balance_micro)
read -r usage refunds <<<"$(alice_rows "$db")"
fell=$(( balance_before - balance_after ))
expected=$(( 800 * (usage - refunds) ))
if [ "$fell" -eq "$expected" ]; then verdict="holds"; else verdict="MISMATCH"; errors=$(( errors + 1 )); fi
echo "alice's balance $balance_before -> $balance_after µ: fell by $fell µ; 800 x ($usage usage rows - $refunds refund rows) = $expected µ: $verdict"
verify

echo
read -r rows size <<<"$(ledger_stats "$db")"
echo "== restart on the soaked ledger ($rows rows, $size MB)"
stop_for_restart
start_server "$work/server-restart.log"
echo "time to ready: $ready_ms ms (fresh start: $fresh_ms ms); RSS at ready: $ready_rss MB (fresh start: $fresh_rss MB)"
balance_restarted=$(json_field "$work/alice.json" balance_micro)
if [ "$balance_restarted" -eq "$balance_after" ]; then
    echo "alice's balance after the restart: $balance_restarted µ, as before it"
else
    echo "alice's balance after the restart: $balance_restarted µ, not $balance_after µ as before it" >&2
    errors=$(( errors + 1 ))
fi

stop "$pid"
pid=""
if [ "$errors" -gt 0 ]; then
    echo "$errors error(s), see above" >&2
    exit 1
fi
