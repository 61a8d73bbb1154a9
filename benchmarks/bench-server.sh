# Sourced by compare.sh and gateway.sh: starts one of the benchmarks project's own web servers (guard-floor,
# bare-proxy) in the background, as the samples it is compared with run. The benchmarks are a console app, so it gets
# server GC (web apps such as the sample and the gateway have it by default) and a content root of its own (not the
# working directory, which a host would watch for appsettings files).
#   bench_server <benchmarks project dir> <command> [args...] >log 2>&1 &
bench_server() {
    local bin
    bin=$(cd "$1/bin/Release/net10.0" && pwd)
    DOTNET_gcServer=1 exec dotnet "$bin/McpGuard.Benchmarks.dll" "$2" --contentRoot "$bin" "${@:3}"
}
