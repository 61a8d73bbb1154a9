using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace McpGuard.Credits;

/// <summary>
/// Gives the gates the ledger store: one registered with <c>AddLedgerStore&lt;T&gt;()</c>, else the built-in
/// SQLite or in-memory store chosen by <c>McpGuard:Credits:Store</c>, created on first use (and at start-up
/// by <see cref="LedgerStartup"/>). The store and its file are fixed for the life of the process.
/// </summary>
internal sealed class LedgerAccessor(
    McpGuardStateProvider states,
    TimeProvider clock,
    ILoggerFactory loggers,
    IHostEnvironment? environment = null,
    McpGuardCustomLedgerStore? custom = null) : IAsyncDisposable
{
    private readonly Lazy<IMcpGuardLedgerStore> _store = new(() => custom?.Store ?? Create(states, clock, loggers, environment));

    public IMcpGuardLedgerStore Store => _store.Value;

    /// <summary>The store's run-time API keys, when it keeps them.</summary>
    public IMcpGuardKeyStore? Keys => Store as IMcpGuardKeyStore;

    private static LedgerEngine Create(McpGuardStateProvider states, TimeProvider clock, ILoggerFactory loggers, IHostEnvironment? environment)
    {
        var credits = states.Current.Options.Credits;
        var logger = loggers.CreateLogger("McpGuard.Credits.Ledger");
        LedgerJournal journal = credits.Store == McpGuardLedgerStoreKind.InMemory
            ? new InMemoryJournal()
            : new SqliteJournal(Path.IsPathRooted(credits.SqlitePath)
                ? credits.SqlitePath
                : Path.Combine(environment?.ContentRootPath ?? AppContext.BaseDirectory, credits.SqlitePath),
                credits.Durability);
        return new LedgerEngine(journal, clock, logger);
    }

    public async ValueTask DisposeAsync()
    {
        if (_store.IsValueCreated && custom is null && _store.Value is LedgerEngine engine)
        {
            await engine.DisposeAsync();
        }
    }
}

/// <summary>Holds a store registered with <c>AddLedgerStore&lt;T&gt;()</c>.</summary>
internal sealed class McpGuardCustomLedgerStore(IMcpGuardLedgerStore store)
{
    public IMcpGuardLedgerStore Store { get; } = store;
}

/// <summary>Opens (and migrates) the ledger when the host starts and applies seed balances to an empty one.</summary>
internal sealed partial class LedgerStartup(McpGuardStateProvider states, LedgerAccessor ledger, TimeProvider clock, ILogger<LedgerStartup> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var credits = states.Current.Credits;
        if (!credits.Enabled)
        {
            return;
        }

        if (await ledger.Store.SeedAsync(credits.Seeds, clock.GetUtcNow(), cancellationToken))
        {
            Log.Seeded(logger, credits.Seeds.Count);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(6001, LogLevel.Information, "Seeded an empty ledger with {Count} accounts from McpGuard:Accounts.", EventName = "LedgerSeeded")]
        public static partial void Seeded(ILogger logger, int count);
    }
}
