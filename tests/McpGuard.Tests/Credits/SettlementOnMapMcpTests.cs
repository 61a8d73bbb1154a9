using System.ComponentModel;
using System.Net;
using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Tests.Credits;

/// <summary>
/// Settlement by outcome on the SDK's own <c>MapMcp()</c>, stateless and stateful: a charge stands only when the server
/// answered the charged request with a JSON-RPC result. The SDK's own refusals (a session it does not know, one that is
/// missing or belongs to someone else, a protocol error) and its JSON-RPC errors are refunded in the same request, and a
/// response whose first message already says so carries no charge headers.
/// </summary>
public sealed class SettlementOnMapMcpTests
{
    private const long Balance = 10_000;
    private const string Accept = "application/json, text/event-stream";

    public enum Mode
    {
        Stateless,
        Stateful,
    }

    public static TheoryData<Mode> Modes => new() { Mode.Stateless, Mode.Stateful };

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_served_call_keeps_its_charge_through_the_SDK_client(Mode mode)
    {
        await using var host = await SettlementHost.StartAsync(mode);
        await using var client = await host.ConnectAsync(DemoKeys.Alice);

        var result = await client.CallToolAsync("work");

        Assert.Equal("done", Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);
        Assert.Equal([("Usage", -700L)], await host.CallRowsAsync("alice"));
        Assert.Equal(Balance - 700, await host.BalanceAsync("alice"));
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_priced_tool_the_server_does_not_have_is_refunded_and_announces_no_charge(Mode mode)
    {
        await using var host = await SettlementHost.StartAsync(mode);
        var session = await host.OpenSessionAsync(mode, DemoKeys.Alice);

        using var response = await host.PostAsync("""{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ghost","arguments":{}}}""", DemoKeys.Alice, session);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal(7, answer.GetProperty("id").GetInt32());
        Assert.Equal((int)McpErrorCode.InvalidParams, answer.GetProperty("error").GetProperty("code").GetInt32());
        Assert.False(response.Headers.Contains(CreditCalls.ChargeHeader));
        Assert.False(response.Headers.Contains(CreditCalls.BalanceHeader));
        Assert.Equal([("Usage", -300L), ("Refund", 300L)], await host.CallRowsAsync("alice"));
        Assert.Equal(Balance, await host.BalanceAsync("alice"));
    }

    [Theory]
    [InlineData("unknown", HttpStatusCode.NotFound)]
    [InlineData("missing", HttpStatusCode.BadRequest)]
    [InlineData("foreign", HttpStatusCode.Forbidden)]
    public async Task A_priced_call_the_stateful_SDK_refuses_for_its_session_is_refunded(string session, HttpStatusCode expected)
    {
        await using var host = await SettlementHost.StartAsync(Mode.Stateful);
        var sessionId = session switch
        {
            "unknown" => "no-such-session",
            "foreign" => await host.OpenSessionAsync(Mode.Stateful, DemoKeys.Bob),
            _ => null,
        };

        using var response = await host.PostAsync("""{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"work","arguments":{}}}""", DemoKeys.Alice, sessionId);

        Assert.True(expected == response.StatusCode, string.Join("\n", host.Host.Logs.Entries.Where(e => e.Exception is not null).Select(e => e.FullText)));
        Assert.False(response.Headers.Contains(CreditCalls.ChargeHeader));
        Assert.False(response.Headers.Contains(CreditCalls.BalanceHeader));
        Assert.Equal([("Usage", -700L), ("Refund", 700L)], await host.CallRowsAsync("alice"));
        Assert.Equal(Balance, await host.BalanceAsync("alice"));
        Assert.Equal(0, host.WorkRuns);
    }

    [Fact]
    public async Task A_2026_07_28_call_the_SDK_refuses_for_its_missing_protocol_version_is_refunded()
    {
        await using var host = await SettlementHost.StartAsync(Mode.Stateless);

        using var response = await host.PostAsync(
            """{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"work","arguments":{}}}""",
            DemoKeys.Alice,
            session: null,
            new Dictionary<string, string> { ["MCP-Protocol-Version"] = "2026-07-28", ["Mcp-Method"] = "tools/call", ["Mcp-Name"] = "work" });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.False(response.Headers.Contains(CreditCalls.ChargeHeader));
        Assert.Equal([("Usage", -700L), ("Refund", 700L)], await host.CallRowsAsync("alice"));
        Assert.Equal(0, host.WorkRuns);
    }

    /// <summary>
    /// A served call keeps its charge whatever its id: the SDK echoes an id of 300 characters as it came, and one of
    /// 60 <c>&lt;</c> as <c>\u003C</c> escapes (360 bytes). Settlement once read only the first 256 bytes of an id, so
    /// such a call found no answer and was refunded after it was served: a free call for any client.
    /// </summary>
    [Theory]
    [InlineData(Mode.Stateless, "a", 300)]
    [InlineData(Mode.Stateless, "<", 60)]
    [InlineData(Mode.Stateful, "a", 300)]
    [InlineData(Mode.Stateful, "<", 60)]
    public async Task A_served_call_with_a_long_id_keeps_its_charge(Mode mode, string character, int length)
    {
        await using var host = await SettlementHost.StartAsync(mode);
        var session = await host.OpenSessionAsync(mode, DemoKeys.Alice);
        var id = string.Concat(Enumerable.Repeat(character, length));

        using var response = await host.PostAsync("{\"jsonrpc\":\"2.0\",\"id\":\"" + id + "\",\"method\":\"tools/call\",\"params\":{\"name\":\"work\",\"arguments\":{}}}", DemoKeys.Alice, session);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal(id, answer.GetProperty("id").GetString());
        Assert.Equal("done", answer.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("700", CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal([("Usage", -700L)], await host.CallRowsAsync("alice"));
        Assert.Equal(Balance - 700, await host.BalanceAsync("alice"));
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task Progress_before_the_result_streams_first_and_the_charge_stands(Mode mode)
    {
        await using var host = await SettlementHost.StartAsync(mode);
        var session = await host.OpenSessionAsync(mode, DemoKeys.Alice);

        using var response = await host.PostAsync("""{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"steps","arguments":{},"_meta":{"progressToken":"p-9"}}}""", DemoKeys.Alice, session);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var messages = await Sse.ReadMessagesAsync(response);
        Assert.Equal(["notifications/progress", "notifications/progress", "result"], messages.Select(m => m.TryGetProperty("method", out var method) ? method.GetString() : "result"));
        // The first message was a notification: the response started with it, announcing the charge the result then kept.
        Assert.Equal("700", CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal([("Usage", -700L)], await host.CallRowsAsync("alice"));
    }

    [Theory]
    [InlineData(Mode.Stateless, false)]
    [InlineData(Mode.Stateful, false)]
    [InlineData(Mode.Stateful, true)]
    public async Task An_internal_error_result_is_refunded_also_when_handlers_run_on_the_session_context(Mode mode, bool perSessionExecutionContext)
    {
        await using var host = await SettlementHost.StartAsync(mode, perSessionExecutionContext);
        await using var client = await host.ConnectAsync(DemoKeys.Alice);

        var result = await client.CallToolAsync("crash");

        Assert.True(result.IsError);
        Assert.StartsWith("**Error code:** internal_error\n", Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text, StringComparison.Ordinal);
        Assert.Equal("internal_error", result.StructuredContent!.Value.GetProperty("reason").GetString());
        Assert.StartsWith("req_", result.StructuredContent!.Value.GetProperty("request_id").GetString(), StringComparison.Ordinal);
        Assert.Equal([("Usage", -100L), ("Refund", 100L)], await host.CallRowsAsync("alice"));
        Assert.Equal(Balance, await host.BalanceAsync("alice"));
    }

    [Theory]
    [InlineData(Mode.Stateless, false)]
    [InlineData(Mode.Stateful, false)]
    [InlineData(Mode.Stateful, true)]
    public async Task Tools_list_is_filtered_by_scope_also_when_handlers_run_on_the_session_context(Mode mode, bool perSessionExecutionContext)
    {
        await using var host = await SettlementHost.StartAsync(mode, perSessionExecutionContext);
        await using var bob = await host.ConnectAsync(DemoKeys.Bob);
        await using var alice = await host.ConnectAsync(DemoKeys.Alice);

        Assert.Equal(["crash", "steps", "work"], (await bob.ListToolsAsync()).Select(t => t.Name).Order(StringComparer.Ordinal));
        Assert.Equal(["crash", "premium", "steps", "work"], (await alice.ListToolsAsync()).Select(t => t.Name).Order(StringComparer.Ordinal));
    }

    /// <summary>MapMcp() behind McpGuard: alice (all scopes, 10 000) and bob (tools:basic); work 700, crash 100, steps 700, ghost 300.</summary>
    private sealed class SettlementHost : IAsyncDisposable
    {
        private int _workRuns;

        private SettlementHost()
        {
        }

        public GuardedHost Host { get; private set; } = null!;

        public int WorkRuns => Volatile.Read(ref _workRuns);

        public static async Task<SettlementHost> StartAsync(Mode mode, bool perSessionExecutionContext = false)
        {
            var settlement = new SettlementHost();
            settlement.Host = await GuardedHost.StartMcpAsync(
                server => server.WithTools<SettlementTools>().WithMcpGuard(),
                GuardConfiguration.ApiKeys(GuardConfiguration.Alice("tools:basic", "tools:premium"), GuardConfiguration.Bob("tools:basic"))
                    .WithCredits("InMemory", ("alice", Balance), ("bob", Balance))
                    .With(new Dictionary<string, string?>
                    {
                        ["McpGuard:Credits:RefundToolInternalErrors"] = "true",
                        ["McpGuard:Tools:work:Price"] = "700",
                        ["McpGuard:Tools:steps:Price"] = "700",
                        ["McpGuard:Tools:crash:Price"] = "100",
                        ["McpGuard:Tools:ghost:Price"] = "300",
                        ["McpGuard:Tools:premium:Scopes:0"] = "tools:premium",
                    }),
                transport: options =>
                {
                    options.Stateless = mode == Mode.Stateless;
#pragma warning disable MCP9006 // Obsolete in the SDK but still public: a server may still turn it on, and the guard must hold then too.
                    options.PerSessionExecutionContext = perSessionExecutionContext;
#pragma warning restore MCP9006
                },
                build: builder => builder.Services.AddSingleton(settlement));
            return settlement;
        }

        public void CountWork() => Interlocked.Increment(ref _workRuns);

        public async Task<McpClient> ConnectAsync(string apiKey) =>
            await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
            {
                Endpoint = Host.McpEndpoint,
                TransportMode = HttpTransportMode.StreamableHttp,
                AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = $"Bearer {apiKey}" },
            }));

        /// <summary>A session id for <paramref name="apiKey"/> in stateful mode (initialize, then initialized); null when stateless.</summary>
        public async Task<string?> OpenSessionAsync(Mode mode, string apiKey)
        {
            if (mode == Mode.Stateless)
            {
                return null;
            }

            using var initialize = await PostAsync(
                """{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"settlement-test","version":"1"}}}""",
                apiKey,
                session: null);
            Assert.Equal(HttpStatusCode.OK, initialize.StatusCode);
            var session = Assert.Single(initialize.Headers.GetValues("Mcp-Session-Id"));
            using var initialized = await PostAsync("""{"jsonrpc":"2.0","method":"notifications/initialized"}""", apiKey, session);
            Assert.Equal(HttpStatusCode.Accepted, initialized.StatusCode);
            return session;
        }

        public async Task<HttpResponseMessage> PostAsync(string body, string apiKey, string? session, IReadOnlyDictionary<string, string>? headers = null)
        {
            var all = new Dictionary<string, string>(headers ?? new Dictionary<string, string>());
            if (session is not null)
            {
                all["Mcp-Session-Id"] = session;
                all["MCP-Protocol-Version"] = "2025-11-25";
            }

            return await Host.PostMcpAsync(body, accept: Accept, headers: all, apiKey: apiKey);
        }

        /// <summary>The account's usage and refund rows, oldest first.</summary>
        public async Task<List<(string Kind, long Amount)>> CallRowsAsync(string account)
        {
            var store = Host.Services.GetRequiredService<IMcpGuardLedgerStore>();
            var page = await store.GetLedgerAsync(account, null, 100, default);
            return [.. page.Entries.Reverse().Where(e => e.RequestId is not null).Select(e => (e.Kind.ToString(), e.AmountMicro))];
        }

        public async Task<long> BalanceAsync(string account)
        {
            var store = Host.Services.GetRequiredService<IMcpGuardLedgerStore>();
            return (await store.GetAccountAsync(account, 0, DateTimeOffset.UtcNow, default))!.BalanceMicro;
        }

        public ValueTask DisposeAsync() => Host.DisposeAsync();
    }

    [McpServerToolType]
    private sealed class SettlementTools
    {
        [McpServerTool(Name = "work"), Description("Priced 700.")]
        public static string Work(SettlementHost host)
        {
            host.CountWork();
            return "done";
        }

        [McpServerTool(Name = "steps"), Description("Reports progress twice, then answers.")]
        public static async Task<string> Steps(IProgress<ProgressNotificationValue> progress)
        {
            progress.Report(new ProgressNotificationValue { Progress = 1, Total = 2 });
            await Task.Delay(20);
            progress.Report(new ProgressNotificationValue { Progress = 2, Total = 2 });
            await Task.Delay(20);
            return "stepped";
        }

        [McpServerTool(Name = "crash"), Description("Throws.")]
        public static string Crash() => throw new InvalidOperationException("the database is gone");

        [McpServerTool(Name = "premium"), Description("Needs tools:premium.")]
        public static string Premium() => "premium";
    }
}
