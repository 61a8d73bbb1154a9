using System.Net;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.AspNetCore;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Integration;

/// <summary>
/// Messages without a method (a JSON-RPC response the client posts, the session's <c>GET</c> stream, its
/// <c>DELETE</c>) on the sample's stateful <c>MapMcp()</c>. With credentials they are authenticated like any request.
/// Without, they pass exactly when a session could be opened without credentials (<c>initialize</c> is an anonymous
/// method), and the session stays its owner's: the SDK's owner check refuses anyone else with 403. None of them is
/// rate-limited as a call or charged.
/// </summary>
public sealed class SessionMessageTests
{
    private const string V2025 = "2025-11-25";
    private const string Forbidden = "Forbidden: The currently authenticated user does not match the user who initiated the session.";
    private const string ClientReply = """{"jsonrpc":"2.0","id":"srv-1","result":{"roots":[]}}""";

    private static readonly Dictionary<string, string?> AnonymousSessions = new()
    {
        ["McpGuard:Auth:AnonymousMethods:0"] = "initialize",
        ["McpGuard:Auth:AnonymousMethods:1"] = "notifications/initialized",
        ["McpGuard:Auth:AnonymousMethods:2"] = "tools/list",
    };

    [Fact]
    public async Task An_anonymous_session_is_read_answered_and_deleted_without_credentials()
    {
        await using var host = await StartAsync(AnonymousSessions);
        var session = await OpenSessionAsync(host, apiKey: null);

        using (var stream = await SendAsync(host, HttpMethod.Get, session, apiKey: null))
        {
            Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
            Assert.Equal("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
            WireAssert.IsGeneratedRequestId(WireAssert.RequestId(stream));
        }

        using (var reply = await PostAsync(host, ClientReply, session, apiKey: null))
        {
            Assert.Equal(HttpStatusCode.Accepted, reply.StatusCode);
            Assert.Equal(string.Empty, await reply.Content.ReadAsStringAsync());
        }

        using (var end = await SendAsync(host, HttpMethod.Delete, session, apiKey: null))
        {
            Assert.Equal(HttpStatusCode.OK, end.StatusCode);
        }
    }

    [Fact]
    public async Task A_keyed_session_cannot_be_read_answered_or_deleted_without_its_key_or_with_another()
    {
        await using var host = await StartAsync(AnonymousSessions);
        var session = await OpenSessionAsync(host, DemoKeys.Alice);

        foreach (var apiKey in new[] { null, DemoKeys.Bob })
        {
            using (var stream = await SendAsync(host, HttpMethod.Get, session, apiKey))
            {
                Assert.Equal(HttpStatusCode.Forbidden, stream.StatusCode);
                WireAssert.JsonEquals($$$"""{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"{{{Forbidden}}}"}}""", await stream.Content.ReadAsStringAsync());
            }

            using (var reply = await PostAsync(host, ClientReply, session, apiKey))
            {
                Assert.Equal(HttpStatusCode.Forbidden, reply.StatusCode);
                WireAssert.JsonEquals($$$"""{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"{{{Forbidden}}}"}}""", await reply.Content.ReadAsStringAsync());
            }

            using (var end = await SendAsync(host, HttpMethod.Delete, session, apiKey))
            {
                Assert.Equal(HttpStatusCode.Forbidden, end.StatusCode);
            }
        }

        // A revoked key is refused by the guard, whatever the session.
        using (var revoked = await PostAsync(host, ClientReply, session, DemoKeys.Revoked))
        {
            await WireAssert.JsonRpcErrorAsync(revoked, HttpStatusCode.Unauthorized, -31102, InvalidKeyMessage, "invalid_token", id: "srv-1");
        }

        // Alice still owns it: her reply is taken, and her key ends it.
        using (var reply = await PostAsync(host, ClientReply, session, DemoKeys.Alice))
        {
            Assert.Equal(HttpStatusCode.Accepted, reply.StatusCode);
        }

        using (var end = await SendAsync(host, HttpMethod.Delete, session, DemoKeys.Alice))
        {
            Assert.Equal(HttpStatusCode.OK, end.StatusCode);
        }
    }

    [Fact]
    public async Task Without_anonymous_sessions_a_reply_without_credentials_gets_401_with_the_challenge()
    {
        await using var host = await StartAsync(null);
        var session = await OpenSessionAsync(host, DemoKeys.Alice);

        using var reply = await PostAsync(host, ClientReply, session, apiKey: null);

        await WireAssert.JsonRpcErrorAsync(reply, HttpStatusCode.Unauthorized, -31101, InvalidKeyMessage, "unauthorized", id: "srv-1");
        Assert.Equal($"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic tools:premium\"", Challenge(reply));
    }

    [Fact]
    public async Task Replies_spend_no_permit_and_cost_nothing()
    {
        await using var host = await StartAsync(new Dictionary<string, string?>(AnonymousSessions)
        {
            ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "3",
        });
        var session = await OpenSessionAsync(host, DemoKeys.Bob);

        for (var i = 0; i < 5; i++)
        {
            using var reply = await PostAsync(host, ClientReply, session, DemoKeys.Bob);
            Assert.Equal(HttpStatusCode.Accepted, reply.StatusCode);
        }

        using var call = await PostAsync(host, """{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"still counted from 3"}}}""", session, DemoKeys.Bob);
        Assert.Equal(HttpStatusCode.OK, call.StatusCode);
        Assert.StartsWith("\"default-1m\";r=2;", Assert.Single(call.Headers.GetValues("RateLimit")), StringComparison.Ordinal);
        Assert.Equal(DemoKeys.BobBalance, LedgerFile.Balance(host, "bob"));
    }

    private static Task<GuardedHost> StartAsync(IReadOnlyDictionary<string, string?>? configuration) =>
        GuardedHost.StartSampleAsync(configuration, builder => builder.ConfigureServices(services =>
            services.Configure<HttpServerTransportOptions>(options => options.SessionMode = HttpServerSessionMode.Stateful)));

    /// <summary>initialize and notifications/initialized, as a 2025-11-25 client opens a session.</summary>
    private static async Task<string> OpenSessionAsync(GuardedHost host, string? apiKey)
    {
        using var initialize = await host.PostMcpAsync(
            """{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"roots":{}},"clientInfo":{"name":"session-test","version":"1"}}}""",
            headers: new Dictionary<string, string> { ["MCP-Protocol-Version"] = V2025 },
            apiKey: apiKey);
        Assert.Equal(HttpStatusCode.OK, initialize.StatusCode);
        var session = Assert.Single(initialize.Headers.GetValues("Mcp-Session-Id"));
        using var initialized = await PostAsync(host, """{"jsonrpc":"2.0","method":"notifications/initialized"}""", session, apiKey);
        Assert.Equal(HttpStatusCode.Accepted, initialized.StatusCode);
        return session;
    }

    private static Task<HttpResponseMessage> PostAsync(GuardedHost host, string body, string session, string? apiKey) =>
        host.PostMcpAsync(body, headers: new Dictionary<string, string> { ["Mcp-Session-Id"] = session, ["MCP-Protocol-Version"] = V2025 }, apiKey: apiKey);

    private static async Task<HttpResponseMessage> SendAsync(GuardedHost host, HttpMethod method, string session, string? apiKey)
    {
        using var request = new HttpRequestMessage(method, "/mcp");
        request.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
        request.Headers.TryAddWithoutValidation("Mcp-Session-Id", session);
        request.Headers.TryAddWithoutValidation("MCP-Protocol-Version", V2025);
        if (apiKey is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {apiKey}");
        }

        return await host.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }
}
