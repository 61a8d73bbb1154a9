using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tests.Proxy;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Telemetry;

/// <summary>
/// The spans of activity source <c>McpGuard</c>: one per guarded request, named and tagged after what it asks, with
/// children for store calls, inside the caller's W3C trace; the trace reaches the MCP endpoint, and through the proxy the
/// upstream server, whose request is a child of McpGuard's span.
/// </summary>
public sealed class TracingTests
{
    [Fact]
    public async Task A_guarded_call_is_one_span_in_the_callers_trace_with_children_for_store_calls_and_the_endpoints_spans_under_it()
    {
        using var trace = new TraceRecorder();
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.PostMcpAsync(CreditCalls.Add(7), headers: new Dictionary<string, string> { ["traceparent"] = trace.Traceparent });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = Assert.Single(response.Headers.GetValues("X-Request-Id"));
        var guard = await trace.WaitForAsync(a => a.Source.Name == "McpGuard" && a.DisplayName == "McpGuard tools/call add");
        Assert.Equal(trace.TraceId, guard.TraceId);
        Assert.Equal(ActivityKind.Internal, guard.Kind);
        Assert.Equal(
            [
                ("gen_ai.operation.name", "execute_tool"),
                ("gen_ai.tool.name", "add"),
                ("jsonrpc.request.id", "7"),
                ("mcp.method.name", "tools/call"),
                ("mcpguard.outcome", "passed"),
                ("mcpguard.request_id", requestId),
            ],
            guard.TagObjects.Select(t => (t.Key, t.Value?.ToString())).Order());
        Assert.Equal(ActivityStatusCode.Unset, guard.Status);

        // The store calls of this request: its account's status, its tool's status and the charge, each a child span.
        var stores = trace.Stopped.Where(a => a.Source.Name == "McpGuard" && a.ParentSpanId == guard.SpanId).ToArray();
        Assert.Equal(["McpGuard account_status get", "McpGuard ledger charge", "McpGuard tool_status get"], stores.Select(a => a.DisplayName).Order());
        Assert.Equal("charged", stores.Single(a => a.DisplayName == "McpGuard ledger charge").GetTagItem("mcpguard.charge.outcome"));

        // The MCP SDK's own spans for the call run inside McpGuard's span.
        var endpointSpans = trace.Stopped.Where(a => a.Source.Name != "McpGuard" && trace.HasAncestor(a, guard)).ToArray();
        Assert.NotEmpty(endpointSpans);
        Assert.All(endpointSpans, a => Assert.Equal(trace.TraceId, a.TraceId));
    }

    [Fact]
    public async Task A_refused_call_carries_its_reason_and_a_failure_of_mcpguards_own_is_an_error()
    {
        using var trace = new TraceRecorder();
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.PostMcpAsync(CreditCalls.ToolCall(3, "premium_report", """{"topic":"x"}"""), apiKey: DemoKeys.Bob,
            headers: new Dictionary<string, string> { ["traceparent"] = trace.Traceparent });

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var guard = await trace.WaitForAsync(a => a.Source.Name == "McpGuard" && a.DisplayName == "McpGuard tools/call premium_report");
        Assert.Equal("refused", guard.GetTagItem("mcpguard.outcome"));
        Assert.Equal("insufficient_scope", guard.GetTagItem("mcpguard.reason"));
        Assert.Equal("insufficient_scope", guard.GetTagItem("error.type"));
        // A refusal is the guard doing its job: the span's status stays unset (an error status is kept for faults).
        Assert.Equal(ActivityStatusCode.Unset, guard.Status);
    }

    [Fact]
    public async Task A_ledger_that_fails_marks_the_charge_span_and_the_request_span_as_errors()
    {
        using var trace = new TraceRecorder();
        await using var host = await GuardedHost.StartSampleAsync(configure: builder =>
            builder.ConfigureServices(services => services.AddSingleton<IMcpGuardLedgerStore, Credits.GateFailureTests.ThrowingLedgerStore>()));

        using var response = await host.PostMcpAsync(CreditCalls.Add(9), headers: new Dictionary<string, string> { ["traceparent"] = trace.Traceparent });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var guard = await trace.WaitForAsync(a => a.Source.Name == "McpGuard" && a.DisplayName == "McpGuard tools/call add");
        Assert.Equal(ActivityStatusCode.Error, guard.Status);
        Assert.Equal("ledger_unavailable", guard.GetTagItem("mcpguard.reason"));
        var charge = Assert.Single(trace.Stopped, a => a.DisplayName == "McpGuard ledger charge");
        Assert.Equal(guard.SpanId, charge.ParentSpanId);
        Assert.Equal(ActivityStatusCode.Error, charge.Status);
        Assert.Equal("System.IO.IOException", charge.GetTagItem("error.type"));
        Assert.Equal("exception", Assert.Single(charge.Events).Name);
    }

    [Fact]
    public async Task Through_the_proxy_the_upstream_request_is_a_child_of_mcpguards_span_in_the_callers_trace()
    {
        using var trace = new TraceRecorder();
        await using var upstream = await Upstream.StartAsync(CreditCalls.AnswerWithResult);
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url);

        using var response = await guard.PostMcpAsync(CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""),
            headers: new Dictionary<string, string> { ["traceparent"] = trace.Traceparent, ["tracestate"] = "vendor=caller" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var span = await trace.WaitForAsync(a => a.Source.Name == "McpGuard" && a.DisplayName == "McpGuard tools/call echo");
        var forwarded = Assert.Single(upstream.Requests).Header("traceparent");
        Assert.NotNull(forwarded);
        var parts = forwarded.Split('-');
        Assert.Equal(4, parts.Length);
        Assert.Equal(trace.TraceId.ToHexString(), parts[1]);
        // Not the caller's span: the request the upstream got was made inside McpGuard's span (the forwarder's HTTP span, or McpGuard's own).
        Assert.NotEqual(trace.CallerSpanId.ToHexString(), parts[2]);
        var parent = trace.Stopped.Single(a => a.SpanId.ToHexString() == parts[2]);
        Assert.True(parent == span || trace.HasAncestor(parent, span), $"the upstream's parent span {parent.DisplayName} is not under McpGuard's span");
    }

    [Fact]
    public async Task Through_the_gateway_a_node_mcp_server_receives_the_trace_with_a_parent_under_mcpguards_span()
    {
        using var trace = new TraceRecorder();
        await using var upstream = await Gateway.EverythingServer.StartAsync();
        await using var gateway = await Gateway.GatewayHost.StartAsync(Gateway.GatewayEverythingTests.AppSettings(), "--upstream", upstream.Url.ToString());

        using var initialize = CreditCalls.Post(
            """{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}""", DemoKeys.Alice);
        initialize.Headers.TryAddWithoutValidation("traceparent", trace.Traceparent);
        using var response = await gateway.Client.SendAsync(initialize);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var span = await trace.WaitForAsync(a => a.Source.Name == "McpGuard" && a.DisplayName == "McpGuard initialize");
        // The upstream logs a request when its response ends, which may be just after the client read it.
        for (var i = 0; i < 200 && !upstream.Requests().Any(r => r.Method == "POST"); i++)
        {
            await Task.Delay(25);
        }

        var logged = Assert.Single(upstream.Requests(), r => r.Method == "POST");
        var parts = logged.Headers["traceparent"].Split('-');
        Assert.Equal(trace.TraceId.ToHexString(), parts[1]);
        var parent = trace.Stopped.Single(a => a.SpanId.ToHexString() == parts[2]);
        Assert.True(parent == span || trace.HasAncestor(parent, span), $"the upstream's parent span {parent.DisplayName} is not under McpGuard's span");
    }

    [Fact]
    public async Task With_nothing_listening_the_upstream_request_is_still_in_the_callers_trace()
    {
        await using var upstream = await Upstream.StartAsync(CreditCalls.AnswerWithResult);
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url);
        const string traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

        using var response = await guard.PostMcpAsync(CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""),
            headers: new Dictionary<string, string> { ["traceparent"] = traceparent });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var forwarded = Assert.Single(upstream.Requests).Header("traceparent");
        // No listener samples anything here: whatever activity the host opened, the upstream's request is in the caller's trace.
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", forwarded?.Split('-')[1]);
    }

    /// <summary>
    /// Records every span of one trace (a trace id made for the test, sent as the caller's <c>traceparent</c>), from every
    /// source, while other tests run: spans of other traces are not sampled.
    /// </summary>
    private sealed class TraceRecorder : IDisposable
    {
        private readonly ActivityListener _listener;
        private readonly ConcurrentQueue<Activity> _stopped = new();

        public TraceRecorder()
        {
            TraceId = ActivityTraceId.CreateRandom();
            CallerSpanId = ActivitySpanId.CreateRandom();
            _listener = new ActivityListener
            {
                ShouldListenTo = _ => true,
                Sample = (ref ActivityCreationOptions<ActivityContext> options) =>
                    options.TraceId == TraceId ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.None,
                ActivityStopped = activity =>
                {
                    if (activity.TraceId == TraceId)
                    {
                        _stopped.Enqueue(activity);
                    }
                },
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public ActivityTraceId TraceId { get; }

        public ActivitySpanId CallerSpanId { get; }

        public string Traceparent => $"00-{TraceId.ToHexString()}-{CallerSpanId.ToHexString()}-01";

        public IReadOnlyList<Activity> Stopped => [.. _stopped];

        /// <summary>The first stopped span that matches (spans stop as the request ends, which may be just after the client read the answer).</summary>
        public async Task<Activity> WaitForAsync(Func<Activity, bool> match)
        {
            for (var i = 0; i < 200; i++)
            {
                if (_stopped.FirstOrDefault(match) is { } found)
                {
                    return found;
                }

                await Task.Delay(25);
            }

            throw new Xunit.Sdk.XunitException($"No such span; stopped: {string.Join(", ", _stopped.Select(a => $"{a.Source.Name}/{a.DisplayName}"))}");
        }

        /// <summary>Whether <paramref name="ancestor"/> is above <paramref name="activity"/> (by parent span ids among the recorded spans).</summary>
        public bool HasAncestor(Activity activity, Activity ancestor)
        {
            var bySpan = _stopped.ToDictionary(a => a.SpanId);
            var current = activity;
            for (var depth = 0; depth < 64 && current.ParentSpanId != default; depth++)
            {
                if (current.ParentSpanId == ancestor.SpanId)
                {
                    return true;
                }

                if (!bySpan.TryGetValue(current.ParentSpanId, out current!))
                {
                    return false;
                }
            }

            return false;
        }

        public void Dispose() => _listener.Dispose();
    }
}
