// Preloaded into @modelcontextprotocol/server-everything by the gateway tests (node --import ./upstream-log.mjs):
// appends one JSON line per request the upstream received (method, url, headers, status) to $MCPGUARD_UPSTREAM_LOG,
// so a test can check what reached the upstream; and answers 500 to a request carrying "x-mcpguard-test-fail: 500",
// the tests' way to make this real upstream fail.
import http from "node:http";
import fs from "node:fs";

const logFile = process.env.MCPGUARD_UPSTREAM_LOG;
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, request, response) {
  if (event === "request") {
    let written = false;
    const write = () => {
      if (!written && logFile) {
        written = true;
        const entry = { method: request.method, url: request.url, headers: request.headers, status: response.statusCode };
        fs.appendFileSync(logFile, JSON.stringify(entry) + "\n");
      }
    };
    response.on("finish", write);
    response.on("close", write);
    if (request.headers["x-mcpguard-test-fail"] === "500") {
      response.writeHead(500, { "content-type": "application/json" });
      response.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32603, message: "Internal server error" } }));
      return true;
    }
  }
  return emit.apply(this, arguments);
};
