using System.Net;
using System.Text;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.AspNetCore.Builder;

namespace McpGuard.Tests.Proxy;

/// <summary>
/// <c>MapMcpGuardProxy()</c> in front of an upstream on a real port: what is forwarded and what never is, how each
/// outcome of the upstream settles a priced call, and the errors the proxy answers for an upstream that failed.
/// </summary>
public sealed class ProxyTests
{
    internal static Dictionary<string, string?> Configuration(Uri upstream, IReadOnlyDictionary<string, string?>? more = null) =>
        GuardConfiguration.ApiKeys(GuardConfiguration.Alice("tools:basic", "tools:premium"), GuardConfiguration.Bob("tools:basic"))
            .WithCredits("Sqlite", ("alice", DemoKeys.AliceBalance), ("bob", DemoKeys.BobBalance))
            .With(new Dictionary<string, string?>
            {
                ["McpGuard:Upstream:Url"] = upstream.ToString(),
                ["McpGuard:Tools:add:Price"] = "800",
                ["McpGuard:Tools:add:Scopes:0"] = "tools:basic",
                ["McpGuard:Tools:echo:Scopes:0"] = "tools:basic",
                ["McpGuard:Tools:slow:Price"] = "100",
                ["McpGuard:Tools:progress:Price"] = "100",
                ["McpGuard:Tools:missing:Price"] = "100",
                ["McpGuard:Tools:premium_report:Scopes:0"] = "tools:premium",
                ["McpGuard:Tools:premium_report:Price"] = "5000",
            })
            .With(more);

    internal static Task<GuardedHost> StartProxyAsync(Uri upstream, IReadOnlyDictionary<string, string?>? more = null) =>
        GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")).AddMcpGuardProxy(),
            app => app.MapMcpGuardProxy("/mcp"),
            Configuration(upstream, more));

    [Fact]
    public async Task Forwards_the_mcp_headers_and_never_the_callers_credentials()
    {
        await using var upstream = await Upstream.StartAsync(OpensSessions(CreditCalls.AnswerWithResult));
        Environment.SetEnvironmentVariable("MCPGUARD_TEST_UPSTREAM_TOKEN", "upstream-secret-from-env");
        await using var guard = await StartProxyAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["McpGuard:Auth:ApiKeys:HeaderName"] = "X-Api-Key",
            ["McpGuard:Upstream:Credential:Header"] = "X-Upstream-Token",
            ["McpGuard:Upstream:Credential:EnvironmentVariable"] = "MCPGUARD_TEST_UPSTREAM_TOKEN",
        });

        var aliceSession = await OpenSessionAsync(guard, new Dictionary<string, string>());
        var bobSession = await OpenSessionAsync(guard, new Dictionary<string, string> { ["X-Api-Key"] = DemoKeys.Bob }, apiKey: null);
        var headers = new Dictionary<string, string>
        {
            ["Mcp-Session-Id"] = aliceSession,
            ["MCP-Protocol-Version"] = "2025-06-18",
            ["Mcp-Method"] = "tools/call",
            ["Mcp-Name"] = "echo",
            ["X-Forwarded-For"] = "203.0.113.9",
            ["X-Forwarded-Host"] = "evil.example",
            ["Forwarded"] = "for=203.0.113.9",
            ["X-Upstream-Token"] = "what-the-client-says",
        };
        using var byBearer = await guard.PostMcpAsync(CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""), headers: headers);
        using var byHeader = await guard.PostMcpAsync(
            CreditCalls.ToolCall(2, "echo", """{"message":"hi"}"""),
            headers: new Dictionary<string, string>(headers) { ["X-Api-Key"] = DemoKeys.Bob, ["Mcp-Session-Id"] = bobSession },
            apiKey: null);

        Assert.Equal(HttpStatusCode.OK, byBearer.StatusCode);
        Assert.Equal("""{"jsonrpc":"2.0","id":1,"result":{}}""", await byBearer.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, byHeader.StatusCode);
        Assert.Equal("""{"jsonrpc":"2.0","id":2,"result":{}}""", await byHeader.Content.ReadAsStringAsync());

        var seen = upstream.Requests.Skip(2).ToArray();
        Assert.Equal(2, seen.Length);
        Assert.Equal([aliceSession, bobSession], seen.Select(r => r.Header("Mcp-Session-Id")));
        foreach (var request in upstream.Requests)
        {
            Assert.Equal(("POST", "/mcp"), (request.Method, request.Path));
            Assert.Null(request.Header("Authorization"));
            Assert.Null(request.Header("X-Api-Key"));
            Assert.Equal("upstream-secret-from-env", request.Header("X-Upstream-Token"));
        }

        foreach (var request in seen)
        {
            Assert.Equal("2025-06-18", request.Header("MCP-Protocol-Version"));
            Assert.Equal("tools/call", request.Header("Mcp-Method"));
            Assert.Equal("echo", request.Header("Mcp-Name"));
            Assert.Equal("application/json, text/event-stream", request.Header("Accept"));
            Assert.Null(request.Header("Authorization"));
            Assert.Null(request.Header("X-Api-Key"));
            Assert.Null(request.Header("Forwarded"));
            Assert.Equal("127.0.0.1", request.Header("X-Forwarded-For"));
            Assert.Equal("http", request.Header("X-Forwarded-Proto"));
            Assert.Equal(guard.BaseAddress.Authority, request.Header("X-Forwarded-Host"));
            Assert.Equal("upstream-secret-from-env", request.Header("X-Upstream-Token"));
            Assert.DoesNotContain(request.Headers.Values, value => value.Contains("mcpg_demo", StringComparison.Ordinal));
            Assert.Matches("^req_", request.Header("X-Request-Id"));
        }

        // The body goes upstream byte for byte as the guard read it.
        Assert.Equal(CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""), seen[0].Body);
    }

    [Fact]
    public async Task A_session_serves_only_the_caller_that_opened_it()
    {
        await using var upstream = await Upstream.StartAsync(OpensSessions(CreditCalls.AnswerWithResult));
        await using var guard = await StartProxyAsync(upstream.Url);
        var aliceSession = await OpenSessionAsync(guard, new Dictionary<string, string>());
        var before = upstream.Requests.Count;

        using var own = await guard.PostMcpAsync(CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""), headers: Session(aliceSession, "req-own"));
        using var stolen = await guard.PostMcpAsync(CreditCalls.ToolCall(2, "echo", """{"message":"hi"}"""), headers: Session(aliceSession, "req-stolen"), apiKey: DemoKeys.Bob);
        using var unknown = await guard.PostMcpAsync(CreditCalls.ToolCall(3, "echo", """{"message":"hi"}"""), headers: Session("session-never-opened", "req-unknown"));
        using var priced = await guard.PostMcpAsync(CreditCalls.ToolCall(4, "slow", """{"ms":1}"""), headers: Session(aliceSession, "req-stolen-add"), apiKey: DemoKeys.Bob);

        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        Assert.Equal(before + 1, upstream.Requests.Count);
        foreach (var (response, id, requestId) in new[] { (stolen, 2, "req-stolen"), (unknown, 3, "req-unknown"), (priced, 4, "req-stolen-add") })
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal(
                // The priced call was charged before the proxy refused it: its error says the charge was given back.
                $$$"""{"jsonrpc":"2.0","id":{{{id}}},"error":{"code":-31107,"message":"Session not found: the Mcp-Session-Id names no session of yours; start a new one with initialize.","data":{"reason":"session_not_found","request_id":"{{{requestId}}}"{{{(requestId == "req-stolen-add" ? ",\"refunded\":true,\"refunded_micro\":100" : "")}}}}""" + "}}",
                await response.Content.ReadAsStringAsync());
        }

        // Bob's priced call on alice's session was refused and refunded; alice's DELETE ends her session for the proxy too.
        Assert.Equal(DemoKeys.BobBalance, LedgerFile.Balance(guard, "bob"));
        using var delete = new HttpRequestMessage(HttpMethod.Delete, "/mcp");
        delete.Headers.TryAddWithoutValidation("Authorization", $"Bearer {DemoKeys.Alice}");
        delete.Headers.TryAddWithoutValidation("Mcp-Session-Id", aliceSession);
        using var deleted = await guard.Client.SendAsync(delete);
        Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        using var afterDelete = await guard.PostMcpAsync(CreditCalls.ToolCall(5, "echo", """{"message":"hi"}"""), headers: Session(aliceSession, "req-after-delete"));
        Assert.Equal(HttpStatusCode.NotFound, afterDelete.StatusCode);
        Assert.Equal(before + 2, upstream.Requests.Count);
    }

    /// <summary>An upstream handler that stays silent for 30 s (or until <paramref name="release"/>), then runs <paramref name="then"/>.</summary>
    private static RequestDelegate Silent(RequestDelegate then, CancellationToken release) => async context =>
    {
        await Task.Delay(TimeSpan.FromSeconds(30), release).ContinueWith(_ => { }, TaskScheduler.Default);
        await then(context);
    };

    private static Dictionary<string, string> Session(string sessionId, string requestId) =>
        new() { ["Mcp-Session-Id"] = sessionId, ["X-Request-Id"] = requestId };

    /// <summary>An upstream handler that opens a new session (its own id) for every request that names none.</summary>
    internal static RequestDelegate OpensSessions(RequestDelegate inner)
    {
        var next = 0;
        return async context =>
        {
            if (!context.Request.Headers.ContainsKey("Mcp-Session-Id") && HttpMethods.IsPost(context.Request.Method))
            {
                context.Response.Headers["Mcp-Session-Id"] = $"session-{Interlocked.Increment(ref next)}";
            }

            if (HttpMethods.IsDelete(context.Request.Method))
            {
                return;
            }

            await inner(context);
        };
    }

    /// <summary>Opens a session through the proxy (an initialize the upstream answers with a new session id); its id.</summary>
    internal static async Task<string> OpenSessionAsync(GuardedHost guard, Dictionary<string, string> headers, string? apiKey = DemoKeys.Alice)
    {
        using var response = await guard.PostMcpAsync(
            """{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}""",
            headers: headers, apiKey: apiKey);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return Assert.Single(response.Headers.GetValues("Mcp-Session-Id"));
    }

    [Fact]
    public async Task Forwards_get_streams_with_last_event_id_and_delete()
    {
        await using var upstream = await Upstream.StartAsync(OpensSessions(async context =>
        {
            if (HttpMethods.IsGet(context.Request.Method))
            {
                context.Response.ContentType = "text/event-stream";
                await context.Response.WriteAsync("id: 7\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"replayed\"}}\n\n");
                return;
            }

            await CreditCalls.AnswerWithResult(context);
        }));
        await using var guard = await StartProxyAsync(upstream.Url);
        var session = await OpenSessionAsync(guard, new Dictionary<string, string>());

        using var get = new HttpRequestMessage(HttpMethod.Get, "/mcp");
        get.Headers.TryAddWithoutValidation("Authorization", $"Bearer {DemoKeys.Alice}");
        get.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
        get.Headers.TryAddWithoutValidation("Mcp-Session-Id", session);
        get.Headers.TryAddWithoutValidation("Last-Event-ID", "6");
        using var stream = await guard.Client.SendAsync(get);
        using var delete = new HttpRequestMessage(HttpMethod.Delete, "/mcp");
        delete.Headers.TryAddWithoutValidation("Authorization", $"Bearer {DemoKeys.Alice}");
        delete.Headers.TryAddWithoutValidation("Mcp-Session-Id", session);
        using var deleted = await guard.Client.SendAsync(delete);

        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        Assert.Equal("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
        Assert.Equal("id: 7\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"replayed\"}}\n\n", await stream.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        Assert.Equal(
            [("GET", session, "6", (string?)null), ("DELETE", session, null, null)],
            upstream.Requests.Skip(1).Select(r => (r.Method, r.Header("Mcp-Session-Id"), r.Header("Last-Event-ID"), r.Header("Authorization"))));
    }

    [Fact]
    public async Task A_call_without_a_key_never_reaches_the_upstream()
    {
        await using var upstream = await Upstream.StartAsync(CreditCalls.AnswerWithResult);
        await using var guard = await StartProxyAsync(upstream.Url);

        using var response = await guard.PostMcpAsync(CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""), apiKey: null);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer scope=\"tools:basic\"", response.Headers.WwwAuthenticate.ToString());
        Assert.Empty(upstream.Requests);
    }

    [Theory]
    [InlineData("result", HttpStatusCode.OK, "application/json", """{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"5"}]}}""", true)]
    [InlineData("result in SSE", HttpStatusCode.OK, "text/event-stream", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n", true)]
    [InlineData("tool error result", HttpStatusCode.OK, "application/json", """{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"no"}],"isError":true}}""", true)]
    [InlineData("result with _meta", HttpStatusCode.OK, "application/json", """{"jsonrpc":"2.0","id":1,"result":{"content":[],"_meta":{"trace":"t1"}}}""", true)]
    [InlineData("result not an object", HttpStatusCode.OK, "application/json", """{"jsonrpc":"2.0","id":1,"result":[]}""", true)]
    [InlineData("JSON-RPC error", HttpStatusCode.OK, "application/json", """{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool"}}""", false)]
    [InlineData("JSON-RPC error in SSE", HttpStatusCode.OK, "text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,\"message\":\"boom\"}}\n\n", false)]
    [InlineData("status 500", HttpStatusCode.InternalServerError, "application/json", """{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal server error"}}""", false)]
    [InlineData("status 400", HttpStatusCode.BadRequest, "application/json", """{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}""", false)]
    [InlineData("status 404", HttpStatusCode.NotFound, "text/plain", "Not Found", false)]
    [InlineData("no answer", HttpStatusCode.OK, "text/event-stream", ": keep-alive\n\n", false)]
    public async Task The_upstreams_answer_passes_through_and_settles_the_charge(string name, HttpStatusCode status, string contentType, string body, bool charged)
    {
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.StatusCode = (int)status;
            context.Response.ContentType = contentType;
            context.Response.ContentLength = Encoding.UTF8.GetByteCount(body);
            await context.Response.WriteAsync(body);
        });
        await using var guard = await StartProxyAsync(upstream.Url);

        using var response = await CreditCalls.CallAsync(guard, CreditCalls.Add(1), requestId: "req-" + name.Replace(' ', '-'));

        Assert.Equal(status, response.StatusCode);
        Assert.Equal(contentType, response.Content.Headers.ContentType?.MediaType);
        // A charged result (an object) carries its charge in its _meta; every other answer passes exactly as it came.
        var requestId = "req-" + name.Replace(' ', '-');
        var charge = $"\"mcpguard/charge\":{{\"charged_micro\":800,\"balance_micro\":{DemoKeys.AliceBalance - 800},\"request_id\":\"{requestId}\"}}";
        var expected = !charged || name == "result not an object" ? body
            : body.Contains("\"_meta\":{", StringComparison.Ordinal) ? body.Replace("}}}", "," + charge + "}}}", StringComparison.Ordinal)
            : body.Replace("}}", ",\"_meta\":{" + charge + "}}}", StringComparison.Ordinal);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(expected, text);
        // The upstream sent its own Content-Length: a rewritten JSON answer goes out with its new one.
        if (contentType == "application/json")
        {
            Assert.Equal(Encoding.UTF8.GetByteCount(text), response.Content.Headers.ContentLength);
        }

        Assert.Equal(charged ? "800" : null, CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal(DemoKeys.AliceBalance - (charged ? 800 : 0), LedgerFile.Balance(guard, "alice"));
        Assert.Single(upstream.Requests);
    }

    [Fact]
    public async Task An_upstream_that_cannot_be_reached_gets_502_upstream_error_and_the_charge_is_refunded()
    {
        var closed = new Uri($"http://127.0.0.1:{FreePort()}/mcp");
        await using var guard = await StartProxyAsync(closed);

        using var response = await CreditCalls.CallAsync(guard, CreditCalls.Add(1), requestId: "req-unreachable");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31501,"message":"Upstream error: the MCP server could not be reached or did not answer; nothing was charged.","data":{"reason":"upstream_error","request_id":"req-unreachable","refunded":true,"refunded_micro":800}}}""",
            await response.Content.ReadAsStringAsync());
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(guard, "alice"));
        Assert.Equal([-800, 800], LedgerFile.Rows(CreditCalls.LedgerPath(guard), "alice").Where(r => r.RequestId == "req-unreachable").Select(r => r.Amount));
    }

    [Fact]
    public async Task An_upstream_that_stays_silent_gets_504_upstream_timeout_and_the_charge_is_refunded()
    {
        using var release = new CancellationTokenSource();
        await using var upstream = await Upstream.StartAsync(Silent(CreditCalls.AnswerWithResult, release.Token));
        await using var guard = await StartProxyAsync(upstream.Url, new Dictionary<string, string?> { ["McpGuard:Upstream:ResponseTimeout"] = "00:00:01" });

        using var response = await CreditCalls.CallAsync(guard, CreditCalls.Add(1), requestId: "req-silent");
        await release.CancelAsync();

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31502,"message":"Upstream timeout: the MCP server sent nothing for 1 s; nothing was charged.","data":{"reason":"upstream_timeout","request_id":"req-silent","refunded":true,"refunded_micro":800}}}""",
            await response.Content.ReadAsStringAsync());
        Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(guard, "alice"));
    }

    [Fact]
    public async Task An_upstream_that_falls_silent_after_its_headers_gets_504_and_the_charge_is_refunded()
    {
        using var release = new CancellationTokenSource();
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.Body.FlushAsync();
            await Silent(_ => Task.CompletedTask, release.Token)(context);
        });
        await using var guard = await StartProxyAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["McpGuard:Upstream:ResponseTimeout"] = "00:00:01",
            ["McpGuard:Upstream:Credential:Header"] = "Authorization",
            ["McpGuard:Upstream:Credential:Value"] = "Bearer upstream-token",
        });

        using var response = await CreditCalls.CallAsync(guard, CreditCalls.Add(1), requestId: "req-quiet");
        await release.CancelAsync();

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31502,"message":"Upstream timeout: the MCP server sent nothing for 1 s; nothing was charged.","data":{"reason":"upstream_timeout","request_id":"req-quiet","refunded":true,"refunded_micro":800}}}""",
            await response.Content.ReadAsStringAsync());
        Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(guard, "alice"));
        // The configured credential replaced the caller's own Authorization header.
        Assert.Equal("Bearer upstream-token", Assert.Single(upstream.Requests).Header("Authorization"));
    }

    [Fact]
    public async Task A_priced_call_past_the_credit_upstream_timeout_gets_504_and_the_charge_is_refunded()
    {
        using var release = new CancellationTokenSource();
        await using var upstream = await Upstream.StartAsync(Silent(CreditCalls.AnswerWithResult, release.Token));
        await using var guard = await StartProxyAsync(upstream.Url, new Dictionary<string, string?> { ["McpGuard:Credits:UpstreamTimeout"] = "00:00:01" });

        using var response = await CreditCalls.CallAsync(guard, CreditCalls.Add(1), requestId: "req-credit-timeout");
        await release.CancelAsync();

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31502,"message":"Upstream timeout: no answer within 1 s; the charge was refunded.","data":{"reason":"upstream_timeout","request_id":"req-credit-timeout","refunded":true,"refunded_micro":800}}}""",
            await response.Content.ReadAsStringAsync());
        Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(guard, "alice"));
    }

    [Fact]
    public async Task An_upstream_that_dies_mid_stream_is_refunded()
    {
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n");
            await context.Response.Body.FlushAsync();
            await Task.Delay(200);
            context.Abort();
        });
        await using var guard = await StartProxyAsync(upstream.Url);

        using var request = CreditCalls.Post(CreditCalls.Add(1), DemoKeys.Alice, "req-died");
        using var response = await guard.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var read = await Record.ExceptionAsync(() => response.Content.ReadAsStringAsync());

        // The notification came through; then the stream broke off, as the upstream's did, without an answer.
        Assert.IsType<HttpRequestException>(read);
        await WaitForAsync(() => LedgerFile.Balance(guard, "alice") == DemoKeys.AliceBalance);
        Assert.Equal([-800, 800], LedgerFile.Rows(CreditCalls.LedgerPath(guard), "alice").Where(r => r.RequestId == "req-died").Select(r => r.Amount));
    }

    [Fact]
    public async Task The_proxy_needs_an_upstream_url_and_its_registration()
    {
        var missing = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")).AddMcpGuardProxy(),
            app => app.MapMcpGuardProxy(),
            GuardConfiguration.ApiKeys(GuardConfiguration.Alice("tools:basic"))));
        Assert.Equal(
            ["McpGuard:Upstream:Url is required by the proxy: the URL of the MCP server's Streamable HTTP endpoint, for example 'http://127.0.0.1:3001/mcp'."],
            missing.Failures);

        var invalid = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")).AddMcpGuardProxy(),
            app => app.MapMcpGuardProxy(),
            GuardConfiguration.ApiKeys(GuardConfiguration.Alice("tools:basic")).With(new Dictionary<string, string?>
            {
                ["McpGuard:Upstream:Url"] = "ws://127.0.0.1:3001/mcp?x=1",
                ["McpGuard:Upstream:ResponseTimeout"] = "00:00:00",
                ["McpGuard:Upstream:Credential:Header"] = "Host",
                ["McpGuard:Upstream:Credential:Value"] = "a",
                ["McpGuard:Upstream:Credential:EnvironmentVariable"] = "B",
            })));
        Assert.Equal(
            [
                "McpGuard:Upstream:Url must be an absolute http or https URL without query, fragment or user info, for example 'http://127.0.0.1:3001/mcp' (got 'ws://127.0.0.1:3001/mcp?x=1').",
                "McpGuard:Upstream:ResponseTimeout must be between 00:00:00.1 and 01:00:00 (got '00:00:00').",
                "McpGuard:Upstream:Credential:Header must be a valid HTTP header name that the proxy does not set itself, such as 'Authorization' or 'X-Api-Key' (got 'Host').",
                "McpGuard:Upstream:Credential needs exactly one of Value and EnvironmentVariable.",
            ],
            invalid.Failures);

        var credential = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")).AddMcpGuardProxy(),
            app => app.MapMcpGuardProxy(),
            GuardConfiguration.ApiKeys(GuardConfiguration.Alice("tools:basic")).With(new Dictionary<string, string?>
            {
                ["McpGuard:Upstream:Url"] = "http://127.0.0.1:3001/mcp",
                ["McpGuard:Upstream:Credential:Header"] = "X-Request-Id",
                ["McpGuard:Upstream:Credential:Value"] = "Bearer \u201ctoken\u201d",
            })));
        Assert.Equal(
            [
                "McpGuard:Upstream:Credential:Header must be a valid HTTP header name that the proxy does not set itself, such as 'Authorization' or 'X-Api-Key' (got 'X-Request-Id').",
                "McpGuard:Upstream:Credential's value must be visible ASCII characters, spaces and tabs (a header value); it has other characters.",
            ],
            credential.Failures);

        var unregistered = await Assert.ThrowsAsync<InvalidOperationException>(() => GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app => app.MapMcpGuardProxy(),
            GuardConfiguration.ApiKeys(GuardConfiguration.Alice("tools:basic"))));
        Assert.Equal(
            "MapMcpGuardProxy() needs McpGuard's proxy services: call builder.Services.AddMcpGuard(…).AddMcpGuardProxy() before building the app.",
            unregistered.Message);
    }

    internal static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    internal static async Task WaitForAsync(Func<bool> condition)
    {
        for (var i = 0; i < 100 && !condition(); i++)
        {
            await Task.Delay(50);
        }

        Assert.True(condition());
    }
}
