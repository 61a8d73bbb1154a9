#!/usr/bin/env bash
# The gateway in front of a Node MCP server, as docs/gateway.md tells it: server-everything (the reference MCP server,
# installed in tests/interop-ts by `npm ci --prefix tests/interop-ts`) on 127.0.0.1:3001, mcpguard-gateway on
# 127.0.0.1:5090 with one API key, then three calls with curl: without the key, tools/list and echo with it.
# Everything runs in a temporary folder and is stopped by its process id on exit. docs/gateway.md shows its output.
#
#   eng/gateway-demo.sh            (UPSTREAM_PORT=3001 GATEWAY_PORT=5090 by default)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
upstream_port=${UPSTREAM_PORT:-3001}
gateway_port=${GATEWAY_PORT:-5090}
everything="$root/tests/interop-ts/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
[ -f "$everything" ] || { echo "server-everything is not installed: run npm ci --prefix tests/interop-ts" >&2; exit 2; }

# shellcheck source=eng/processes.sh
source "$root/eng/processes.sh"
processes_init mcpguard-gateway-demo

dotnet build -c Release "$root/src/McpGuard.Gateway" -nologo -v quiet >/dev/null
gateway=(dotnet run -c Release --no-build --project "$root/src/McpGuard.Gateway" --)

# 1. The MCP server, in Node.
PORT=$upstream_port node "$everything" streamableHttp >"$work/upstream.log" 2>&1 &
pids+=($!)

# 2. A key for yourself: the key goes to the client, the hash into appsettings.json.
cd "$work"
"${gateway[@]}" keygen >keygen.txt
key=$(awk '/^key:/ {print $2}' keygen.txt)
hash=$(awk '/^hash:/ {print $2}' keygen.txt)

# 3. appsettings.json, in the folder the gateway runs from.
cat >appsettings.json <<JSON
{
  "McpGuard": {
    "Upstream": { "Url": "http://127.0.0.1:$upstream_port/mcp" },
    "Auth": {
      "Resource": "http://127.0.0.1:$gateway_port/mcp",
      "ApiKeys": { "Enabled": true, "Keys": [ { "Id": "me", "Account": "me", "Hash": "$hash" } ] }
    }
  }
}
JSON

# 4. The gateway.
"${gateway[@]}" --urls "http://127.0.0.1:$gateway_port" >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$upstream_port/mcp" || exit 1
wait_for "http://127.0.0.1:$gateway_port/.well-known/oauth-protected-resource/mcp" || { cat "$work/gateway.log" >&2; exit 1; }

# 5. Calls, as an MCP client makes them.
post() { # body [key] [session]
    local args=(-s -i "http://127.0.0.1:$gateway_port/mcp" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
    if [ -n "${2:-}" ]; then args+=(-H "Authorization: Bearer $2"); fi
    if [ -n "${3:-}" ]; then args+=(-H "Mcp-Session-Id: $3" -H 'MCP-Protocol-Version: 2025-06-18'); fi
    curl "${args[@]}" -d "$1" | tr -d '\r'
}
show() { # the status line, the McpGuard headers and the body
    grep -iE '^(HTTP/|www-authenticate|x-request-id|mcp-session-id|data:|\{)' | sed -E 's/(req_)[A-Za-z0-9_-]+/\1…/; s/("request_id":"req_)[A-Za-z0-9_-]+/\1…/; s/^(mcp-session-id: ).*/\1…/'
}

echo '$ curl … /mcp   (no key)'
post '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}' | show
echo
init=$(post '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' "$key")
session=$(printf '%s\n' "$init" | awk 'tolower($1) == "mcp-session-id:" {print $2}')
post '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$key" "$session" >/dev/null
echo '$ curl … /mcp   (with the key: tools/list, names only)'
post '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' "$key" "$session" | grep '^data:' | sed 's/^data: //' \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).result.tools.map(t=>t.name).join(" ")))'
echo
echo '$ curl … /mcp   (with the key: tools/call echo)'
post '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}' "$key" "$session" | show
