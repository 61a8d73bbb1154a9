using System.Net;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tests.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using ModelContextProtocol;
using ModelContextProtocol.AspNetCore;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Integration;

/// <summary>
/// The same cases against the sample's real <c>MapMcp()</c> in each session mode of ModelContextProtocol.AspNetCore
/// 2.4.0 (stateless, the SDK's default; stateful; stateful for <c>initialize</c> clients only), with the real C# SDK
/// client on protocol 2025-11-25 (the <c>initialize</c> handshake, a session where the server keeps them) and on
/// 2026-07-28 (per-request metadata, never a session). A fully stateful server refuses 2026-07-28 by design; that
/// pair has its own test. Each case asserts what the client reports and the exact response it was sent.
/// </summary>
public sealed class MapMcpClientTests
{
    private const string V2025 = "2025-11-25";
    private const string V2026 = "2026-07-28";
    /// <summary>10:00:30 UTC: 30 s to the next minute.</summary>
    private static readonly DateTimeOffset HalfPastTen = new(2026, 11, 21, 10, 0, 30, TimeSpan.Zero);

    public static TheoryData<HttpServerSessionMode, string> Matrix => new()
    {
        { HttpServerSessionMode.Stateless, V2025 },
        { HttpServerSessionMode.Stateless, V2026 },
        { HttpServerSessionMode.Stateful, V2025 },
        { HttpServerSessionMode.StatefulForInitializeClients, V2025 },
        { HttpServerSessionMode.StatefulForInitializeClients, V2026 },
    };

    public static TheoryData<HttpServerSessionMode> SessionModes => new() { HttpServerSessionMode.Stateful, HttpServerSessionMode.StatefulForInitializeClients };

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task A_free_call_answers_with_no_charge(HttpServerSessionMode mode, string version)
    {
        await using var host = await StartAsync(mode);
        await using var alice = await RecordedClient.ConnectAsync(host, DemoKeys.Alice, version);

        var result = await alice.Client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "hello" });

        AssertText("hello", result);
        AssertSession(alice, mode, version);
        var call = alice.Wire.ToolCall("echo");
        Assert.Equal(HttpStatusCode.OK, call.Status);
        Assert.Equal("text/event-stream", call.Response.Content.Headers.ContentType?.MediaType);
        WireAssert.IsGeneratedRequestId(call.Header("X-Request-Id")!);
        Assert.Null(call.Header(CreditCalls.ChargeHeader));
        Assert.Null(call.Header(CreditCalls.BalanceHeader));
        Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(host, "alice"));
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task A_priced_call_is_charged_once_with_the_charge_headers(HttpServerSessionMode mode, string version)
    {
        await using var host = await StartAsync(mode);
        await using var alice = await RecordedClient.ConnectAsync(host, DemoKeys.Alice, version);

        var result = await alice.Client.CallToolAsync("add", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 });

        AssertText("5", result);
        var call = alice.Wire.ToolCall("add");
        Assert.Equal(HttpStatusCode.OK, call.Status);
        Assert.Equal("800", call.Header(CreditCalls.ChargeHeader));
        Assert.Equal("999200", call.Header(CreditCalls.BalanceHeader));
        var path = CreditCalls.LedgerPath(host);
        Assert.Equal(999_200, LedgerFile.Balance(path, "alice"));
        var row = Assert.Single(LedgerFile.Rows(path, "alice"), r => r.Amount < 0);
        Assert.Equal(-800, row.Amount);
        Assert.Equal(call.Header("X-Request-Id"), row.RequestId);
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Without_a_key_the_client_gets_401_with_the_challenge(HttpServerSessionMode mode, string version)
    {
        await using var host = await StartAsync(mode);
        var wire = new WireLog();

        var failure = await Assert.ThrowsAsync<HttpRequestException>(() => RecordedClient.ConnectAsync(host, apiKey: null, version, wire));

        Assert.Equal(HttpStatusCode.Unauthorized, failure.StatusCode);
        var refused = Assert.Single(wire.Exchanges);
        Assert.Equal(version == V2025 ? "initialize" : "server/discover", refused.McpMethod);
        await AssertJsonRpcErrorAsync(refused.Response, HttpStatusCode.Unauthorized,
            $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic tools:premium\"", -31101, InvalidKeyMessage, "unauthorized", id: refused.Id);
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task A_call_outside_the_callers_scopes_is_403_insufficient_scope(HttpServerSessionMode mode, string version)
    {
        await using var host = await StartAsync(mode);
        await using var bob = await RecordedClient.ConnectAsync(host, DemoKeys.Bob, version);

        var failure = await Assert.ThrowsAsync<HttpRequestException>(() =>
            bob.Client.CallToolAsync("premium_report", new Dictionary<string, object?> { ["topic"] = "tea" }).AsTask());

        Assert.Equal(HttpStatusCode.Forbidden, failure.StatusCode);
        var call = bob.Wire.ToolCall("premium_report");
        await AssertPremiumRefusedAsync(call.Response, call.Id);
        Assert.Null(call.Header(CreditCalls.ChargeHeader));
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task The_call_past_the_limit_is_429_with_retry_after(HttpServerSessionMode mode, string version)
    {
        await using var host = await StartAsync(mode, new Dictionary<string, string?> { ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "2" });
        await using var alice = await RecordedClient.ConnectAsync(host, DemoKeys.Alice, version);

        for (var i = 0; i < 2; i++)
        {
            AssertText("hello", await alice.Client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "hello" }));
        }

        var failure = await Assert.ThrowsAsync<HttpRequestException>(() =>
            alice.Client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "one too many" }).AsTask());

        Assert.Equal(HttpStatusCode.TooManyRequests, failure.StatusCode);
        var refused = alice.Wire.Exchanges.Last(e => e.McpMethod == "tools/call");
        Assert.Equal("one too many", refused.Request!["params"]!["arguments"]!["message"]!.GetValue<string>());
        await RateLimitWire.AssertRateLimitedAsync(refused.Response, refused.Id, 30, "default-1m",
            "\"default-1m\";q=2;w=60, \"default-1d\";q=10000;w=86400", "\"default-1m\";r=0;t=30, \"default-1d\";r=9998;t=50370");
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task A_priced_call_without_credit_is_402_out_of_credit_and_charges_nothing(HttpServerSessionMode mode, string version)
    {
        await using var host = await StartAsync(mode, new Dictionary<string, string?> { ["McpGuard:Accounts:bob:FreeCallsPerMonth"] = "0" });
        await using var bob = await RecordedClient.ConnectAsync(host, DemoKeys.Bob, version);

        var failure = await Assert.ThrowsAsync<HttpRequestException>(() =>
            bob.Client.CallToolAsync("add", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 }).AsTask());

        Assert.Equal(HttpStatusCode.PaymentRequired, failure.StatusCode);
        var call = bob.Wire.ToolCall("add");
        Assert.Null(call.Header(CreditCalls.ChargeHeader));
        var requestId = call.Header("X-Request-Id");
        WireAssert.JsonEquals(
            $$$$"""{"jsonrpc":"2.0","id":{{{{call.Id}}}},"error":{"code":-32402,"message":"Insufficient credit","data":{"reason":"out_of_credit","request_id":"{{{{requestId}}}}","balance_micro":240,"price_micro":800,"topup_url":"https://billing.example.com/topup"}}}""",
            await call.Response.Content.ReadAsStringAsync());
        Assert.Equal(DemoKeys.BobBalance, LedgerFile.Balance(host, "bob"));
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Tools_list_shows_each_caller_the_tools_its_scopes_allow(HttpServerSessionMode mode, string version)
    {
        await using var host = await StartAsync(mode);
        await using var alice = await RecordedClient.ConnectAsync(host, DemoKeys.Alice, version);
        await using var bob = await RecordedClient.ConnectAsync(host, DemoKeys.Bob, version);

        var aliceTools = await alice.Client.ListToolsAsync();
        var bobTools = await bob.Client.ListToolsAsync();

        Assert.Equal(["add", "echo", "fail", "premium_report", "search", "slow"], aliceTools.Select(t => t.Name).Order(StringComparer.Ordinal));
        Assert.Equal(["add", "echo", "fail", "search", "slow"], bobTools.Select(t => t.Name).Order(StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task A_tool_error_is_an_error_result_and_its_charge_stands(HttpServerSessionMode mode, string version)
    {
        await using var host = await StartAsync(mode);
        await using var alice = await RecordedClient.ConnectAsync(host, DemoKeys.Alice, version);

        var result = await alice.Client.CallToolAsync("fail", new Dictionary<string, object?> { ["kind"] = "not_found" });

        Assert.True(result.IsError);
        var call = alice.Wire.ToolCall("fail");
        Assert.Equal(
            "**Error code:** not_found\nThe requested item was not found.\nCheck the identifier (list or search first), then call again with one that exists.",
            Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);
        var structured = result.StructuredContent!.Value;
        Assert.Equal("not_found", structured.GetProperty("reason").GetString());
        Assert.Equal(call.Header("X-Request-Id"), structured.GetProperty("request_id").GetString());
        Assert.Equal("100", call.Header(CreditCalls.ChargeHeader));
        Assert.Equal(999_900, LedgerFile.Balance(host, "alice"));
    }

    // ---- Sessions (stateful modes, initialize-handshake clients) ----

    [Theory]
    [MemberData(nameof(SessionModes))]
    public async Task A_session_its_get_stream_and_its_delete_are_guarded_like_any_call(HttpServerSessionMode mode)
    {
        await using var host = await StartAsync(mode);
        var alice = await RecordedClient.ConnectAsync(host, DemoKeys.Alice, V2025);
        var sessionId = alice.Client.SessionId!;
        AssertText("hello", await alice.Client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "hello" }));

        // Without the key, the session's stream and its end are refused before the SDK sees them.
        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Delete })
        {
            using var anonymous = await SessionRequestAsync(host, method, sessionId, apiKey: null);
            await WireAssert.JsonRpcErrorAsync(anonymous, HttpStatusCode.Unauthorized, -31101, InvalidKeyMessage, "unauthorized", id: null);
            Assert.Equal($"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic tools:premium\"", Challenge(anonymous));
        }

        await alice.DisposeAsync();

        var initialize = alice.Wire.OnlyCall("initialize");
        Assert.Equal(sessionId, initialize.Header("Mcp-Session-Id"));
        var stream = Assert.Single(alice.Wire.Exchanges, e => e.HttpMethod == "GET");
        Assert.Equal(HttpStatusCode.OK, stream.Status);
        Assert.Equal("text/event-stream", stream.Response.Content.Headers.ContentType?.MediaType);
        WireAssert.IsGeneratedRequestId(stream.Header("X-Request-Id")!);
        var end = Assert.Single(alice.Wire.Exchanges, e => e.HttpMethod == "DELETE");
        Assert.Equal(HttpStatusCode.OK, end.Status);
        WireAssert.IsGeneratedRequestId(end.Header("X-Request-Id")!);

        // The session is gone: the SDK answers for it, through the guard.
        using var after = await host.PostMcpAsync(Echo(), headers: SessionHeaders(sessionId));
        Assert.Equal(HttpStatusCode.NotFound, after.StatusCode);
        WireAssert.JsonEquals("""{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Session not found"}}""", await after.Content.ReadAsStringAsync());
    }

    [Theory]
    [MemberData(nameof(SessionModes))]
    public async Task One_caller_cannot_use_another_callers_session(HttpServerSessionMode mode)
    {
        await using var host = await StartAsync(mode);
        await using var alice = await RecordedClient.ConnectAsync(host, DemoKeys.Alice, V2025);
        var sessionId = alice.Client.SessionId!;
        const string Forbidden = "Forbidden: The currently authenticated user does not match the user who initiated the session.";

        using (var post = await host.PostMcpAsync(Echo("bob in alice's session"), headers: SessionHeaders(sessionId), apiKey: DemoKeys.Bob))
        {
            Assert.Equal(HttpStatusCode.Forbidden, post.StatusCode);
            WireAssert.JsonEquals($$$"""{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"{{{Forbidden}}}"}}""", await post.Content.ReadAsStringAsync());
            WireAssert.IsGeneratedRequestId(WireAssert.RequestId(post));
        }

        using (var get = await SessionRequestAsync(host, HttpMethod.Get, sessionId, DemoKeys.Bob))
        {
            Assert.Equal(HttpStatusCode.Forbidden, get.StatusCode);
            WireAssert.JsonEquals($$$"""{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"{{{Forbidden}}}"}}""", await get.Content.ReadAsStringAsync());
        }

        using (var delete = await SessionRequestAsync(host, HttpMethod.Delete, sessionId, DemoKeys.Bob))
        {
            Assert.Equal(HttpStatusCode.Forbidden, delete.StatusCode);
            WireAssert.JsonEquals($$$"""{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"{{{Forbidden}}}"}}""", await delete.Content.ReadAsStringAsync());
        }

        // Alice's session is untouched.
        AssertText("still mine", await alice.Client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "still mine" }));
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("user-7", "user-7")]
    public async Task A_session_belongs_to_the_account_even_when_the_tokens_sub_does_not_say_so(string? aliceSub, string? bobSub)
    {
        // McpGuard:Auth:Jwt:AccountClaim names the account; the SDK binds a session to the principal's nameidentifier,
        // else sub, else upn. Tokens without sub, or with one sub for two accounts, must not share a session.
        await using var host = await StartAsync(HttpServerSessionMode.Stateful, new Dictionary<string, string?>
        {
            ["McpGuard:Auth:Jwt:Enabled"] = "true",
            ["McpGuard:Auth:Jwt:AccountClaim"] = "account",
        });
        var aliceToken = AccountToken("alice", aliceSub);
        var bobToken = AccountToken("bob", bobSub);
        await using var alice = await RecordedClient.ConnectAsync(host, aliceToken, V2025);
        var sessionId = alice.Client.SessionId!;

        using var post = await host.PostMcpAsync(Echo("bob in alice's session"), headers: SessionHeaders(sessionId), apiKey: bobToken);

        Assert.Equal(HttpStatusCode.Forbidden, post.StatusCode);
        WireAssert.JsonEquals(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"Forbidden: The currently authenticated user does not match the user who initiated the session."}}""",
            await post.Content.ReadAsStringAsync());
        using var own = await host.PostMcpAsync(Echo("alice in her session"), headers: SessionHeaders(sessionId), apiKey: aliceToken);
        await AssertToolTextAsync(own, "alice in her session");
    }

    [Fact]
    public async Task A_fully_stateful_server_refuses_2026_07_28_and_the_default_client_falls_back_to_a_session()
    {
        await using var host = await StartAsync(HttpServerSessionMode.Stateful);

        var pinned = new WireLog();
        var refusal = await Assert.ThrowsAnyAsync<McpException>(() => RecordedClient.ConnectAsync(host, DemoKeys.Alice, V2026, pinned));
        await using var fallback = await RecordedClient.ConnectAsync(host, DemoKeys.Alice, protocolVersion: null);

        Assert.Contains(V2026, refusal.Message, StringComparison.Ordinal);
        var probe = Assert.Single(pinned.Exchanges);
        Assert.Equal("server/discover", probe.McpMethod);
        Assert.Equal(HttpStatusCode.BadRequest, probe.Status);
        Assert.Equal(-32022, JsonNodeOf(await probe.Response.Content.ReadAsStringAsync())["error"]!["code"]!.GetValue<int>());
        WireAssert.IsGeneratedRequestId(probe.Header("X-Request-Id")!);
        Assert.Equal(V2025, fallback.Client.NegotiatedProtocolVersion);
        Assert.NotNull(fallback.Client.SessionId);
        AssertText("5", await fallback.Client.CallToolAsync("add", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 }));
        Assert.Equal(999_200, LedgerFile.Balance(host, "alice"));
    }

    // ---- Helpers ----

    private static Task<GuardedHost> StartAsync(HttpServerSessionMode mode, IReadOnlyDictionary<string, string?>? configuration = null) =>
        GuardedHost.StartSampleAsync(configuration, builder => builder.ConfigureServices(services =>
        {
            services.AddSingleton<TimeProvider>(new FakeTimeProvider(HalfPastTen));
            services.Configure<HttpServerTransportOptions>(options => options.SessionMode = mode);
        }));

    private static void AssertText(string expected, CallToolResult result)
    {
        Assert.NotEqual(true, result.IsError);
        Assert.Equal(expected, Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);
    }

    /// <summary>Sessions where the server keeps them and the client negotiated the handshake; none otherwise.</summary>
    private static void AssertSession(RecordedClient client, HttpServerSessionMode mode, string version)
    {
        Assert.Equal(version, client.Client.NegotiatedProtocolVersion);
        if (mode != HttpServerSessionMode.Stateless && version == V2025)
        {
            Assert.NotNull(client.Client.SessionId);
        }
        else
        {
            Assert.Null(client.Client.SessionId);
        }
    }

    private static Dictionary<string, string> SessionHeaders(string sessionId) =>
        new() { ["Mcp-Session-Id"] = sessionId, ["MCP-Protocol-Version"] = V2025 };

    private static async Task<HttpResponseMessage> SessionRequestAsync(GuardedHost host, HttpMethod method, string sessionId, string? apiKey)
    {
        using var request = new HttpRequestMessage(method, "/mcp");
        request.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
        foreach (var (name, value) in SessionHeaders(sessionId))
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        if (apiKey is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {apiKey}");
        }

        return await host.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    /// <summary>A token for the sample's development issuer naming the account in an <c>account</c> claim, with <c>sub</c> only when given.</summary>
    private static string AccountToken(string account, string? subject)
    {
        var claims = new Dictionary<string, object> { ["account"] = account, ["scope"] = "tools:basic" };
        if (subject is not null)
        {
            claims["sub"] = subject;
        }

        var now = HalfPastTen.UtcDateTime;
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = TestTokens.Issuer,
            Audience = TestTokens.Audience,
            Claims = claims,
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddHours(1),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Convert.FromBase64String(TestTokens.SigningKey)), SecurityAlgorithms.HmacSha256),
        });
    }

    private static System.Text.Json.Nodes.JsonNode JsonNodeOf(string text) => System.Text.Json.Nodes.JsonNode.Parse(text)!;
}
