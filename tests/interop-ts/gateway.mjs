// The official TypeScript MCP SDK client through mcpguard-gateway in front of server-everything (GatewayEverythingTests
// runs it; you can too):
//
//   node gateway.mjs <gateway-mcp-url> <alice-key> <bob-key>
//
// As alice: tools/list, echo (free), get-sum (priced), trigger-long-running-operation with progress (each progress
// notification and the result time-stamped, to show the stream is not buffered), a tool's own error, then the session
// closed (DELETE). As bob: tools/list, and get-tiny-image, outside bob's scopes. Prints one JSON object on stdout; any
// failure prints the error on stderr and exits non-zero.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const CLIENT_INFO = { name: 'mcpguard-gateway-ts', version: '0.0.0' };
const OVERALL_TIMEOUT_MS = 45_000;

async function connect(url, key) {
    const transport = new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers: { authorization: `Bearer ${key}` } }
    });
    const client = new Client(CLIENT_INFO);
    await client.connect(transport);
    return { client, transport };
}

async function asAlice(url, key) {
    const { client, transport } = await connect(url, key);
    const tools = (await client.listTools()).tools.map(t => t.name).sort();
    const echo = await client.callTool({ name: 'echo', arguments: { message: 'hello through the gateway' } });
    const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
    const started = Date.now();
    const progress = [];
    const long = await client.callTool(
        { name: 'trigger-long-running-operation', arguments: { duration: 4, steps: 4 } },
        undefined,
        { onprogress: p => progress.push({ at: Date.now() - started, progress: p.progress, total: p.total }), timeout: 30_000 });
    const finishedAt = Date.now() - started;
    const toolError = await client.callTool({ name: 'get-sum', arguments: { a: 'two', b: 3 } });
    const sessionId = transport.sessionId;
    await transport.terminateSession();
    await client.close();
    return { tools, echo, sum, long, progress, finishedAt, toolError, sessionId };
}

async function asBob(url, key) {
    const { client } = await connect(url, key);
    try {
        const tools = (await client.listTools()).tools.map(t => t.name).sort();
        let refused = null;
        try {
            await client.callTool({ name: 'get-tiny-image', arguments: {} });
        } catch (error) {
            refused = { name: error.constructor.name, code: error.code ?? null, message: String(error.message) };
        }
        return { tools, refused };
    } finally {
        await client.close();
    }
}

async function main() {
    const [url, aliceKey, bobKey] = process.argv.slice(2);
    if (!url || !aliceKey || !bobKey) {
        throw new Error('usage: node gateway.mjs <gateway-mcp-url> <alice-key> <bob-key>');
    }

    const alice = await asAlice(url, aliceKey);
    const bob = await asBob(url, bobKey);
    process.stdout.write(JSON.stringify({ alice, bob }) + '\n');
}

const timer = setTimeout(() => { console.error(`gateway.mjs: no result within ${OVERALL_TIMEOUT_MS} ms`); process.exit(3); }, OVERALL_TIMEOUT_MS);
main().then(() => { clearTimeout(timer); process.exit(0); }, error => { console.error(error?.stack ?? String(error)); process.exit(1); });
