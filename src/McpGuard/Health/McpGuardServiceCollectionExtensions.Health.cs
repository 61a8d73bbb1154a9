using McpGuard.Health;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

// Health checks for McpGuard's stores, on ASP.NET Core health checks.
public static partial class McpGuardServiceCollectionExtensions
{
    /// <summary>
    /// Adds a check for each store McpGuard uses, tagged <c>mcpguard</c>: <c>mcpguard-ledger</c> (balances, charges and
    /// refunds), <c>mcpguard-keys</c> (API keys, account and tool statuses), both on McpGuard's SQLite file, in memory or on
    /// PostgreSQL (McpGuard.PostgreSql), and <c>mcpguard-rate-limits</c> (the shared rate-limit store, Redis; healthy when
    /// counters are in process). A store that cannot answer within <c>McpGuard:StoreTimeout</c> is unhealthy, and so is an
    /// embedded ledger whose journal failed to write.
    /// </summary>
    /// <example>
    /// <code>
    /// builder.Services.AddHealthChecks().AddMcpGuardStores();
    /// app.MapHealthChecks("/health");
    /// </code>
    /// </example>
    public static IHealthChecksBuilder AddMcpGuardStores(this IHealthChecksBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder
            .Add(new HealthCheckRegistration("mcpguard-ledger", static sp => ActivatorUtilities.CreateInstance<StoreHealthCheck>(sp, StoreHealthCheck.Group.Ledger), HealthStatus.Unhealthy, ["mcpguard"]))
            .Add(new HealthCheckRegistration("mcpguard-keys", static sp => ActivatorUtilities.CreateInstance<StoreHealthCheck>(sp, StoreHealthCheck.Group.Keys), HealthStatus.Unhealthy, ["mcpguard"]))
            .Add(new HealthCheckRegistration("mcpguard-rate-limits", static sp => ActivatorUtilities.CreateInstance<RateLimitStoreHealthCheck>(sp), HealthStatus.Unhealthy, ["mcpguard"]));
    }
}
