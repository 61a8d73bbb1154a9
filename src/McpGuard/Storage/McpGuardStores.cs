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
    }

    public McpGuardStoreKind Kind { get; }

    /// <summary>The SQLite file's full path (when <see cref="Kind"/> is SQLite).</summary>
    public string SqlitePath { get; }

    public McpGuardLedgerDurability Durability { get; }

    /// <summary>Whether the store was placed by the deprecated <c>Credits:Store</c> / <c>Credits:SqlitePath</c>.</summary>
    public bool UsesDeprecatedKeys { get; }
}

/// <summary>Registers McpGuard's stores: each is McpGuard's own (SQLite or in memory) unless the app registered one.</summary>
internal static class McpGuardStores
{
    public static void Add(IServiceCollection services)
    {
        services.TryAddSingleton<StoreSettings>();
        services.TryAddSingleton(sp => new SqliteDatabase(sp.GetRequiredService<StoreSettings>().SqlitePath));
        services.TryAddSingleton<IMcpGuardApiKeyStore>(sp => Sqlite(sp) is { } database
            ? new SqliteApiKeyStore(database, sp.GetRequiredService<TimeProvider>())
            : new InMemoryApiKeyStore());
        services.TryAddSingleton<IMcpGuardAccountStatusStore>(sp => Sqlite(sp) is { } database ? new AccountStatusStore(database) : new AccountStatusStore());
        services.TryAddSingleton<IMcpGuardToolStatusStore>(sp => Sqlite(sp) is { } database ? new ToolStatusStore(database) : new ToolStatusStore());
        services.TryAddSingleton<IMcpGuardLedgerStore>(sp =>
        {
            var settings = sp.GetRequiredService<StoreSettings>();
            LedgerJournal journal = Sqlite(sp) is { } database ? new SqliteJournal(database, settings.Durability) : new InMemoryJournal();
            return new LedgerEngine(journal, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("McpGuard.Credits.Ledger"));
        });
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, StoreStartup>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, LedgerRetention>());
    }

    private static SqliteDatabase? Sqlite(IServiceProvider services) =>
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
