using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Tools;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace McpGuard.Storage;

/// <summary>
/// Where the stores live, decided once at start from <c>McpGuard:Store</c> and <c>McpGuard:SqlitePath</c> (or the
/// deprecated <c>McpGuard:Credits:Store</c> / <c>McpGuard:Credits:SqlitePath</c> when those are not set). Fixed for
/// the life of the process.
/// </summary>
internal sealed class StoreSettings
{
    internal const string DefaultSqlitePath = "mcpguard-ledger.db";

    public StoreSettings(McpGuardStateProvider states, IHostEnvironment? environment = null)
    {
        var options = states.Current.Options;
        Kind = options.Store ?? options.Credits.Store ?? McpGuardStoreKind.Sqlite;
        var path = options.SqlitePath ?? options.Credits.SqlitePath ?? DefaultSqlitePath;
        SqlitePath = System.IO.Path.IsPathRooted(path) ? path : System.IO.Path.Combine(environment?.ContentRootPath ?? AppContext.BaseDirectory, path);
        UsesDeprecatedKeys = (options.Store is null && options.Credits.Store is not null) || (options.SqlitePath is null && options.Credits.SqlitePath is not null);
        Durability = options.Credits.Durability;
        RateLimitStore = options.RateLimits.Store;
    }

    public McpGuardRateLimitStoreKind RateLimitStore { get; }

    public McpGuardStoreKind Kind { get; }

    /// <summary>The SQLite file's full path (when <see cref="Kind"/> is SQLite).</summary>
    public string SqlitePath { get; }

    public McpGuardLedgerDurability Durability { get; }

    /// <summary>Whether the store was placed by the deprecated <c>Credits:Store</c> / <c>Credits:SqlitePath</c>.</summary>
    public bool UsesDeprecatedKeys { get; }
}

/// <summary>
/// Registers McpGuard's stores: each is McpGuard's own (SQLite or in memory), or an integration's (McpGuard.PostgreSql
/// registers its stores keyed by <see cref="PostgreSqlKey"/>), unless the app registered one.
/// </summary>
internal static class McpGuardStores
{
    /// <summary>The service key McpGuard.PostgreSql registers its four stores under.</summary>
    internal const string PostgreSqlKey = "McpGuard.PostgreSql";

    /// <summary>The service key McpGuard.Redis registers its <see cref="IMcpGuardRateLimitStore"/> under.</summary>
    internal const string RedisKey = "McpGuard.Redis";

    public static void Add(IServiceCollection services)
    {
        services.TryAddSingleton<StoreSettings>();
        services.TryAddSingleton(sp => new SqliteDatabase(sp.GetRequiredService<StoreSettings>().SqlitePath));
        services.TryAddSingleton<IMcpGuardApiKeyStore>(sp => Integration<IMcpGuardApiKeyStore>(sp) ?? (Sqlite(sp) is { } database
            ? new SqliteApiKeyStore(database, sp.GetRequiredService<TimeProvider>())
            : new InMemoryApiKeyStore()));
        services.TryAddSingleton<IMcpGuardAccountStatusStore>(sp => Integration<IMcpGuardAccountStatusStore>(sp) ?? (Sqlite(sp) is { } database ? new AccountStatusStore(database) : new AccountStatusStore()));
        services.TryAddSingleton<IMcpGuardToolStatusStore>(sp => Integration<IMcpGuardToolStatusStore>(sp) ?? (Sqlite(sp) is { } database ? new ToolStatusStore(database) : new ToolStatusStore()));
        services.TryAddSingleton<IMcpGuardLedgerStore>(sp =>
        {
            if (Integration<IMcpGuardLedgerStore>(sp) is { } store)
            {
                return store;
            }

            var settings = sp.GetRequiredService<StoreSettings>();
            LedgerJournal journal = Sqlite(sp) is { } database ? new SqliteJournal(database, settings.Durability) { Telemetry = sp.GetService<McpGuard.Telemetry.McpGuardTelemetry>() } : new InMemoryJournal();
            return new LedgerEngine(journal, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("McpGuard.Credits.Ledger"));
        });
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, StoreStartup>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, LedgerRetention>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ReservationSweep>());
    }

    /// <summary>The shared rate-limit store: the app's own, else McpGuard.Redis's when <c>RateLimits:Store</c> is Redis, else none (in process).</summary>
    public static IMcpGuardRateLimitStore? RateLimitStore(IServiceProvider services)
    {
        if (services.GetService<IMcpGuardRateLimitStore>() is { } own)
        {
            return own;
        }

        return services.GetRequiredService<StoreSettings>().RateLimitStore == McpGuardRateLimitStoreKind.Redis
            ? services.GetKeyedService<IMcpGuardRateLimitStore>(RedisKey) ?? throw new InvalidOperationException(
                "McpGuard:RateLimits:Store is Redis, but McpGuard.Redis is not added. Add the McpGuard.Redis package and call builder.Services.AddMcpGuard().AddMcpGuardRedis().")
            : null;
    }

    /// <summary>The PostgreSQL store when <c>McpGuard:Store</c> is PostgreSql; null for McpGuard's own stores.</summary>
    private static T? Integration<T>(IServiceProvider services)
        where T : class =>
        services.GetRequiredService<StoreSettings>().Kind == McpGuardStoreKind.PostgreSql
            ? services.GetKeyedService<T>(PostgreSqlKey) ?? throw new InvalidOperationException(
                "McpGuard:Store is PostgreSql, but McpGuard.PostgreSql is not added. Add the McpGuard.PostgreSql package and call builder.Services.AddMcpGuard().AddMcpGuardPostgreSql().")
            : null;

    internal static SqliteDatabase? Sqlite(IServiceProvider services) =>
        services.GetRequiredService<StoreSettings>().Kind == McpGuardStoreKind.Sqlite ? services.GetRequiredService<SqliteDatabase>() : null;
}

/// <summary>
/// Opens the stores when the host starts (a SQLite file is created and migrated then, not on the first request) and
/// applies the seed balances of <c>McpGuard:Accounts</c> to an empty ledger.
/// </summary>
internal sealed partial class StoreStartup(
    McpGuardStateProvider states,
    StoreSettings settings,
    IServiceProvider services,
    TimeProvider clock,
    ILogger<StoreStartup> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (settings.UsesDeprecatedKeys)
        {
            Log.DeprecatedStoreKeys(logger);
        }

        _ = services.GetRequiredService<IMcpGuardApiKeyStore>();
        _ = services.GetRequiredService<IMcpGuardAccountStatusStore>();
        _ = services.GetRequiredService<IMcpGuardToolStatusStore>();
        _ = McpGuardStores.RateLimitStore(services);
        var credits = states.Current.Credits;
        if (!credits.Enabled)
        {
            return;
        }

        if (await services.GetRequiredService<IMcpGuardLedgerStore>().SeedAsync(credits.Seeds, clock.GetUtcNow(), cancellationToken))
        {
            Log.Seeded(logger, credits.Seeds.Count);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(6001, LogLevel.Information, "Seeded an empty ledger with {Count} accounts from McpGuard:Accounts.", EventName = "LedgerSeeded")]
        public static partial void Seeded(ILogger logger, int count);

        [LoggerMessage(1003, LogLevel.Warning, "McpGuard:Credits:Store and McpGuard:Credits:SqlitePath are deprecated: set McpGuard:Store and McpGuard:SqlitePath, which place every store (keys, account status, tool status and the ledger).", EventName = "DeprecatedStoreKeys")]
        public static partial void DeprecatedStoreKeys(ILogger logger);
    }
}
