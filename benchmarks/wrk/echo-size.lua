-- wrk script for benchmarks/compare.sh --sizes: tools/call on `echo` with a body of ECHO_BODY_BYTES bytes (default 1024),
-- as alice (demo API key; the unguarded server ignores the header). The message is the letter "a" repeated, so the
-- JSON needs no escaping and the body is exactly the size asked for. echo answers with the same message back.
local size = tonumber(os.getenv("ECHO_BODY_BYTES") or "1024")
local prefix = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"'
local suffix = '"}}}'
local fill = size - #prefix - #suffix
if fill < 1 then error("ECHO_BODY_BYTES must be at least " .. (#prefix + #suffix + 1)) end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer mcpg_demo_alice"
wrk.body = prefix .. string.rep("a", fill) .. suffix

-- One machine-readable line for compare.sh: requests, seconds, req/s, p50 and p99 (ms), non-2xx/3xx, socket errors.
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, errors))
end
