using System.Net;
using System.Text;
using System.Text.Json;
using McpGuard.Protocol;
using McpGuard.Sample;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.AspNetCore;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Integration;

/// <summary>
/// <c>EnableLegacySse = true</c> (obsolete in the SDK, still public): <c>MapMcp("/mcp")</c> also maps the HTTP+SSE
/// transport's <c>GET /mcp/sse</c> and <c>POST /mcp/message</c>. <c>UseMcpGuard()</c> guards them like the endpoint
/// itself; a priced call there is refused, because its answer goes out on the stream after the POST's 202.
/// </summary>
public sealed class LegacySseTests
{
    [Fact]
    public async Task An_anonymous_caller_cannot_open_a_legacy_sse_session()
    {
        await using var host = await StartAsync();

        using var response = await OpenStreamAsync(host, apiKey: null);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, -31101, InvalidKeyMessage, "unauthorized", id: null);
        Assert.Equal(AllScopesChallenge, Challenge(response));
    }

    [Fact]
    public async Task An_anonymous_caller_cannot_post_a_priced_scope_protected_call_to_a_legacy_session()
    {
        await using var host = await StartAsync();
        await using var alice = await LegacySseSession.OpenAsync(host, DemoKeys.Alice);

        using var response = await alice.PostAsync(PremiumReport(), apiKey: null);

        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:premium\"",
            -31101, InvalidKeyMessage, "unauthorized");
        Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(host, "alice"));
    }

    [Fact]
    public async Task A_free_call_over_legacy_sse_is_accepted_and_answered_on_the_stream()
    {
        await using var host = await StartAsync();
        await using var alice = await LegacySseSession.OpenAsync(host, DemoKeys.Alice);

        using var response = await alice.PostAsync(Echo("over the old transport"), DemoKeys.Alice);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal("Accepted", await response.Content.ReadAsStringAsync());
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(response));
        var message = await alice.ReadMessageAsync();
        Assert.Equal(1, message.GetProperty("id").GetInt32());
        Assert.Equal("over the old transport", message.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Scopes_hold_over_legacy_sse()
    {
        await using var host = await StartAsync();
        await using var bob = await LegacySseSession.OpenAsync(host, DemoKeys.Bob);

        using var response = await bob.PostAsync(PremiumReport(), DemoKeys.Bob);

        await AssertPremiumRefusedAsync(response);
    }

    [Fact]
    public async Task Tools_list_over_legacy_sse_shows_the_callers_tools()
    {
        await using var host = await StartAsync();
        await using var bob = await LegacySseSession.OpenAsync(host, DemoKeys.Bob);

        using var response = await bob.PostAsync(Request("tools/list", 5), DemoKeys.Bob);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var message = await bob.ReadMessageAsync();
        Assert.Equal(5, message.GetProperty("id").GetInt32());
        Assert.Equal(
            ["add", "echo", "fail", "search", "slow"],
            message.GetProperty("result").GetProperty("tools").EnumerateArray().Select(t => t.GetProperty("name").GetString()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Rate_limits_hold_over_legacy_sse()
    {
        await using var host = await StartAsync(new Dictionary<string, string?> { ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "1" });
        await using var alice = await LegacySseSession.OpenAsync(host, DemoKeys.Alice);

        using var first = await alice.PostAsync(Echo(id: 1), DemoKeys.Alice);
        using var second = await alice.PostAsync(Echo(id: 2), DemoKeys.Alice);

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        Assert.Equal("rate_limited", JsonDocument.Parse(await second.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("data").GetProperty("reason").GetString());
    }

    [Fact]
    public async Task A_priced_call_over_legacy_sse_is_refused_and_charges_nothing()
    {
        await using var host = await StartAsync();
        await using var alice = await LegacySseSession.OpenAsync(host, DemoKeys.Alice);

        using var response = await alice.PostAsync(ToolCall("add", new { a = 2, b = 3 }, 7), DemoKeys.Alice);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -31304,
            "Streamable HTTP required: this call has a price, and priced calls are served only over Streamable HTTP (POST /mcp), where the answer settles the charge.",
            "streamable_http_required", id: 7L);
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(host, "alice"));
    }

    [Fact]
    public async Task One_caller_cannot_post_to_another_callers_legacy_session()
    {
        await using var host = await StartAsync();
        await using var alice = await LegacySseSession.OpenAsync(host, DemoKeys.Alice);

        using var response = await alice.PostAsync(Echo("bob in alice's session"), DemoKeys.Bob);

        // The SDK's own answer for another caller's session, through the guard: 403 with no body.
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("", await response.Content.ReadAsStringAsync());
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(response));
    }

    // ---- RequireMcpGuard() and the start-up check ----

    [Fact]
    public async Task RequireMcpGuard_on_MapMcp_guards_its_legacy_routes_too()
    {
        await using var host = await StartBuiltAsync(app => app.MapMcp("/rpc").RequireMcpGuard());

        using (var anonymous = await OpenStreamAsync(host, apiKey: null, "/rpc/sse"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            await WireAssert.JsonRpcErrorAsync(anonymous, HttpStatusCode.Unauthorized, -31101, InvalidKeyMessage, "unauthorized", id: null);
        }

        await using var alice = await LegacySseSession.OpenAsync(host, DemoKeys.Alice, "/rpc/sse");
        using (var free = await alice.PostAsync(Echo("guarded"), DemoKeys.Alice))
        {
            Assert.Equal(HttpStatusCode.Accepted, free.StatusCode);
            Assert.Equal("guarded", (await alice.ReadMessageAsync()).GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        }

        using var priced = await alice.PostAsync(ToolCall("add", new { a = 2, b = 3 }, 2), DemoKeys.Alice);
        await WireAssert.JsonRpcErrorAsync(priced, HttpStatusCode.BadRequest, -31304,
            "Streamable HTTP required: this call has a price, and priced calls are served only over Streamable HTTP (POST /rpc), where the answer settles the charge.",
            "streamable_http_required", id: 2L);
    }

    [Fact]
    public async Task MapMcp_outside_the_guarded_path_stops_the_app_naming_each_route_and_the_fix()
    {
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => StartBuiltAsync(app =>
        {
            app.UseMcpGuard();
            app.MapMcp("/other");
        }));

        Assert.Equal(
            "McpGuard: these MCP endpoints are not guarded: POST /other, GET /other, DELETE /other, GET /other/sse, POST /other/message. "
            + "UseMcpGuard() guards McpGuard:Path ('/mcp') and the legacy SSE routes MapMcp() maps under it (…/sse, …/message). "
            + "Map the MCP endpoint at McpGuard:Path, set McpGuard:Path to its route, or guard it where it is mapped: app.MapMcp(\"…\").RequireMcpGuard().",
            failure.Message);
    }

    [Fact]
    public async Task MapMcp_with_neither_UseMcpGuard_nor_RequireMcpGuard_stops_the_app()
    {
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => StartBuiltAsync(app => app.MapMcp("/mcp")));

        Assert.Equal(
            "McpGuard: these MCP endpoints are not guarded: POST /mcp, GET /mcp, DELETE /mcp, GET /mcp/sse, POST /mcp/message. "
            + "Call app.UseMcpGuard() before mapping them (it guards McpGuard:Path, '/mcp', and the legacy SSE routes MapMcp() maps under it), "
            + "or guard them where they are mapped: app.MapMcp(\"…\").RequireMcpGuard().",
            failure.Message);
    }

    [Fact]
    public async Task The_sample_with_another_guarded_path_does_not_start()
    {
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Path"] = "/guarded" }, inMemory: true));

        Assert.StartsWith("McpGuard: these MCP endpoints are not guarded: POST /mcp. UseMcpGuard() guards McpGuard:Path ('/guarded')", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_endpoint_MapMcp_maps_is_found_by_its_handler_and_by_its_display_name()
    {
        await using var host = await StartAsync(inMemory: true);

        var found = host.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Select(e => (Route: McpEndpoints.LiteralPath(e.RoutePattern), Methods: string.Join("|", e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? []),
                ByHandler: McpEndpoints.Classify(e.RequestDelegate, e.Metadata, displayName: null), ByName: McpEndpoints.Classify(null, [], e.DisplayName)))
            .Where(e => e.ByHandler != McpEndpointKind.None || e.ByName != McpEndpointKind.None)
            .OrderBy(e => e.Route, StringComparer.Ordinal).ThenBy(e => e.Methods, StringComparer.Ordinal)
            .ToList();

        Assert.Equal(
            [
                ("/mcp", "DELETE", McpEndpointKind.StreamableHttp, McpEndpointKind.StreamableHttp),
                ("/mcp", "GET", McpEndpointKind.StreamableHttp, McpEndpointKind.StreamableHttp),
                ("/mcp", "POST", McpEndpointKind.StreamableHttp, McpEndpointKind.StreamableHttp),
                ("/mcp/message", "POST", McpEndpointKind.LegacySse, McpEndpointKind.LegacySse),
                ("/mcp/sse", "GET", McpEndpointKind.LegacySse, McpEndpointKind.LegacySse),
            ],
            found);
    }

    private static Task<GuardedHost> StartAsync(IReadOnlyDictionary<string, string?>? configuration = null, bool inMemory = false) =>
        GuardedHost.StartSampleAsync(configuration, inMemory: inMemory, configure: builder => builder.ConfigureServices(services =>
            services.Configure<HttpServerTransportOptions>(options =>
            {
                options.SessionMode = HttpServerSessionMode.Stateful;
#pragma warning disable MCP9004 // The obsolete legacy SSE transport is what these tests are about.
                options.EnableLegacySse = true;
#pragma warning restore MCP9004
            })));

    /// <summary>An app of the test's own: the sample's configuration and tools, legacy SSE on, mapped by <paramref name="map"/>.</summary>
    private static Task<GuardedHost> StartBuiltAsync(Action<WebApplication> map) =>
        GuardedHost.StartAsync(
            builder =>
            {
                builder.Configuration.AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"));
                builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
                builder.Services.AddMcpServer()
                    .WithHttpTransport(options =>
                    {
                        options.SessionMode = HttpServerSessionMode.Stateful;
#pragma warning disable MCP9004 // The obsolete legacy SSE transport is what these tests are about.
                        options.EnableLegacySse = true;
#pragma warning restore MCP9004
                    })
                    .WithTools<SampleTools>()
                    .WithMcpGuard();
            },
            map);

    private static async Task<HttpResponseMessage> OpenStreamAsync(GuardedHost host, string? apiKey, string path = "/mcp/sse")
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
        if (apiKey is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {apiKey}");
        }

        return await host.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    /// <summary>A legacy HTTP+SSE session: the open GET stream, and the message URL its first event names.</summary>
    private sealed class LegacySseSession : IAsyncDisposable
    {
        private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(10);

        private readonly GuardedHost _host;
        private readonly HttpResponseMessage _stream;
        private readonly StreamReader _reader;

        private LegacySseSession(GuardedHost host, HttpResponseMessage stream, StreamReader reader, string messagePath)
        {
            _host = host;
            _stream = stream;
            _reader = reader;
            MessagePath = messagePath;
        }

        public string MessagePath { get; }

        public static async Task<LegacySseSession> OpenAsync(GuardedHost host, string apiKey, string path = "/mcp/sse")
        {
            var stream = await OpenStreamAsync(host, apiKey, path);
            Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
            Assert.Equal("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
            var reader = new StreamReader(await stream.Content.ReadAsStreamAsync(), Encoding.UTF8);
            var (name, data) = await ReadEventAsync(reader);
            Assert.Equal("endpoint", name);
            Assert.StartsWith(path[..^"sse".Length] + "message?sessionId=", data, StringComparison.Ordinal);
            return new LegacySseSession(host, stream, reader, data);
        }

        public async Task<HttpResponseMessage> PostAsync(string body, string? apiKey)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, MessagePath) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            if (apiKey is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {apiKey}");
            }

            return await _host.Client.SendAsync(request);
        }

        /// <summary>The next JSON-RPC message on the stream.</summary>
        public async Task<JsonElement> ReadMessageAsync()
        {
            var (name, data) = await ReadEventAsync(_reader);
            Assert.Equal("message", name);
            using var document = JsonDocument.Parse(data);
            return document.RootElement.Clone();
        }

        public ValueTask DisposeAsync()
        {
            _reader.Dispose();
            _stream.Dispose();
            return ValueTask.CompletedTask;
        }

        private static async Task<(string Name, string Data)> ReadEventAsync(StreamReader reader)
        {
            using var timeout = new CancellationTokenSource(ReadTimeout);
            string? name = null;
            var data = new StringBuilder();
            while (await reader.ReadLineAsync(timeout.Token) is { } line)
            {
                if (line.Length == 0)
                {
                    if (name is not null || data.Length > 0)
                    {
                        return (name ?? "message", data.ToString());
                    }

                    continue;
                }

                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    name = line["event: ".Length..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    data.Append(line["data: ".Length..]);
                }
            }

            throw new InvalidOperationException("The SSE stream ended.");
        }
    }
}
