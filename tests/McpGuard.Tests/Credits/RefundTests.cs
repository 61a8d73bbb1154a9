using System.Text;
using System.Net;
using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Credits;

/// <summary>
/// Automatic refunds: when the server fails to serve a charged call (5xx, exception, broken stream, timeout,
/// client gone) the debit is reversed in the same request, leaving a usage row and a refund row for the
/// request id and the balance where it was. When the tool answered, even with an error, the debit stands.
/// </summary>
public sealed class RefundTests
{
    private const long Price = 700;

    /// <summary>What an error McpGuard writes for a refunded call says besides its reason: that the charge was given back, and how much.</summary>
    private static readonly System.Text.Json.Nodes.JsonObject Refunded = new() { ["refunded"] = true, ["refunded_micro"] = Price };
    private const long Balance = 10_000;
    private const string Partial = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
    private static readonly string Work = CreditCalls.ToolCall(12, "work", "{}");
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    public static TheoryData<string> Stores => new() { nameof(McpGuardStoreKind.InMemory), nameof(McpGuardStoreKind.Sqlite) };

    // ---- (a) the endpoint answers 5xx ----

    [Theory]
    [InlineData(nameof(McpGuardStoreKind.Sqlite), 500)]
    [InlineData(nameof(McpGuardStoreKind.InMemory), 500)]
    [InlineData(nameof(McpGuardStoreKind.Sqlite), 502)]
    [InlineData(nameof(McpGuardStoreKind.Sqlite), 503)]
    public async Task An_endpoint_that_answers_5xx_is_refunded(string storeName, int status)
    {
        var store = Enum.Parse<McpGuardStoreKind>(storeName);
        await using var guarded = await RefundHost.StartAsync(store, async context =>
        {
            context.Response.StatusCode = status;
            await context.Response.WriteAsync("upstream broke");
        });

        using var response = await guarded.SendAsync(Work, "refund-5xx");

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("upstream broke", await response.Content.ReadAsStringAsync());
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(response, CreditCalls.BalanceHeader));
        await guarded.AssertRefundedAsync("refund-5xx");
    }

    [Theory]
    [InlineData(400)]
    [InlineData(403)]
    [InlineData(404)]
    [InlineData(499)]
    public async Task An_endpoint_that_answers_4xx_is_refunded_without_charge_headers(int status)
    {
        // The MCP SDK answers 400/403/404 for a missing, foreign or unknown session and for protocol-version errors:
        // it ran nothing, so nothing is charged, and the response does not say otherwise.
        await using var guarded = await RefundHost.StartAsync(McpGuardStoreKind.Sqlite, async context =>
        {
            context.Response.StatusCode = status;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"jsonrpc":"2.0","id":12,"error":{"code":-32001,"message":"Session not found"}}""");
        });

        using var response = await guarded.SendAsync(Work, "refund-4xx");

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("""{"jsonrpc":"2.0","id":12,"error":{"code":-32001,"message":"Session not found"}}""", await response.Content.ReadAsStringAsync());
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(response, CreditCalls.BalanceHeader));
        await guarded.AssertRefundedAsync("refund-4xx");
    }

    public static TheoryData<string, string, string> Answers => new()
    {
        { "application/json", """{"jsonrpc":"2.0","id":12,"result":{"content":[]}}""", "json" },
        { "application/json; charset=utf-8", """{"result":{"content":[{"type":"text","text":"id 13"}]},"jsonrpc":"2.0","id":12}""", "json, id last" },
        { "text/event-stream", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":12,\"result\":{}}\n\n", "sse" },
        { "text/event-stream", "data: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":12,\"result\":{\"isError\":true,\"content\":[]}}\r\n\r\n", "sse, split data lines, a tool's own error" },
        { "text/event-stream", Partial + "id: 7\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":12,\"result\":{\"resultType\":\"complete\"}}\n\n", "sse, progress first" },
        { "application/json", """{"jsonrpc":"2.0","\u0069d":12,"result":{"text":"a \"quoted\" }{ [brace"}}""", "json, escapes" },
    };

    [Theory]
    [MemberData(nameof(Answers))]
    public async Task A_json_rpc_result_for_the_charged_request_keeps_the_charge(string contentType, string body, string _)
    {
        await using var guarded = await RefundHost.StartAsync(McpGuardStoreKind.Sqlite, async context =>
        {
            context.Response.ContentType = contentType;
            await context.Response.WriteAsync(body);
        });

        using var response = await guarded.SendAsync(Work, "kept-result");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(body, await response.Content.ReadAsStringAsync());
        Assert.Equal("700", CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal("9300", CreditCalls.Header(response, CreditCalls.BalanceHeader));
        await guarded.AssertChargedAsync("kept-result");
    }

    public static TheoryData<string, string, bool, string> NoResult => new()
    {
        { "text/plain", "answered", false, "not JSON-RPC" },
        { "application/json", "{}", false, "not a response" },
        { "application/json", """{"jsonrpc":"2.0","id":12,"error":{"code":-32602,"message":"Unknown tool: 'work'"}}""", false, "an error" },
        { "application/json", """{"jsonrpc":"2.0","id":13,"result":{}}""", false, "another id" },
        { "application/json", """{"jsonrpc":"2.0","id":"12","result":{}}""", false, "the id as a string" },
        { "application/json", """{"jsonrpc":"2.0","id":12,"result":{"resultType":"input_required","inputRequests":{}}}""", false, "input required" },
        { "text/event-stream", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":12,\"error\":{\"code\":-32603,\"message\":\"An error occurred.\"}}\n\n", false, "an error event" },
        { "text/event-stream", Partial, true, "a notification and no answer" },
        { "text/event-stream", ": comment\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":12,\"result\":{}", false, "an answer cut short" },
        { "text/event-stream", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":12,\"result\":{},\"error\":{}}\n\n", false, "both result and error" },
        { "text/event-stream", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"x\",\"params\":{\"id\":12,\"result\":{}}}\n\n", true, "id and result nested in a request" },
    };

    [Theory]
    [MemberData(nameof(NoResult))]
    public async Task A_response_without_a_json_rpc_result_for_the_charged_request_is_refunded(string contentType, string body, bool headersWentFirst, string _)
    {
        await using var guarded = await RefundHost.StartAsync(McpGuardStoreKind.Sqlite, async context =>
        {
            context.Response.ContentType = contentType;
            await context.Response.WriteAsync(body);
        });

        using var response = await guarded.SendAsync(Work, "refund-no-result");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(body, await response.Content.ReadAsStringAsync());
        // Held back until the first whole message (or the end): only a stream whose first message is not the answer
        // has started, with the charge it carried then.
        Assert.Equal(headersWentFirst ? "700" : null, CreditCalls.Header(response, CreditCalls.ChargeHeader));
        await guarded.AssertRefundedAsync("refund-no-result");
    }

    // ---- (b) the endpoint throws ----

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task An_endpoint_that_throws_gives_500_internal_error_and_is_refunded(string storeName)
    {
        var store = Enum.Parse<McpGuardStoreKind>(storeName);
        await using var guarded = await RefundHost.StartAsync(store, _ => throw new InvalidOperationException("database unreachable"));

        using var response = await guarded.SendAsync(Work, "refund-throw");

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.InternalServerError, -32603, "Internal error", "internal_error", id: 12L, extraData: Refunded);
        Assert.Equal("refund-throw", WireAssert.RequestId(response));
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(response, CreditCalls.BalanceHeader));
        await guarded.AssertRefundedAsync("refund-throw");
    }

    // ---- (c) the stream breaks mid-way ----

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_stream_that_breaks_mid_way_is_refunded_though_its_headers_already_announced_the_charge(string storeName)
    {
        var store = Enum.Parse<McpGuardStoreKind>(storeName);
        await using var guarded = await RefundHost.StartAsync(store, async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(Partial);
            await context.Response.Body.FlushAsync();
            throw new InvalidOperationException("lost the upstream after the first event");
        });

        using var request = CreditCalls.Post(Work, DemoKeys.Alice, "refund-stream");
        using var response = await guarded.Host.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(Bound);
        var body = await response.Content.ReadAsStringAsync().WaitAsync(Bound);

        // The client reads a truncated stream: the status and headers went out with the first event, before the failure.
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.ToString());
        Assert.Equal(Partial, body);
        Assert.Equal("700", CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal("9300", CreditCalls.Header(response, CreditCalls.BalanceHeader));
        await guarded.AssertRefundedAsync("refund-stream");
    }

    // ---- (d) the endpoint does not answer in time ----

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_timeout_cancels_the_endpoint_answers_504_and_refunds(string storeName)
    {
        var store = Enum.Parse<McpGuardStoreKind>(storeName);
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 4, 2, 10, 0, 0, TimeSpan.Zero));
        var entered = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
        var observed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var guarded = await RefundHost.StartAsync(
            store,
            async context =>
            {
                entered.TrySetResult(context.RequestAborted);
                try
                {
                    await Task.Delay(Timeout.Infinite, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    observed.TrySetResult();
                    throw;
                }
            },
            new Dictionary<string, string?> { ["McpGuard:Credits:UpstreamTimeout"] = "00:00:05" },
            clock);

        var send = guarded.SendAsync(Work, "refund-timeout");
        var token = await entered.Task.WaitAsync(Bound);
        clock.Advance(TimeSpan.FromMilliseconds(4999));
        Assert.False(token.IsCancellationRequested, "cancelled before the upstream timeout");
        Assert.False(observed.Task.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(token.IsCancellationRequested, "not cancelled at the upstream timeout");
        using var response = await send.WaitAsync(Bound);

        await observed.Task.WaitAsync(Bound);
        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.GatewayTimeout, -31502,
            "Upstream timeout: no answer within 5 s; the charge was refunded.", "upstream_timeout", id: 12L, extraData: Refunded);
        Assert.Equal("refund-timeout", WireAssert.RequestId(response));
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(response, CreditCalls.BalanceHeader));
        await guarded.AssertRefundedAsync("refund-timeout");
    }

    [Theory]
    [InlineData("stream")]
    [InlineData("writer")]
    public async Task An_endpoint_that_flushed_its_headers_but_wrote_nothing_still_gets_504_on_timeout(string flush)
    {
        // The MCP SDK's Streamable HTTP transport flushes its SSE headers as soon as a call arrives. A flush before
        // the first byte must not start the response, or a timeout could only end as an empty 200 stream.
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 4, 2, 10, 0, 0, TimeSpan.Zero));
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var guarded = await RefundHost.StartAsync(
            McpGuardStoreKind.Sqlite,
            async context =>
            {
                context.Response.ContentType = "text/event-stream";
                context.Response.Headers.CacheControl = "no-cache,no-store";
                if (flush == "stream")
                {
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
                else
                {
                    await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
                }

                entered.TrySetResult();
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            },
            new Dictionary<string, string?> { ["McpGuard:Credits:UpstreamTimeout"] = "00:00:05" },
            clock);

        var send = guarded.SendAsync(Work, $"flushed-{flush}");
        await entered.Task.WaitAsync(Bound);
        clock.Advance(TimeSpan.FromSeconds(5));
        using var response = await send.WaitAsync(Bound);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.GatewayTimeout, -31502,
            "Upstream timeout: no answer within 5 s; the charge was refunded.", "upstream_timeout", id: 12L, extraData: Refunded);
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(response, CreditCalls.BalanceHeader));
        await guarded.AssertRefundedAsync($"flushed-{flush}");
    }

    [Fact]
    public async Task Everything_a_charged_endpoint_writes_arrives_in_order()
    {
        await using var guarded = await RefundHost.StartAsync(McpGuardStoreKind.Sqlite, async context =>
        {
            // Through both the stream and the pipe writer, with flushes between, before and after the first whole message.
            context.Response.ContentType = "text/event-stream";
            await context.Response.Body.FlushAsync();
            await context.Response.WriteAsync(": one\n");
            var span = context.Response.BodyWriter.GetSpan(7);
            ": two\n\n"u8.CopyTo(span);
            context.Response.BodyWriter.Advance(7);
            await context.Response.BodyWriter.FlushAsync();
            await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(Partial));
            await context.Response.Body.FlushAsync();
            await context.Response.BodyWriter.WriteAsync(Encoding.UTF8.GetBytes(": three\n\n"));
            await context.Response.WriteAsync(CreditCalls.ResultEvent(12));
        });

        using var response = await guarded.SendAsync(Work, "in-order");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(": one\n: two\n\n" + Partial + ": three\n\n" + CreditCalls.ResultEvent(12), await response.Content.ReadAsStringAsync());
        Assert.Equal("700", CreditCalls.Header(response, CreditCalls.ChargeHeader));
        await guarded.AssertChargedAsync("in-order");
    }

    [Fact]
    public async Task A_sample_tool_that_outlives_the_timeout_gets_504_and_a_refund()
    {
        // Real time, bounded: a 200 ms timeout against `slow` asked to wait 30 s, through the MCP SDK's transport.
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Credits:UpstreamTimeout"] = "00:00:00.2" });
        var path = CreditCalls.LedgerPath(host);

        using var response = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(8, "slow", """{"ms":30000}"""), "slow-timeout").WaitAsync(Bound);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.GatewayTimeout, -31502,
            "Upstream timeout: no answer within 0.2 s; the charge was refunded.", "upstream_timeout", id: 8L,
            extraData: new System.Text.Json.Nodes.JsonObject { ["refunded"] = true, ["refunded_micro"] = 100 });
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal(
            [("Usage", -100L, 999_900L), ("Refund", 100L, 1_000_000L)],
            LedgerFile.Rows(path, "alice").Where(r => r.RequestId == "slow-timeout").Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
        Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(path, "alice"));
    }

    [Fact]
    public async Task A_timeout_on_the_system_clock_answers_504_and_refunds()
    {
        // Real time, bounded: the 200 ms timeout is the behaviour under test.
        var observed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var guarded = await RefundHost.StartAsync(
            McpGuardStoreKind.Sqlite,
            async context =>
            {
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(30), context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    observed.TrySetResult();
                    throw;
                }
            },
            new Dictionary<string, string?> { ["McpGuard:Credits:UpstreamTimeout"] = "00:00:00.2" });

        using var response = await guarded.SendAsync(Work, "refund-timeout-real").WaitAsync(Bound);

        Assert.True(observed.Task.IsCompleted, "the endpoint did not see the cancellation");
        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.GatewayTimeout, -31502,
            "Upstream timeout: no answer within 0.2 s; the charge was refunded.", "upstream_timeout", id: 12L, extraData: Refunded);
        await guarded.AssertRefundedAsync("refund-timeout-real");
    }

    [Fact]
    public async Task An_endpoint_that_answers_within_the_timeout_keeps_the_charge_and_its_token_is_not_cancelled()
    {
        var clock = new TimerCountingClock(new DateTimeOffset(2026, 4, 2, 10, 0, 0, TimeSpan.Zero));
        CancellationToken seen = default;
        await using var guarded = await RefundHost.StartAsync(
            McpGuardStoreKind.Sqlite,
            async context =>
            {
                seen = context.RequestAborted;
                clock.Advance(TimeSpan.FromMilliseconds(4999));
                context.Response.ContentType = "text/event-stream";
                await context.Response.WriteAsync(CreditCalls.ResultEvent(12));
            },
            new Dictionary<string, string?> { ["McpGuard:Credits:UpstreamTimeout"] = "00:00:05" },
            clock);

        using var response = await guarded.SendAsync(Work, "in-time");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(CreditCalls.ResultEvent(12), await response.Content.ReadAsStringAsync());
        Assert.False(seen.IsCancellationRequested);
        Assert.True(seen.CanBeCanceled);
        await guarded.AssertChargedAsync("in-time");
        Assert.Equal(0, clock.ArmedTimers);
    }

    // ---- (f) the client goes away ----

    public static TheoryData<string, bool> StoresAndEndings => new()
    {
        { nameof(McpGuardStoreKind.InMemory), true },
        { nameof(McpGuardStoreKind.InMemory), false },
        { nameof(McpGuardStoreKind.Sqlite), true },
        { nameof(McpGuardStoreKind.Sqlite), false },
    };

    [Theory]
    [MemberData(nameof(StoresAndEndings))]
    public async Task A_client_that_disconnects_mid_call_is_refunded(string storeName, bool endpointRethrows)
    {
        var store = Enum.Parse<McpGuardStoreKind>(storeName);
        // The client cancels its request while the endpoint is still working: the server never answered,
        // so the gate treats the call as not served and refunds it in the same request; nothing is written back.
        // Whether the endpoint lets the cancellation out or stops quietly (as the MCP SDK may), the log says why.
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var observed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var guarded = await RefundHost.StartAsync(
            store,
            async context =>
            {
                entered.TrySetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, context.RequestAborted);
                }
                catch (OperationCanceledException) when (!endpointRethrows)
                {
                    observed.TrySetResult();
                }
                catch (OperationCanceledException)
                {
                    observed.TrySetResult();
                    throw;
                }
            },
            new Dictionary<string, string?> { ["Logging:LogLevel:McpGuard"] = "Information" });
        using var cancel = new CancellationTokenSource();
        using var request = CreditCalls.Post(Work, DemoKeys.Alice, "refund-gone");

        var send = guarded.Host.Client.SendAsync(request, cancel.Token);
        await entered.Task.WaitAsync(Bound);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => send);
        await observed.Task.WaitAsync(Bound);
        await guarded.Finished("refund-gone").WaitAsync(Bound);
        await guarded.AssertRefundedAsync("refund-gone");
        var refunded = Assert.Single(guarded.Host.Logs.Entries, e => e.EventId.Id == 6102);
        Assert.Equal(LogLevel.Information, refunded.Level);
        Assert.Equal("Request refund-gone was not served (client disconnected); refunded: True.", refunded.Message);
        Assert.DoesNotContain(guarded.Host.Logs.Entries, e => e.Level >= LogLevel.Warning);
    }

    // ---- (e) tool errors on the sample ----

    [Fact]
    public async Task A_crashing_tool_is_refunded_when_RefundToolInternalErrors_is_on()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var path = CreditCalls.LedgerPath(host);

        using var response = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(5, "fail", """{"kind":"crash"}"""), "crash-1");

        await AssertToolErrorAsync(response, 5, "internal_error", "The tool failed unexpectedly.",
            "Report the request id to the server's operator; do not retry in a loop.", "do_not_retry", "crash-1");
        // The result is the first message: the gate settled the charge before the headers went out, so they announce none.
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(response, CreditCalls.BalanceHeader));
        Assert.Equal(
            [("Usage", -100L, 999_900L, "fail"), ("Refund", 100L, 1_000_000L, "fail")],
            LedgerFile.Rows(path, "alice").Where(r => r.RequestId == "crash-1").Select(r => (r.Kind, r.Amount, r.BalanceAfter, r.Tool)));
        Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(path, "alice"));
    }

    [Fact]
    public async Task A_crashing_tool_keeps_the_charge_when_RefundToolInternalErrors_is_off()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Credits:RefundToolInternalErrors"] = "false" });
        var path = CreditCalls.LedgerPath(host);

        using var response = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(5, "fail", """{"kind":"crash"}"""), "crash-2");

        await AssertToolErrorAsync(response, 5, "internal_error", "The tool failed unexpectedly.",
            "Report the request id to the server's operator; do not retry in a loop.", "do_not_retry", "crash-2");
        Assert.Equal("100", CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal(
            [("Usage", -100L, 999_900L, "fail")],
            LedgerFile.Rows(path, "alice").Where(r => r.RequestId == "crash-2").Select(r => (r.Kind, r.Amount, r.BalanceAfter, r.Tool)));
        Assert.Equal(999_900, LedgerFile.Balance(path, "alice"));
    }

    [Fact]
    public async Task A_tool_that_rejects_its_argument_keeps_the_charge()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var path = CreditCalls.LedgerPath(host);

        using var response = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(6, "fail", """{"kind":"argument"}"""), "argument-1");

        await AssertToolErrorAsync(response, 6, "invalid_parameter", "kind=argument was asked to fail: the argument is rejected. (Parameter 'kind')",
            "Check the tool's input schema (tools/list), fix the arguments and call again.", "fix_request", "argument-1");
        Assert.Equal("100", CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal(
            [("Usage", -100L, 999_900L, "fail")],
            LedgerFile.Rows(path, "alice").Where(r => r.RequestId == "argument-1").Select(r => (r.Kind, r.Amount, r.BalanceAfter, r.Tool)));
        Assert.Equal(999_900, LedgerFile.Balance(path, "alice"));
    }

    [Fact]
    public async Task A_refunded_free_call_gives_the_free_call_back()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var path = CreditCalls.LedgerPath(host);

        using var crash = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(1, "fail", """{"kind":"crash"}"""), "bob-crash", DemoKeys.Bob);
        var free = new List<HttpResponseMessage>();
        for (var i = 2; i <= 4; i++)
        {
            free.Add(await CreditCalls.CallAsync(host, CreditCalls.Add(i), $"bob-{i}", DemoKeys.Bob));
        }

        Assert.Null(CreditCalls.Header(crash, CreditCalls.ChargeHeader));
        Assert.All(free, r => Assert.Equal("0", CreditCalls.Header(r, CreditCalls.ChargeHeader)));
        Assert.Equal(
            [
                ("TopUp", 240L, (string?)null, false),
                ("Usage", 0L, "bob-crash", true),
                ("Refund", 0L, "bob-crash", true),
                ("Usage", 0L, "bob-2", true),
                ("Usage", 0L, "bob-3", true),
                ("Usage", 0L, "bob-4", true),
            ],
            LedgerFile.Rows(path, "bob").Select(r => (r.Kind, r.Amount, r.RequestId, r.Free)));
        free.ForEach(r => r.Dispose());
    }

    private static async Task AssertToolErrorAsync(HttpResponseMessage response, long id, string reason, string message, string suggestion, string action, string requestId)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal(id, answer.GetProperty("id").GetInt64());
        var result = answer.GetProperty("result");
        Assert.True(result.GetProperty("isError").GetBoolean());
        Assert.Equal($"**Error code:** {reason}\n{message}\n{suggestion}", Assert.Single(result.GetProperty("content").EnumerateArray().ToList()).GetProperty("text").GetString());
        WireAssert.JsonEquals(
            $$"""{"reason":"{{reason}}","request_id":"{{requestId}}","retryable":false,"action":"{{action}}"}""",
            result.GetProperty("structuredContent"));
    }

    /// <summary>An app the test builds: API keys, credits on the chosen store, the tool <c>work</c> priced 700, alice holding 10 000.</summary>
    private sealed class RefundHost : IAsyncDisposable
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource> _finished = new();

        private RefundHost()
        {
        }

        public GuardedHost Host { get; private set; } = null!;

        public McpGuardStoreKind Store { get; private set; }

        public static async Task<RefundHost> StartAsync(
            McpGuardStoreKind store,
            RequestDelegate endpoint,
            IReadOnlyDictionary<string, string?>? extra = null,
            TimeProvider? clock = null)
        {
            var guarded = new RefundHost { Store = store };
            var configuration = GuardConfiguration.ApiKeys(GuardConfiguration.Alice())
                .WithCredits(store.ToString(), ("alice", Balance))
                .With(new Dictionary<string, string?> { ["McpGuard:Tools:work:Price"] = Price.ToString(System.Globalization.CultureInfo.InvariantCulture) })
                .With(extra);

            guarded.Host = await GuardedHost.StartAsync(
                builder =>
                {
                    builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
                    if (clock is not null)
                    {
                        builder.Services.AddSingleton(clock);
                    }
                },
                app =>
                {
                    // Outermost: completes when the whole guarded request, settlement included, is done.
                    app.Use(async (context, next) =>
                    {
                        try
                        {
                            await next(context);
                        }
                        finally
                        {
                            var id = context.Request.Headers["X-Request-Id"].ToString();
                            guarded._finished.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                        }
                    });
                    app.UseMcpGuard();
                    app.MapPost("/mcp", endpoint);
                },
                configuration);
            return guarded;
        }

        public Task Finished(string requestId) =>
            _finished.GetOrAdd(requestId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

        public async Task<HttpResponseMessage> SendAsync(string body, string requestId)
        {
            using var request = CreditCalls.Post(body, DemoKeys.Alice, requestId);
            var response = await Host.Client.SendAsync(request).WaitAsync(Bound);
            await Finished(requestId).WaitAsync(Bound);
            return response;
        }

        /// <summary>Two rows for the request (usage −price, refund +price) and the balance where it started.</summary>
        public async Task AssertRefundedAsync(string requestId)
        {
            var rows = await RowsAsync();
            Assert.Equal(
                [
                    new Row("alice", "TopUp", Balance, Balance, null, null, false, "seed"),
                    new Row("alice", "Usage", -Price, Balance - Price, "work", requestId, false, null),
                    new Row("alice", "Refund", Price, Balance, "work", requestId, false, null),
                ],
                rows);
            await AssertBalanceAsync(Balance, rows);
        }

        /// <summary>One usage row for the request and the balance less the price.</summary>
        public async Task AssertChargedAsync(string requestId)
        {
            var rows = await RowsAsync();
            Assert.Equal(
                [
                    new Row("alice", "TopUp", Balance, Balance, null, null, false, "seed"),
                    new Row("alice", "Usage", -Price, Balance - Price, "work", requestId, false, null),
                ],
                rows);
            await AssertBalanceAsync(Balance - Price, rows);
        }

        private async Task AssertBalanceAsync(long expected, List<Row> rows)
        {
            var store = Host.Services.GetRequiredService<IMcpGuardLedgerStore>();
            var account = await store.GetAccountAsync("alice", 0, DateTimeOffset.UtcNow, default);
            Assert.Equal(expected, account!.BalanceMicro);
            Assert.Equal(expected, rows.Sum(r => r.Amount));
        }

        private async Task<List<Row>> RowsAsync()
        {
            if (Store == McpGuardStoreKind.Sqlite)
            {
                return [.. LedgerFile.Rows(CreditCalls.LedgerPath(Host), "alice").Select(r => new Row(r.Account, r.Kind, r.Amount, r.BalanceAfter, r.Tool, r.RequestId, r.Free, r.Note))];
            }

            var page = await Host.Services.GetRequiredService<IMcpGuardLedgerStore>().GetLedgerAsync("alice", null, 100, default);
            Assert.Null(page.NextCursor);
            return [.. page.Entries.Reverse().Select(e => new Row(e.Account, e.Kind.ToString(), e.AmountMicro, e.BalanceAfterMicro, e.Tool, e.RequestId, e.Free, e.Note))];
        }

        public ValueTask DisposeAsync() => Host.DisposeAsync();
    }

    /// <summary>A <see cref="FakeTimeProvider"/> that also counts the timers created on it and not yet disposed.</summary>
    private sealed class TimerCountingClock(DateTimeOffset start) : FakeTimeProvider(start)
    {
        private int _armed;

        public int ArmedTimers => Volatile.Read(ref _armed);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _armed);
            return new CountedTimer(base.CreateTimer(callback, state, dueTime, period), this);
        }

        private sealed class CountedTimer(ITimer inner, TimerCountingClock clock) : ITimer
        {
            private int _disposed;

            public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(dueTime, period);

            public void Dispose()
            {
                if (Interlocked.Exchange(ref _disposed, 1) == 0)
                {
                    Interlocked.Decrement(ref clock._armed);
                }

                inner.Dispose();
            }

            public ValueTask DisposeAsync()
            {
                Dispose();
                return ValueTask.CompletedTask;
            }
        }
    }
}
