using System.Net;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace McpGuard.Tests.ScaleOut;

/// <summary><c>AddHealthChecks().AddMcpGuardStores()</c>: the sample's <c>/healthz</c> reports each store McpGuard uses.</summary>
public sealed class HealthCheckTests
{
    [Fact]
    public async Task The_sample_on_its_SQLite_file_is_healthy()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.Client.GetAsync(new Uri("/healthz", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(["mcpguard-rate-limits", "mcpguard-store"], report.Entries.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("in process", report.Entries["mcpguard-rate-limits"].Description);
        Assert.StartsWith("SQLite at ", report.Entries["mcpguard-store"].Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_shared_rate_limit_store_that_does_not_answer_in_time_is_unhealthy()
    {
        await using var host = await GuardedHost.StartSampleAsync(
            new Dictionary<string, string?> { ["McpGuard:StoreTimeout"] = "00:00:00.2" },
            configure: builder => builder.ConfigureServices(services => services.AddSingleton<IMcpGuardRateLimitStore, SilentStore>()));

        using var response = await host.Client.GetAsync(new Uri("/healthz", UriKind.Relative));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("Unhealthy", await response.Content.ReadAsStringAsync());
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Unhealthy, report.Entries["mcpguard-rate-limits"].Status);
        Assert.Equal("SilentStore: no answer within 200 ms", report.Entries["mcpguard-rate-limits"].Description);
        Assert.Equal(HealthStatus.Healthy, report.Entries["mcpguard-store"].Status);
    }

    /// <summary>A rate-limit store that never answers, as a Redis behind a dropped network would.</summary>
    private sealed class SilentStore : IMcpGuardRateLimitStore, IHealthCheck
    {
        public async ValueTask<McpGuardRateLimitResult> AcquireAsync(McpGuardRateLimitRequest request, CancellationToken cancellationToken)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            throw new InvalidOperationException("unreachable");
        }

        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return HealthCheckResult.Healthy();
        }
    }
}
