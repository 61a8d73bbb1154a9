using McpGuard.Health;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Health checks for McpGuard's stores, on ASP.NET Core health checks.</summary>
public static class McpGuardHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds two checks: <c>mcpguard-store</c> (the ledger, API keys, account and tool statuses: McpGuard's SQLite file or
    /// PostgreSQL) and <c>mcpguard-rate-limits</c> (the shared rate-limit store, Redis; healthy when counters are in process).
    /// A store that cannot answer within <c>McpGuard:StoreTimeout</c> is unhealthy. Both carry the tag <c>mcpguard</c>.
    /// </summary>
    /// <example>
    /// <code>
    /// builder.Services.AddHealthChecks().AddMcpGuardStores();
    /// app.MapHealthChecks("/healthz");
    /// </code>
    /// </example>
    public static IHealthChecksBuilder AddMcpGuardStores(this IHealthChecksBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder
            .Add(new HealthCheckRegistration("mcpguard-store", static sp => ActivatorUtilities.CreateInstance<StoreHealthCheck>(sp), HealthStatus.Unhealthy, ["mcpguard"]))
            .Add(new HealthCheckRegistration("mcpguard-rate-limits", static sp => ActivatorUtilities.CreateInstance<RateLimitStoreHealthCheck>(sp), HealthStatus.Unhealthy, ["mcpguard"]));
    }
}
