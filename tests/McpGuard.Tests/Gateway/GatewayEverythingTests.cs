using System.Net;
using System.Text.Json;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tests.Interop;
using ModelContextProtocol.Client;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;

namespace McpGuard.Tests.Gateway;

/// <summary>
/// mcpguard-gateway in front of a real MCP server in another language (<c>@modelcontextprotocol/server-everything</c>,
/// Node.js, stateful Streamable HTTP), reached by the C# and the TypeScript SDK clients and by raw HTTP: lists filtered by
/// scope, free and priced calls, every refusal the guard makes, progress streaming through unbuffered, session streams
/// and DELETE, and the upstream failing in each way it can, with the ledger checked after each; the upstream's own
/// request log shows no caller secret ever reached it.
/// </summary>
[Collection(nameof(GatewayEverythingTests))]
public sealed class GatewayEverythingTests
{
    internal const string UpstreamCredential = "gateway-to-upstream-credential";

    /// <summary>The gateway's appsettings.json in these tests; the upstream URL comes from the command line (--upstream).</summary>
    internal static string AppSettings(string? upstreamExtra = null) => $$"""
        {
          "McpGuard": {
            "Auth": {
              "Resource": "http://127.0.0.1/mcp",
              "AuthorizationServers": [ "https://auth.example.com" ],
              "ApiKeys": {
                "Enabled": true,
                "Keys": [
                  { "Id": "k-alice", "Account": "alice", "Scopes": [ "tools:basic", "tools:premium" ], "Hash": "{{McpGuardApiKey.Hash(DemoKeys.Alice)}}" },
                  { "Id": "k-bob", "Account": "bob", "Scopes": [ "tools:basic" ], "Hash": "{{McpGuardApiKey.Hash(DemoKeys.Bob)}}" }
                ]
              }
            },
            "Upstream": {
              "Credential": { "Header": "X-Upstream-Token", "Value": "{{UpstreamCredential}}" }{{upstreamExtra}}
            },
            "Credits": { "Enabled": true },
            "Accounts": { "alice": { "InitialBalance": 1000000 }, "bob": { "InitialBalance": 240 } },
            "RateLimits": {
              "Policies": { "sum": { "PerTool": true, "Windows": [ { "Permits": 3, "Window": "00:01:00" } ] } }
            },
            "Tools": {
              "echo": { "Scopes": [ "tools:basic" ] },
              "get-sum": { "Scopes": [ "tools:basic" ], "Price": 500, "RateLimitPolicy": "sum" },
              "trigger-long-running-operation": { "Scopes": [ "tools:basic" ], "Price": 100 },
              "get-tiny-image": { "Scopes": [ "tools:premium" ], "Price": 300 },
              "get-env": { "Scopes": [ "tools:admin" ] }
            }
          }
        }
        """;

    /// <summary>What everyone but alice (tools:premium) and an admin (tools:admin) sees of server-everything's tools.</summary>
    private static readonly string[] BobTools =
    [
        "echo", "get-annotated-message", "get-resource-links", "get-resource-reference", "get-structured-content", "get-sum",
        "gzip-file-as-resource", "simulate-research-query", "toggle-simulated-logging", "toggle-subscriber-updates", "trigger-long-running-operation",
    ];

    private static readonly string[] AliceTools = [.. BobTools.Append("get-tiny-image").Order(StringComparer.Ordinal)];

    [Fact]
    public async Task The_CSharp_client_lists_calls_and_streams_progress_through_the_gateway()
    {
        await using var upstream = await EverythingServer.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(AppSettings(), "--upstream", upstream.Url.ToString());

        string? sessionId;
        var progress = new List<(TimeSpan At, float Progress)>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        TimeSpan finished;
        await using (var alice = await ConnectAsync(gateway, DemoKeys.Alice))
        {
            sessionId = alice.SessionId;
            var tools = await alice.ListToolsAsync();
            Assert.Equal(AliceTools, tools.Select(t => t.Name).Order(StringComparer.Ordinal));

            var echo = await alice.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "hi" });
            Assert.Equal("Echo: hi", Assert.IsType<TextContentBlock>(Assert.Single(echo.Content)).Text);

            var sum = await alice.CallToolAsync("get-sum", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 });
            Assert.Equal("The sum of 2 and 3 is 5.", Assert.IsType<TextContentBlock>(Assert.Single(sum.Content)).Text);

            // The tool's own error is the tool answering: passed through as it is, and the call stands.
            var wrong = await alice.CallToolAsync("get-sum", new Dictionary<string, object?> { ["a"] = "two", ["b"] = 3 });
            Assert.True(wrong.IsError);
            Assert.StartsWith("MCP error -32602: Input validation error: Invalid arguments for tool get-sum", Assert.IsType<TextContentBlock>(Assert.Single(wrong.Content)).Text);

            clock.Restart();
            var reporter = new Progress(value => { lock (progress) { progress.Add((clock.Elapsed, value.Progress)); } });
            var slow = await alice.CallToolAsync(
                "trigger-long-running-operation", new Dictionary<string, object?> { ["duration"] = 4, ["steps"] = 4 }, reporter);
            finished = clock.Elapsed;
            Assert.NotEqual(true, slow.IsError);
        }

        // Progress came through as it happened (four steps over four seconds), well before the result.
        // (The last step's notification comes with the result, and the C# client may finish the call before it reads it. Two
        // close together can reach the handler out of order: a full run once saw 2, 1, 3.)
        Assert.Equal([1f, 2f, 3f], progress.Select(p => p.Progress).Order().Take(3));
        var first = progress.Min(p => p.At);
        Assert.True(finished - first >= TimeSpan.FromMilliseconds(2000), $"first progress at {first}, result at {finished}");

        // Alice paid for get-sum twice (the served call and the tool's own error) and the long operation once.
        Assert.Equal(1_000_000 - 500 - 500 - 100, LedgerFile.Balance(gateway.LedgerPath, "alice"));

        // The upstream saw the session's GET stream and its DELETE (the C# client ends its session), each with the session id.
        await ProxyWait.ForAsync(() => upstream.Requests().Any(r => r.Method == "DELETE"));
        var requests = upstream.Requests();
        Assert.Contains(requests, r => r is { Method: "GET", Status: 200 } && r.Header("mcp-session-id") == sessionId);
        Assert.Contains(requests, r => r is { Method: "DELETE", Status: 200 } && r.Header("mcp-session-id") == sessionId);
        AssertNoSecretReachedTheUpstream(requests);
    }

    [Fact]
    public async Task The_TypeScript_client_lists_calls_and_streams_progress_through_the_gateway()
    {
        await using var upstream = await EverythingServer.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(AppSettings(), "--upstream", upstream.Url.ToString());

        var (exitCode, stdout, stderr) = await TypeScriptInteropTests.RunAsync(
            "node", [Path.Combine(EverythingServer.InteropFolder, "gateway.mjs"), gateway.McpEndpoint.ToString(), DemoKeys.Alice, DemoKeys.Bob],
            EverythingServer.InteropFolder, TimeSpan.FromSeconds(60));
        Assert.True(exitCode == 0, $"gateway.mjs exited with {exitCode}:\n{stderr}\n{stdout}");
        using var document = JsonDocument.Parse(stdout);
        var alice = document.RootElement.GetProperty("alice");
        var bob = document.RootElement.GetProperty("bob");

        Assert.Equal(AliceTools, alice.GetProperty("tools").EnumerateArray().Select(t => t.GetString()!));
        Assert.Equal(BobTools, bob.GetProperty("tools").EnumerateArray().Select(t => t.GetString()!));
        Assert.Equal("Echo: hello through the gateway", alice.GetProperty("echo").GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("The sum of 2 and 3 is 5.", alice.GetProperty("sum").GetProperty("content")[0].GetProperty("text").GetString());
        Assert.True(alice.GetProperty("toolError").GetProperty("isError").GetBoolean());

        // Progress time-stamped by the client: the first step (after 1 s) arrived at least two seconds before the result (4 s).
        // (Buffered, every step would arrive with the result; a second of slack for a loaded machine.)
        var progress = alice.GetProperty("progress").EnumerateArray().ToList();
        Assert.Equal([1, 2, 3, 4], progress.Select(p => p.GetProperty("progress").GetInt32()));
        var first = progress[0].GetProperty("at").GetInt64();
        var finishedAt = alice.GetProperty("finishedAt").GetInt64();
        Assert.True(finishedAt - first >= 2000, $"first progress at {first} ms, result at {finishedAt} ms");

        // Outside bob's scopes: the SDK surfaces our 403 (StreamableHTTPError, its HTTP status as the code).
        var refused = bob.GetProperty("refused");
        Assert.Equal("StreamableHTTPError", refused.GetProperty("name").GetString());
        Assert.Equal(403, refused.GetProperty("code").GetInt32());
        Assert.Contains("insufficient_scope", refused.GetProperty("message").GetString(), StringComparison.Ordinal);

        Assert.Equal(1_000_000 - 500 - 500 - 100, LedgerFile.Balance(gateway.LedgerPath, "alice"));
        Assert.Equal(240, LedgerFile.Balance(gateway.LedgerPath, "bob"));

        // The SDK's DELETE ended the session upstream.
        var sessionId = alice.GetProperty("sessionId").GetString();
        await ProxyWait.ForAsync(() => upstream.Requests().Any(r => r.Method == "DELETE"));
        Assert.Contains(upstream.Requests(), r => r is { Method: "DELETE", Status: 200 } && r.Header("mcp-session-id") == sessionId);
        AssertNoSecretReachedTheUpstream(upstream.Requests());
    }

    [Fact]
    public async Task The_guards_refusals_come_from_the_gateway_and_never_reach_the_upstream()
    {
        await using var upstream = await EverythingServer.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(AppSettings(), "--upstream", upstream.Url.ToString());
        var session = await RawSession.OpenAsync(gateway, DemoKeys.Alice);
        var bobSession = await RawSession.OpenAsync(gateway, DemoKeys.Bob);

        // The upstream logs a request when its response ends, which may come after the client has read it: wait for the
        // two sessions' four requests (initialize, notifications/initialized) to be logged before counting.
        await ProxyWait.ForAsync(() => upstream.Requests().Count == 4);
        var before = upstream.Requests().Count;

        // 401, with the challenge and the metadata an MCP client discovers from it.
        using var anonymous = await session.PostAsync(CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""), key: null, requestId: "req-anonymous");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        // The metadata's address follows from McpGuard:Auth:Resource (RFC 9728), the gateway's public URL.
        Assert.Equal("Bearer resource_metadata=\"http://127.0.0.1/.well-known/oauth-protected-resource/mcp\", scope=\"tools:basic\"", anonymous.Headers.WwwAuthenticate.ToString());
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31101,"message":"invalid or expired API key","data":{"reason":"unauthorized","request_id":"req-anonymous"}}}""",
            await anonymous.Content.ReadAsStringAsync());
        using var metadata = await gateway.Client.GetAsync("/.well-known/oauth-protected-resource/mcp");
        Assert.Equal(HttpStatusCode.OK, metadata.StatusCode);
        Assert.Equal(
            """{"resource":"http://127.0.0.1/mcp","authorization_servers":["https://auth.example.com"],"bearer_methods_supported":["header"],"scopes_supported":["tools:admin","tools:basic","tools:premium"]}""",
            await metadata.Content.ReadAsStringAsync());

        // 403: bob lacks tools:premium.
        using var scope = await bobSession.PostAsync(CreditCalls.ToolCall(2, "get-tiny-image", "{}"), DemoKeys.Bob, "req-scope");
        Assert.Equal(HttpStatusCode.Forbidden, scope.StatusCode);
        Assert.Equal(
            "Bearer error=\"insufficient_scope\", scope=\"tools:premium\", resource_metadata=\"http://127.0.0.1/.well-known/oauth-protected-resource/mcp\"",
            scope.Headers.WwwAuthenticate.ToString());
        Assert.Equal(
            """{"jsonrpc":"2.0","id":2,"error":{"code":-31103,"message":"Insufficient scope: this call needs tools:premium.","data":{"reason":"insufficient_scope","request_id":"req-scope","scope":"tools:premium"}}}""",
            await scope.Content.ReadAsStringAsync());

        // 402: get-sum costs 500, bob has 240.
        using var broke = await bobSession.PostAsync(CreditCalls.ToolCall(3, "get-sum", """{"a":1,"b":2}"""), DemoKeys.Bob, "req-broke");
        Assert.Equal(HttpStatusCode.PaymentRequired, broke.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":3,"error":{"code":-31301,"message":"Insufficient credit","data":{"reason":"out_of_credit","request_id":"req-broke","balance_micro":240,"price_micro":500}}}""",
            await broke.Content.ReadAsStringAsync());
        var afterRefusals = upstream.Requests().Count;

        // 429: get-sum allows three calls a minute; the fourth is refused with Retry-After.
        for (var i = 0; i < 3; i++)
        {
            using var served = await session.PostAsync(CreditCalls.ToolCall(10 + i, "get-sum", """{"a":1,"b":2}"""), DemoKeys.Alice, $"req-sum-{i}");
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }

        using var limited = await session.PostAsync(CreditCalls.ToolCall(20, "get-sum", """{"a":1,"b":2}"""), DemoKeys.Alice, "req-limited");
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.InRange(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 60);
        var retryAfter = limited.Headers.GetValues("Retry-After").Single();
        Assert.Equal(
            $$$"""{"jsonrpc":"2.0","id":20,"error":{"code":-31201,"message":"Rate limit exceeded: retry after {{{retryAfter}}} s.","data":{"reason":"rate_limited","request_id":"req-limited","retry_after":{{{retryAfter}}},"limit":"sum-1m"}""" + "}}",
            await limited.Content.ReadAsStringAsync());

        // None of the refused calls reached the upstream; the three served ones did.
        Assert.Equal(before, afterRefusals);
        await ProxyWait.ForAsync(() => upstream.Requests().Count >= afterRefusals + 3);
        Assert.Equal(afterRefusals + 3, upstream.Requests().Count);
        Assert.Equal(1_000_000 - 3 * 500, LedgerFile.Balance(gateway.LedgerPath, "alice"));
        Assert.Equal(240, LedgerFile.Balance(gateway.LedgerPath, "bob"));
        AssertNoSecretReachedTheUpstream(upstream.Requests());
    }

    [Fact]
    public async Task An_upstream_killed_mid_call_is_refunded()
    {
        await using var upstream = await EverythingServer.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(AppSettings(), "--upstream", upstream.Url.ToString());
        var session = await RawSession.OpenAsync(gateway, DemoKeys.Alice);

        using var request = session.Request(
            CreditCalls.ToolCall(5, "trigger-long-running-operation", """{"duration":10,"steps":10}""").Replace("\"arguments\"", "\"_meta\":{\"progressToken\":\"p\"},\"arguments\"", StringComparison.Ordinal),
            DemoKeys.Alice, "req-killed");
        using var response = await gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var line = await reader.ReadLineAsync();
        while (line is not null && !line.Contains("notifications/progress", StringComparison.Ordinal))
        {
            line = await reader.ReadLineAsync();
        }

        Assert.NotNull(line);
        upstream.Kill();
        var rest = await Record.ExceptionAsync(() => reader.ReadToEndAsync());

        Assert.True(rest is HttpRequestException or IOException, $"the stream should break off, got {rest}");
        await ProxyWait.ForAsync(() => LedgerFile.Balance(gateway.LedgerPath, "alice") == 1_000_000);
        Assert.Equal([-100, 100], LedgerFile.Rows(gateway.LedgerPath, "alice").Where(r => r.RequestId == "req-killed").Select(r => r.Amount));
    }

    [Fact]
    public async Task An_upstream_that_is_down_slow_or_failing_is_refunded()
    {
        await using var upstream = await EverythingServer.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(
            AppSettings(upstreamExtra: """, "ResponseTimeout": "00:00:01" """), "--upstream", upstream.Url.ToString());
        var session = await RawSession.OpenAsync(gateway, DemoKeys.Alice);

        // Slow: one step of three seconds sends nothing for longer than the gateway's one-second response timeout.
        using var slow = await session.PostAsync(CreditCalls.ToolCall(1, "trigger-long-running-operation", """{"duration":3,"steps":1}"""), DemoKeys.Alice, "req-slow");
        Assert.Equal(HttpStatusCode.GatewayTimeout, slow.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31502,"message":"Upstream timeout: the MCP server sent nothing for 1 s; nothing was charged.","data":{"reason":"upstream_timeout","request_id":"req-slow","refunded":true,"refunded_micro":100}}}""",
            await slow.Content.ReadAsStringAsync());

        // Failing: the upstream answers 500 (its test hook), which passes through.
        using var failing = await session.PostAsync(
            CreditCalls.ToolCall(2, "get-sum", """{"a":1,"b":2}"""), DemoKeys.Alice, "req-500", new Dictionary<string, string> { ["x-mcpguard-test-fail"] = "500" });
        Assert.Equal(HttpStatusCode.InternalServerError, failing.StatusCode);
        Assert.Equal("""{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal server error"}}""", await failing.Content.ReadAsStringAsync());

        // Down: nothing listens any more.
        upstream.Kill();
        using var down = await session.PostAsync(CreditCalls.ToolCall(3, "get-sum", """{"a":1,"b":2}"""), DemoKeys.Alice, "req-down");
        Assert.Equal(HttpStatusCode.BadGateway, down.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":3,"error":{"code":-31501,"message":"Upstream error: the MCP server could not be reached or did not answer; nothing was charged.","data":{"reason":"upstream_error","request_id":"req-down","refunded":true,"refunded_micro":500}}}""",
            await down.Content.ReadAsStringAsync());

        Assert.Equal(1_000_000, LedgerFile.Balance(gateway.LedgerPath, "alice"));
        var rows = LedgerFile.Rows(gateway.LedgerPath, "alice");
        Assert.Equal([-100, 100], rows.Where(r => r.RequestId == "req-slow").Select(r => r.Amount));
        Assert.Equal([-500, 500], rows.Where(r => r.RequestId == "req-500").Select(r => r.Amount));
        Assert.Equal([-500, 500], rows.Where(r => r.RequestId == "req-down").Select(r => r.Amount));
    }

    /// <summary>No header of any request the upstream received carries a caller's key; each carries the gateway's own credential.</summary>
    private static void AssertNoSecretReachedTheUpstream(IReadOnlyList<LoggedRequest> requests)
    {
        Assert.NotEmpty(requests);
        foreach (var request in requests)
        {
            Assert.Null(request.Header("authorization"));
            Assert.DoesNotContain(request.Headers, h => h.Value.Contains(DemoKeys.Alice, StringComparison.Ordinal) || h.Value.Contains(DemoKeys.Bob, StringComparison.Ordinal));
            Assert.Equal(UpstreamCredential, request.Header("x-upstream-token"));
        }
    }

    private static async Task<McpClient> ConnectAsync(GatewayHost gateway, string key) =>
        await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = gateway.McpEndpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = $"Bearer {key}" },
        }));

    private sealed class Progress(Action<ProgressNotificationValue> report) : IProgress<ProgressNotificationValue>
    {
        public void Report(ProgressNotificationValue value) => report(value);
    }
}

/// <summary>A session with server-everything through the gateway, by raw HTTP: initialize, then requests carrying its id.</summary>
internal sealed class RawSession(GatewayHost gateway, string sessionId)
{
    public string SessionId { get; } = sessionId;

    public static async Task<RawSession> OpenAsync(GatewayHost gateway, string key)
    {
        using var initialize = CreditCalls.Post(
            """{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}""", key);
        using var response = await gateway.Client.SendAsync(initialize);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var session = new RawSession(gateway, response.Headers.GetValues("mcp-session-id").Single());
        using var initialized = await session.PostAsync("""{"jsonrpc":"2.0","method":"notifications/initialized"}""", key, requestId: null);
        Assert.Equal(HttpStatusCode.Accepted, initialized.StatusCode);
        return session;
    }

    public HttpRequestMessage Request(string body, string? key, string? requestId, IReadOnlyDictionary<string, string>? headers = null)
    {
        var request = CreditCalls.Post(body, key ?? "none", requestId);
        if (key is null)
        {
            Assert.True(request.Headers.Remove("Authorization"));
        }

        request.Headers.TryAddWithoutValidation("Mcp-Session-Id", SessionId);
        request.Headers.TryAddWithoutValidation("MCP-Protocol-Version", "2025-06-18");
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    public async Task<HttpResponseMessage> PostAsync(string body, string? key, string? requestId, IReadOnlyDictionary<string, string>? headers = null)
    {
        using var request = Request(body, key, requestId, headers);
        return await gateway.Client.SendAsync(request);
    }
}

/// <summary>Waits (at most five seconds) for what another process or a background refund does.</summary>
internal static class ProxyWait
{
    public static async Task ForAsync(Func<bool> condition, Func<string>? state = null)
    {
        for (var i = 0; i < 100 && !condition(); i++)
        {
            await Task.Delay(50);
        }

        Assert.True(condition(), state?.Invoke());
    }
}
