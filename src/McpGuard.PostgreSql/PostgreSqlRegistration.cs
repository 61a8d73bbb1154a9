using McpGuard.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace McpGuard.PostgreSql;

/// <summary>
/// Registers the four stores keyed by <see cref="McpGuardStores.PostgreSqlKey"/> (McpGuard resolves them when
/// <c>McpGuard:Store</c> is PostgreSql), the data source they share, and the start-up that migrates the schema and reads
/// keys and statuses into memory.
/// </summary>
internal static class PostgreSqlRegistration
{
    public static void Add(IServiceCollection services)
    {
        services.TryAddSingleton<PostgreSqlDatabase>();
        services.TryAddSingleton(sp => new PostgreSqlDirectory(
            sp.GetRequiredService<PostgreSqlDatabase>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("McpGuard.PostgreSql")));
        services.TryAddKeyedSingleton<IMcpGuardLedgerStore>(McpGuardStores.PostgreSqlKey, (sp, _) => new PostgreSqlLedgerStore(
            sp.GetRequiredService<PostgreSqlDatabase>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("McpGuard.PostgreSql"))
        {
            Telemetry = sp.GetService<McpGuard.Telemetry.McpGuardTelemetry>(),
        });
        services.TryAddKeyedSingleton<IMcpGuardApiKeyStore>(McpGuardStores.PostgreSqlKey, (sp, _) => new PostgreSqlApiKeyStore(
            sp.GetRequiredService<PostgreSqlDirectory>(), sp.GetRequiredService<PostgreSqlDatabase>()));
        services.TryAddKeyedSingleton<IMcpGuardAccountStatusStore>(McpGuardStores.PostgreSqlKey, (sp, _) => new PostgreSqlAccountStatusStore(
            sp.GetRequiredService<PostgreSqlDirectory>(), sp.GetRequiredService<PostgreSqlDatabase>()));
        services.TryAddKeyedSingleton<IMcpGuardToolStatusStore>(McpGuardStores.PostgreSqlKey, (sp, _) => new PostgreSqlToolStatusStore(
            sp.GetRequiredService<PostgreSqlDirectory>(), sp.GetRequiredService<PostgreSqlDatabase>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, PostgreSqlStartup>());
    }
}

/// <summary>
/// When <c>McpGuard:Store</c> is PostgreSql: migrates the schema and reads keys and statuses into memory before the app
/// serves, then keeps listening for changes. PostgreSQL being down does not stop the start: it is logged, priced calls
/// answer <c>ledger_unavailable</c> until it is back, and free calls go on.
/// </summary>
internal sealed partial class PostgreSqlStartup(IServiceProvider services, ILogger<PostgreSqlStartup> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (services.GetRequiredService<StoreSettings>().Kind != McpGuardStoreKind.PostgreSql)
        {
            return;
        }

        var database = services.GetRequiredService<PostgreSqlDatabase>();
        try
        {
            await database.EnsureMigratedAsync(cancellationToken);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Log.Unreachable(logger, ex);
        }

        await services.GetRequiredService<PostgreSqlDirectory>().StartAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(8003, LogLevel.Error, "PostgreSQL (McpGuard:PostgreSql:ConnectionString) did not answer at start. The app starts anyway: priced calls answer ledger_unavailable and free calls go on until it does.", EventName = "PostgreSqlUnreachableAtStart")]
        public static partial void Unreachable(ILogger logger, Exception exception);
    }
}
