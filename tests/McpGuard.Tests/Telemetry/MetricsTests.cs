using System.Net;
using McpGuard.Tests.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using static McpGuard.Tests.Infrastructure.Measurements;

namespace McpGuard.Tests.Telemetry;

/// <summary>
/// The instruments of meter <c>McpGuard</c>, read with <see cref="MetricCollector{T}"/> from the app's own meter factory
/// while the sample serves real calls over HTTP: what each counts, with which tags, and that tag values stay bounded.
/// </summary>
public sealed class MetricsTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Requests_are_counted_by_method_tool_outcome_and_reason_with_names_outside_configuration_as_other()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        using var requests = Collect<long>(host, "mcpguard.requests");

        using (var passed = await host.PostMcpAsync(CreditCalls.Add(1)))
        {
            Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        }

        await requests.WaitForMeasurementsAsync(1, Wait);
        using (var scope = await host.PostMcpAsync(CreditCalls.ToolCall(2, "premium_report", """{"topic":"x"}"""), apiKey: DemoKeys.Bob))
        {
            Assert.Equal(HttpStatusCode.Forbidden, scope.StatusCode);
        }

        using (var anonymous = await host.PostMcpAsync(CreditCalls.ToolCall(3, "echo", """{"message":"hi"}"""), apiKey: null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        using (var suspended = await host.PostMcpAsync(CreditCalls.ToolCall(4, "echo", """{"message":"hi"}"""), apiKey: DemoKeys.Carol))
        {
            Assert.Equal(HttpStatusCode.Forbidden, suspended.StatusCode);
        }

        using (var unknownTool = await host.PostMcpAsync(CreditCalls.ToolCall(5, "no_such_tool_9f2c", "{}")))
        {
            Assert.Equal(HttpStatusCode.OK, unknownTool.StatusCode);
        }

        await requests.WaitForMeasurementsAsync(5, Wait);
        using (var unknownMethod = await host.PostMcpAsync("""{"jsonrpc":"2.0","id":6,"method":"made/up_4b1e","params":{}}"""))
        {
            // Methods McpGuard does not know pass to the server, which answers them (here with a JSON-RPC error).
            Assert.Equal(HttpStatusCode.OK, unknownMethod.StatusCode);
        }

        await requests.WaitForMeasurementsAsync(6, Wait);
        Assert.Equal(
        [
            "1 gen_ai.tool.name=add mcp.method.name=tools/call mcpguard.outcome=passed",
            "1 gen_ai.tool.name=premium_report mcp.method.name=tools/call mcpguard.outcome=refused mcpguard.reason=insufficient_scope",
            "1 gen_ai.tool.name=echo mcp.method.name=tools/call mcpguard.outcome=refused mcpguard.reason=unauthorized",
            "1 gen_ai.tool.name=echo mcp.method.name=tools/call mcpguard.outcome=refused mcpguard.reason=suspended",
            "1 gen_ai.tool.name=_OTHER mcp.method.name=tools/call mcpguard.outcome=passed",
            "1 mcp.method.name=_OTHER mcpguard.outcome=passed",
        ], Lines(requests));
    }

    [Fact]
    public async Task The_account_is_a_tag_only_when_the_option_allows_it()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Telemetry:AccountTags"] = "true" });
        using var requests = Collect<long>(host, "mcpguard.requests");
        using var charged = Collect<long>(host, "mcpguard.credits.charged");

        using (var response = await host.PostMcpAsync(CreditCalls.Add(1)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await requests.WaitForMeasurementsAsync(1, Wait);
        Assert.Equal(["1 gen_ai.tool.name=add mcp.method.name=tools/call mcpguard.account=alice mcpguard.outcome=passed"], Lines(requests));
        Assert.Equal(["800 gen_ai.tool.name=add mcpguard.account=alice"], Lines(charged));
    }

    [Fact]
    public async Task Charges_and_refunds_are_counted_in_micro_units_by_tool()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        using var charged = Collect<long>(host, "mcpguard.credits.charged");
        using var refunded = Collect<long>(host, "mcpguard.credits.refunded");
        using var requests = Collect<long>(host, "mcpguard.requests");

        using (var served = await host.PostMcpAsync(CreditCalls.Add(1)))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }

        using (var crashed = await host.PostMcpAsync(CreditCalls.ToolCall(2, "fail", """{"kind":"crash"}""")))
        {
            Assert.Equal(HttpStatusCode.OK, crashed.StatusCode);
            Assert.Contains("\"isError\":true", await crashed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // A free call (echo) and a call bob cannot pay for charge nothing.
        using (var free = await host.PostMcpAsync(CreditCalls.ToolCall(3, "echo", """{"message":"hi"}""")))
        {
            Assert.Equal(HttpStatusCode.OK, free.StatusCode);
        }

        await requests.WaitForMeasurementsAsync(3, Wait);
        Assert.Equal(["800 gen_ai.tool.name=add", "100 gen_ai.tool.name=fail"], Lines(charged));
        Assert.Equal(["100 gen_ai.tool.name=fail"], Lines(refunded));
    }

    [Fact]
    public async Task A_call_the_server_did_not_answer_in_time_is_failed_upstream_timeout_and_its_refund_counted()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Credits:UpstreamTimeout"] = "00:00:00.2" });
        using var requests = Collect<long>(host, "mcpguard.requests");
        using var refunded = Collect<long>(host, "mcpguard.credits.refunded");

        using (var response = await host.PostMcpAsync(CreditCalls.ToolCall(1, "slow", """{"ms":5000}""")))
        {
            Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        }

        await requests.WaitForMeasurementsAsync(1, Wait);
        Assert.Equal(["1 gen_ai.tool.name=slow mcp.method.name=tools/call mcpguard.outcome=failed mcpguard.reason=upstream_timeout"], Lines(requests));
        Assert.Equal(["100 gen_ai.tool.name=slow"], Lines(refunded));
    }

    [Fact]
    public async Task Through_the_proxy_a_request_it_will_not_forward_is_refused_and_an_unreachable_upstream_is_failed()
    {
        await using var upstream = await McpGuard.Tests.Proxy.Upstream.StartAsync(CreditCalls.AnswerWithResult);
        await using var guard = await McpGuard.Tests.Proxy.ProxyTests.StartProxyAsync(upstream.Url);
        using var requests = Collect<long>(guard, "mcpguard.requests");

        using (var unknownSession = await guard.PostMcpAsync(CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""), headers: new Dictionary<string, string> { ["Mcp-Session-Id"] = "never-opened" }))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknownSession.StatusCode);
        }

        await requests.WaitForMeasurementsAsync(1, Wait);
        await upstream.DisposeAsync();
        using (var unreachable = await guard.PostMcpAsync(CreditCalls.ToolCall(2, "echo", """{"message":"hi"}""")))
        {
            Assert.Equal(HttpStatusCode.BadGateway, unreachable.StatusCode);
        }

        await requests.WaitForMeasurementsAsync(2, Wait);
        Assert.Equal(
        [
            "1 gen_ai.tool.name=echo mcp.method.name=tools/call mcpguard.outcome=refused mcpguard.reason=session_not_found",
            "1 gen_ai.tool.name=echo mcp.method.name=tools/call mcpguard.outcome=failed mcpguard.reason=upstream_error",
        ], Lines(requests));
    }

    [Fact]
    public async Task Rate_limit_rejections_are_counted_by_policy()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        using var rejections = Collect<long>(host, "mcpguard.rate_limit.rejections");

        // The sample's "premium" policy: 5 calls a minute per tool.
        for (var i = 1; i <= 5; i++)
        {
            using var response = await host.PostMcpAsync(CreditCalls.ToolCall(i, "premium_report", """{"topic":"x"}"""));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Empty(Lines(rejections));
        using (var limited = await host.PostMcpAsync(CreditCalls.ToolCall(6, "premium_report", """{"topic":"x"}""")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        }

        Assert.Equal(["1 mcpguard.rate_limit.policy=premium"], Lines(rejections));
    }

    [Fact]
    public async Task The_guards_own_time_is_a_histogram_in_seconds_by_method_and_outcome()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        using var duration = Collect<double>(host, "mcpguard.guard.duration");

        using (var passed = await host.PostMcpAsync(CreditCalls.Add(1)))
        {
            Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        }

        await duration.WaitForMeasurementsAsync(1, Wait);
        using (var refused = await host.PostMcpAsync(CreditCalls.Add(2), apiKey: DemoKeys.Revoked))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        var measurements = duration.GetMeasurementSnapshot();
        Assert.Equal(2, measurements.Count);
        Assert.Equal(["mcp.method.name=tools/call mcpguard.outcome=passed", "mcp.method.name=tools/call mcpguard.outcome=refused"],
            measurements.Select(m => string.Join(' ', m.Tags.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}={t.Value}"))));
        // Seconds, not milliseconds: a guard decision on loopback takes well under a second, and more than nothing.
        Assert.All(measurements, m => Assert.InRange(m.Value, 1e-7, 1.0));
        Assert.Equal("s", duration.Instrument!.Unit);
    }

    [Fact]
    public async Task Ledger_commits_are_timed_and_their_batch_sizes_recorded()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        using var commits = Collect<double>(host, "mcpguard.ledger.commit.duration");
        using var batches = Collect<long>(host, "mcpguard.ledger.commit.batch_size");

        var calls = Enumerable.Range(1, 8).Select(async i =>
        {
            using var response = await host.PostMcpAsync(CreditCalls.Add(i));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        });
        await Task.WhenAll(calls);

        // Eight charges, journalled before each call runs: every one is in some commit, and commits may group them.
        var sizes = batches.GetMeasurementSnapshot().Select(m => m.Value).ToArray();
        Assert.True(sizes.Sum() >= 8, $"batch sizes {string.Join(',', sizes)}");
        Assert.Equal(sizes.Length, commits.GetMeasurementSnapshot().Count);
        Assert.All(commits.GetMeasurementSnapshot(), m => Assert.InRange(m.Value, 0, 5.0));
    }

    [Fact]
    public async Task A_store_that_fails_is_counted_in_store_errors_and_the_refusal_in_requests()
    {
        await using var host = await GuardedHost.StartSampleAsync(configure: builder =>
            builder.ConfigureServices(services => services.AddSingleton<IMcpGuardLedgerStore, GateFailureTests.ThrowingLedgerStore>()));
        using var errors = Collect<long>(host, "mcpguard.store.errors");
        using var requests = Collect<long>(host, "mcpguard.requests");

        using (var response = await host.PostMcpAsync(CreditCalls.Add(9)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        }

        // The charge failed, and so did the refund asked for in case the charge landed before the failure.
        Assert.Equal(["1 db.operation.name=charge mcpguard.store=ledger", "1 db.operation.name=refund mcpguard.store=ledger"], Lines(errors));
        Assert.Equal(["1 gen_ai.tool.name=add mcp.method.name=tools/call mcpguard.outcome=refused mcpguard.reason=ledger_unavailable"], Lines(requests));
    }
}
