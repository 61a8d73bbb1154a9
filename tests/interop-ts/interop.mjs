// McpGuard interop with the official TypeScript MCP SDK client (@modelcontextprotocol/sdk, pinned in package.json).
// TypeScriptInteropTests runs it against the sample; you can too:
//
//   node interop.mjs <mcp-url> <api-key>   (a) a session with the API key: tools/list and tools/call echo;
//                                          (b) no credentials: our 401, its challenge parsed by the SDK, the SDK's
//                                              RFC 9728 metadata discovery and its resource check
//   node interop.mjs --oauth <mcp-url>     (c) the SDK's own OAuth flow (auth()): challenge, metadata, authorization
//                                              server discovery, dynamic registration, PKCE, token; then a session
//   node interop.mjs --cases <mcp-url> <alice-key> <bob-key>
//                                          (d) the integration suite's cases: a free call, a priced call, a tool
//                                              error and the call past the rate limit as alice; tools/list, a call
//                                              outside bob's scopes and one bob cannot pay for as bob; a client
//                                              without a key. Each with the HTTP exchanges the SDK made.
//   node interop.mjs --pricing <mcp-url> <api-key>
//                                          (e) what an agent reads of prices and charges through the SDK alone:
//                                              tools/list's _meta (mcpguard/price per tool, mcpguard/account), the
//                                              _meta of a priced result and of a metered one (mcpguard/charge), and a
//                                              call refused by its own ceiling (mcpguard/max_price_micro)
//
// Prints one JSON object on stdout. Any failure prints the error on stderr and exits non-zero.

import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
    UnauthorizedError,
    discoverOAuthProtectedResourceMetadata,
    extractWWWAuthenticateParams,
    selectResourceURL
} from '@modelcontextprotocol/sdk/client/auth.js';
import { checkResourceAllowed, resourceUrlFromServerUrl } from '@modelcontextprotocol/sdk/shared/auth-utils.js';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';

const CLIENT_INFO = { name: 'mcpguard-interop-ts', version: '0.0.0' };
const ECHO_TEXT = 'hello from TypeScript';
// Never contacted: redirectToAuthorization reads the redirect's Location instead of following it.
const REDIRECT_URL = 'http://127.0.0.1/oauth/callback';
const OVERALL_TIMEOUT_MS = 45_000;

function fail(message) {
    throw new Error(message);
}

/** Connects, lists tools, calls echo, closes. */
async function session(transport) {
    const client = new Client(CLIENT_INFO);
    await client.connect(transport);
    try {
        const tools = await client.listTools();
        const echo = await client.callTool({ name: 'echo', arguments: { message: ECHO_TEXT } });
        return {
            protocolVersion: transport.protocolVersion ?? null,
            tools: tools.tools.map(t => t.name).sort(),
            echo
        };
    } finally {
        await client.close();
    }
}

/** (b) Our 401 and what the SDK's discovery helpers make of it. */
async function discovery(url) {
    const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: CLIENT_INFO }
        })
    });
    const body = await response.text();
    if (response.status !== 401) {
        fail(`expected 401 without credentials, got ${response.status}: ${body}`);
    }

    const wwwAuthenticate = response.headers.get('www-authenticate');
    const params = extractWWWAuthenticateParams(response);
    if (!params.resourceMetadataUrl) {
        fail(`the SDK found no resource_metadata in WWW-Authenticate: ${wwwAuthenticate}`);
    }

    const metadata = await discoverOAuthProtectedResourceMetadata(url, { resourceMetadataUrl: params.resourceMetadataUrl });

    // The checks auth() applies before it sends `resource` to an authorization server.
    const requestedResource = resourceUrlFromServerUrl(url);
    const allowed = checkResourceAllowed({ requestedResource, configuredResource: metadata.resource });
    if (!allowed) {
        fail(`the SDK rejects the metadata's resource ${metadata.resource} for ${requestedResource.href}`);
    }
    const selected = await selectResourceURL(url, {}, metadata);

    return {
        challenge: {
            status: response.status,
            wwwAuthenticate,
            resourceMetadataUrl: params.resourceMetadataUrl.href,
            scope: params.scope ?? null,
            error: params.error ?? null
        },
        metadata,
        resourceCheck: { requestedResource: requestedResource.href, allowed, selectedResource: selected?.href ?? null }
    };
}

/** An OAuthClientProvider for a headless client: in-memory storage, and a "browser" that reads the redirect. */
class HeadlessOAuthProvider {
    authorizations = [];
    code = undefined;
    #client = undefined;
    #tokens = undefined;
    #verifier = undefined;
    #state = undefined;

    get redirectUrl() {
        return REDIRECT_URL;
    }

    get clientMetadata() {
        return {
            client_name: CLIENT_INFO.name,
            redirect_uris: [REDIRECT_URL],
            grant_types: ['authorization_code'],
            response_types: ['code'],
            token_endpoint_auth_method: 'none'
        };
    }

    state() {
        this.#state = randomUUID();
        return this.#state;
    }

    clientInformation() {
        return this.#client;
    }

    saveClientInformation(information) {
        this.#client = information;
    }

    tokens() {
        return this.#tokens;
    }

    saveTokens(tokens) {
        this.#tokens = tokens;
    }

    saveCodeVerifier(verifier) {
        this.#verifier = verifier;
    }

    codeVerifier() {
        return this.#verifier ?? fail('no code verifier was saved');
    }

    async redirectToAuthorization(authorizationUrl) {
        this.authorizations.push(Object.fromEntries(authorizationUrl.searchParams));
        const response = await fetch(authorizationUrl, { redirect: 'manual' });
        const location = response.headers.get('location');
        if (response.status !== 302 || !location) {
            fail(`authorization endpoint answered ${response.status}: ${await response.text()}`);
        }
        const redirect = new URL(location);
        if (`${redirect.origin}${redirect.pathname}` !== REDIRECT_URL) {
            fail(`authorization redirected to ${redirect.href}, not ${REDIRECT_URL}`);
        }
        if (redirect.searchParams.has('error')) {
            fail(`authorization refused: ${redirect.searchParams.get('error')} (${redirect.searchParams.get('error_description')})`);
        }
        if (redirect.searchParams.get('state') !== this.#state) {
            fail('the authorization response state does not match the request');
        }
        if (redirect.searchParams.get('iss') !== authorizationUrl.origin) {
            fail(`the authorization response iss ${redirect.searchParams.get('iss')} is not ${authorizationUrl.origin}`);
        }
        this.code = redirect.searchParams.get('code');
    }

    get grantedScope() {
        return this.#tokens?.scope ?? null;
    }

    get clientId() {
        return this.#client?.client_id ?? null;
    }
}

/** (c) The SDK's OAuth flow, end to end, then a session with the token it obtained. */
async function oauth(url) {
    const provider = new HeadlessOAuthProvider();
    const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    try {
        await new Client(CLIENT_INFO).connect(first);
        fail('the first connect succeeded without authorization');
    } catch (error) {
        if (!(error instanceof UnauthorizedError)) {
            throw error;
        }
    }
    if (!provider.code) {
        fail('the SDK did not go through the authorization endpoint');
    }
    await first.finishAuth(provider.code);
    await first.close();

    const result = await session(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
    return { clientId: provider.clientId, authorizations: provider.authorizations, grantedScope: provider.grantedScope, ...result };
}

/** A fetch that records every exchange: the request's method, MCP method, id and tool; the status, headers and (not 2xx) body. */
function recordingFetch(exchanges) {
    return async (url, init) => {
        const response = await fetch(url, init);
        const request = typeof init?.body === 'string' ? JSON.parse(init.body) : null;
        exchanges.push({
            httpMethod: init?.method ?? 'GET',
            mcpMethod: request?.method ?? null,
            id: request?.id ?? null,
            tool: request?.params?.name ?? null,
            status: response.status,
            headers: Object.fromEntries(response.headers),
            body: response.ok ? null : await response.clone().text()
        });
        return response;
    };
}

/** What a failed call threw, as data. */
function failure(error) {
    return { name: error?.constructor?.name ?? null, code: error?.code ?? null, message: error?.message ?? String(error) };
}

/** Runs one call and returns its result, or what it threw. */
async function attempt(call) {
    try {
        return { result: await call() };
    } catch (error) {
        return { error: failure(error) };
    }
}

async function connect(url, key, exchanges) {
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers }, fetch: recordingFetch(exchanges) });
    const client = new Client(CLIENT_INFO);
    await client.connect(transport);
    return { client, transport };
}

/** (d) The integration suite's cases. */
async function cases(url, aliceKey, bobKey) {
    const alice = { exchanges: [] };
    const bob = { exchanges: [] };
    const anonymous = { exchanges: [] };

    const a = await connect(url, aliceKey, alice.exchanges);
    try {
        alice.protocolVersion = a.transport.protocolVersion ?? null;
        alice.sessionId = a.transport.sessionId ?? null;
        alice.tools = (await a.client.listTools()).tools.map(t => t.name).sort();
        alice.free = await attempt(() => a.client.callTool({ name: 'echo', arguments: { message: 'hello' } }));
        alice.priced = await attempt(() => a.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }));
        alice.toolError = await attempt(() => a.client.callTool({ name: 'fail', arguments: { kind: 'not_found' } }));
        alice.limited = await attempt(() => a.client.callTool({ name: 'echo', arguments: { message: 'one too many' } }));
    } finally {
        await a.client.close();
    }

    const b = await connect(url, bobKey, bob.exchanges);
    try {
        bob.tools = (await b.client.listTools()).tools.map(t => t.name).sort();
        bob.outOfScope = await attempt(() => b.client.callTool({ name: 'premium_report', arguments: { topic: 'tea' } }));
        bob.outOfCredit = await attempt(() => b.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }));
    } finally {
        await b.client.close();
    }

    anonymous.connect = await attempt(() => connect(url, null, anonymous.exchanges).then(() => 'connected'));
    return { alice, bob, anonymous };
}

/** (e) Prices in discovery, the charge in results and a per-call ceiling, as the SDK hands them to its caller. */
async function pricing(url, key) {
    const client = new Client(CLIENT_INFO);
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${key}` } } }));
    try {
        const list = await client.listTools();
        const add = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
        const search = await client.callTool({ name: 'search', arguments: { query: 'berry', limit: 7 } });
        const ceiling = await attempt(() =>
            client.callTool({ name: 'add', arguments: { a: 2, b: 3 }, _meta: { 'mcpguard/max_price_micro': 500 } }));
        return {
            prices: Object.fromEntries(list.tools.map(t => [t.name, t._meta?.['mcpguard/price'] ?? null])),
            account: list._meta?.['mcpguard/account'] ?? null,
            addCharge: add._meta?.['mcpguard/charge'] ?? null,
            searchMeta: search._meta ?? null,
            ceiling
        };
    } finally {
        await client.close();
    }
}

async function main(argv) {
    if (argv[0] === '--pricing' && argv.length === 3) {
        return pricing(argv[1], argv[2]);
    }
    if (argv[0] === '--oauth' && argv.length === 2) {
        return oauth(argv[1]);
    }
    if (argv[0] === '--cases' && argv.length === 4) {
        return cases(argv[1], argv[2], argv[3]);
    }
    if (argv.length === 2 && !argv[0].startsWith('--')) {
        const [url, key] = argv;
        const withKey = await session(
            new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${key}` } } })
        );
        return { ...withKey, ...(await discovery(url)) };
    }
    fail('usage: node interop.mjs <mcp-url> <api-key> | node interop.mjs --oauth <mcp-url> | node interop.mjs --cases <mcp-url> <alice-key> <bob-key>');
}

const timer = setTimeout(() => {
    console.error(`interop.mjs: no result after ${OVERALL_TIMEOUT_MS} ms`);
    process.exit(3);
}, OVERALL_TIMEOUT_MS);

try {
    const result = await main(process.argv.slice(2));
    process.stdout.write(JSON.stringify(result) + '\n');
    clearTimeout(timer);
} catch (error) {
    console.error(error?.stack ?? String(error));
    process.exit(1);
}
