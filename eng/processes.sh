# Sourced by scripts that start servers of their own (eng/gateway-demo.sh, benchmarks/gateway.sh): a temporary work
# folder, the process ids of what the script starts, and one exit trap that stops them by id and removes the folder.
#
#   source eng/processes.sh; processes_init mcpguard-demo
#   some-server & pids+=($!)
#   wait_for http://127.0.0.1:5090/health || exit 1

pids=()
work=""

# processes_init <name>: makes $work (a temporary folder named after <name>) and sets the traps.
processes_init() {
    work=$(mktemp -d -t "$1.XXXXXX")
    trap processes_stop EXIT
    trap 'exit 130' INT TERM
}

# Stops every process in $pids (TERM, then waits for each) and removes $work.
processes_stop() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "$work" ]; then rm -rf "$work"; fi
}

# wait_for <url>: waits up to 30 s for anything to answer at <url>; non-zero (with a message) if nothing did.
wait_for() {
    for _ in $(seq 1 150); do
        if curl -s -o /dev/null "$1"; then return 0; fi
        sleep 0.2
    done
    echo "nothing answered at $1" >&2
    return 1
}
