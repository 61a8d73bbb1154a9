using McpGuard.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace McpGuard.Health;

/// <summary>
/// One group of McpGuard's stores: the ledger (money), or the key store (API keys, account and tool statuses). Healthy
/// when McpGuard's SQLite file opens and reads (if the stores live there) and every store of the group that can check
/// itself (it implements <see cref="IHealthCheck"/>: the embedded ledger, which fails for good when its journal fails, and
/// McpGuard.PostgreSql's stores) says so, each within <c>McpGuard:StoreTimeout</c>.
/// </summary>
internal sealed class StoreHealthCheck(IServiceProvider services, McpGuardStateProvider states, StoreHealthCheck.Group group) : IHealthCheck
{
    internal enum Group
    {
        Ledger,
        Keys,
    }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        object[] stores = group == Group.Ledger
            ? [services.GetRequiredService<IMcpGuardLedgerStore>()]
            :
            [
                services.GetRequiredService<IMcpGuardApiKeyStore>(),
                services.GetRequiredService<IMcpGuardAccountStatusStore>(),
                services.GetRequiredService<IMcpGuardToolStatusStore>(),
            ];
        var checks = stores.OfType<IHealthCheck>().Distinct().ToList();
        var settings = services.GetRequiredService<StoreSettings>();
        var description = settings.Kind switch
        {
            McpGuardStoreKind.Sqlite => $"SQLite at {settings.SqlitePath}",
            McpGuardStoreKind.InMemory => "in memory",
            _ => settings.Kind.ToString(),
        };
        if (McpGuardStores.Sqlite(services) is { } database)
        {
            checks.Insert(0, new SqliteFileCheck(database));
        }

        return await HealthChecks.RunAsync([.. checks], description, states.Current.Options.StoreTimeout, context, cancellationToken);
    }

    /// <summary>The SQLite file opens and its schema reads, on a new connection (off the caller's thread: the file may hang).</summary>
    private sealed class SqliteFileCheck(SqliteDatabase database) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            await Task.Run(database.Check, cancellationToken).WaitAsync(cancellationToken);
            return HealthCheckResult.Healthy();
        }
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
    /// <summary>
    /// The worst of <paramref name="checks"/>, run at once (so several stores on one slow database cost one timeout, not
    /// one each), each given at most <paramref name="timeout"/>; healthy when there are none. The first check in order
    /// that is not healthy is the one reported.
    /// </summary>
    public static async Task<HealthCheckResult> RunAsync(IHealthCheck[] checks, string description, TimeSpan timeout, HealthCheckContext context, CancellationToken cancellationToken)
    {
        var results = await Task.WhenAll(checks.Select(check => RunOneAsync(check, description, timeout, context, cancellationToken)));
        foreach (var result in results)
        {
            if (result.Status != HealthStatus.Healthy)
            {
                return result;
            }
        }

        return HealthCheckResult.Healthy(description);
    }

    private static async Task<HealthCheckResult> RunOneAsync(IHealthCheck check, string description, TimeSpan timeout, HealthCheckContext context, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            var result = await check.CheckHealthAsync(context, limit.Token).WaitAsync(limit.Token);
            return result.Status == HealthStatus.Healthy
                ? result
                : new HealthCheckResult(result.Status, $"{description}: {result.Description}", result.Exception, result.Data);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"{description}: {(limit.IsCancellationRequested ? $"no answer within {timeout.TotalMilliseconds:0} ms" : ex.Message)}", ex);
        }
    }
}
