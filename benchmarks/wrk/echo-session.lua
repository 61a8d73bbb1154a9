-- wrk script for benchmarks/gateway.sh: echo.lua's call (tools/call echo as alice, and its RESULT line) on a session of
-- a stateful server (server-everything). The session id comes from MCP_SESSION_ID (gateway.sh opens the session with
-- curl first). Run from the repository root, as gateway.sh does.
dofile("benchmarks/wrk/echo.lua")
wrk.headers["Mcp-Session-Id"] = os.getenv("MCP_SESSION_ID")
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
