using McpGuard.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace McpGuard.Health;

/// <summary>
/// The stores behind keys, statuses and money: each store that can check itself (it implements <see cref="IHealthCheck"/>,
/// as McpGuard.PostgreSql's do) is asked, once per distinct check, under <c>McpGuard:StoreTimeout</c>.
/// </summary>
internal sealed class StoreHealthCheck(IServiceProvider services, McpGuardStateProvider states) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        object[] stores =
        [
            services.GetRequiredService<IMcpGuardLedgerStore>(),
            services.GetRequiredService<IMcpGuardApiKeyStore>(),
            services.GetRequiredService<IMcpGuardAccountStatusStore>(),
            services.GetRequiredService<IMcpGuardToolStatusStore>(),
        ];
        var checks = stores.OfType<IHealthCheck>().Distinct().ToArray();
        var settings = services.GetRequiredService<StoreSettings>();
        var description = settings.Kind switch
        {
            McpGuardStoreKind.Sqlite => $"SQLite at {settings.SqlitePath}",
            McpGuardStoreKind.InMemory => "in memory",
            _ => settings.Kind.ToString(),
        };
        return HealthChecks.RunAsync(checks, description, states.Current.Options.StoreTimeout, context, cancellationToken);
    }
}

/// <summary>The shared rate-limit store, when there is one (it is asked if it implements <see cref="IHealthCheck"/>).</summary>
internal sealed class RateLimitStoreHealthCheck(IServiceProvider services, McpGuardStateProvider states) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var store = McpGuardStores.RateLimitStore(services);
        if (store is null)
        {
            return Task.FromResult(HealthCheckResult.Healthy("in process"));
        }

        return HealthChecks.RunAsync(store is IHealthCheck check ? [check] : [], store.GetType().Name, states.Current.Options.StoreTimeout, context, cancellationToken);
    }
}

internal static class HealthChecks
{
    /// <summary>The worst of <paramref name="checks"/>, each given at most <paramref name="timeout"/>; healthy when there are none.</summary>
    public static async Task<HealthCheckResult> RunAsync(IHealthCheck[] checks, string description, TimeSpan timeout, HealthCheckContext context, CancellationToken cancellationToken)
    {
        foreach (var check in checks)
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            limit.CancelAfter(timeout);
            HealthCheckResult result;
            try
            {
                result = await check.CheckHealthAsync(context, limit.Token);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                return new HealthCheckResult(context.Registration.FailureStatus, $"{description}: {(limit.IsCancellationRequested ? $"no answer within {timeout.TotalMilliseconds:0} ms" : ex.Message)}", ex);
            }

            if (result.Status != HealthStatus.Healthy)
            {
                return result;
            }
        }

        return HealthCheckResult.Healthy(description);
    }
}
