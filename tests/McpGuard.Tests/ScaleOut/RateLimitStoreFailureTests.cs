using System.Diagnostics.Metrics;
using System.Net;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.ScaleOut;

/// <summary>
/// A shared rate-limit store that fails is <c>RateLimits:OnStoreFailure</c>'s to decide, for any store (Redis's own
/// outage tests are under ScaleOut/Redis): FailClosed refuses with 503 limiter_unavailable, FailOpen lets the call
/// through, logged and counted.
/// </summary>
public sealed class RateLimitStoreFailureTests
{
    private const string Echo = """{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}""";

    [Fact]
    public async Task FailClosed_answers_503_limiter_unavailable_with_Retry_After_and_the_endpoint_does_not_run()
    {
        await using var host = await GuardedHost.StartSampleAsync(configure: builder =>
            builder.ConfigureServices(services => services.AddSingleton<IMcpGuardRateLimitStore, BrokenStore>()));
        using var failures = Measurements.Collect<long>(host, "mcpguard.rate_limit.store_failures");
        using var errors = Measurements.Collect<long>(host, "mcpguard.store.errors");

        using var response = await host.PostMcpAsync(Echo);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(["1 mcpguard.outcome=refused"], Measurements.Lines(failures));
        Assert.Equal(["1 db.operation.name=acquire mcpguard.store=rate_limit"], Measurements.Lines(errors));
        Assert.Equal("1", Assert.Single(response.Headers.GetValues("Retry-After")));
        Assert.False(response.Headers.Contains("RateLimit"));
        var requestId = Assert.Single(response.Headers.GetValues("X-Request-Id"));
        Assert.Equal(
            "{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-31203,\"message\":\"Rate limiter unavailable: retry after 1 s.\",\"data\":{\"reason\":\"limiter_unavailable\",\"request_id\":\"" + requestId + "\",\"retry_after\":1}}}",
            await response.Content.ReadAsStringAsync());
        var logged = Assert.Single(host.Logs.Entries, e => e.EventId.Id == 5002);
        Assert.Equal($"The rate-limit store did not answer for account:alice; request {requestId} refused with limiter_unavailable (RateLimits:OnStoreFailure is FailClosed).", logged.Message);
        Assert.IsType<TimeoutException>(logged.Exception);
    }

    [Fact]
    public async Task A_call_that_spends_no_permit_goes_on_without_RateLimit_headers_when_the_store_fails()
    {
        await using var host = await GuardedHost.StartSampleAsync(configure: builder =>
            builder.ConfigureServices(services => services.AddSingleton<IMcpGuardRateLimitStore, BrokenStore>()));

        using var response = await host.PostMcpAsync("""{"jsonrpc":"2.0","id":5,"method":"tools/list"}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("RateLimit"));
        Assert.False(response.Headers.Contains("RateLimit-Policy"));
        var message = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal(6, message.GetProperty("result").GetProperty("tools").GetArrayLength());
        Assert.DoesNotContain(host.Logs.Entries, e => e.EventId.Id is 5002 or 5003);
    }

    [Fact]
    public async Task FailOpen_lets_the_call_through_uncounted_logged_and_counted_in_the_metric()
    {
        await using var host = await GuardedHost.StartSampleAsync(
            new Dictionary<string, string?> { ["McpGuard:RateLimits:OnStoreFailure"] = "FailOpen" },
            configure: builder => builder.ConfigureServices(services => services.AddSingleton<IMcpGuardRateLimitStore, BrokenStore>()));
        using var failures = Measurements.Collect<long>(host, "mcpguard.rate_limit.store_failures");
        using var errors = Measurements.Collect<long>(host, "mcpguard.store.errors");

        using var response = await host.PostMcpAsync(Echo);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("RateLimit"));
        var message = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal("hi", message.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        var requestId = Assert.Single(response.Headers.GetValues("X-Request-Id"));
        var logged = Assert.Single(host.Logs.Entries, e => e.EventId.Id == 5003);
        Assert.Equal($"The rate-limit store did not answer for account:alice; request {requestId} passes uncounted (RateLimits:OnStoreFailure is FailOpen).", logged.Message);
        Assert.Equal(["1 mcpguard.outcome=passed"], Measurements.Lines(failures));
        Assert.Equal(["1 db.operation.name=acquire mcpguard.store=rate_limit"], Measurements.Lines(errors));
    }

    /// <summary>A store whose every call fails, as StackExchange.Redis does when Redis is down.</summary>
    private sealed class BrokenStore : IMcpGuardRateLimitStore
    {
        public ValueTask<McpGuardRateLimitResult> AcquireAsync(McpGuardRateLimitRequest request, CancellationToken cancellationToken) =>
            throw new TimeoutException("no connection is active");
    }
}
