using McpGuard.Storage;

namespace McpGuard.Auth;

/// <summary>Suspended accounts in memory, backed by the <c>account_status</c> table of McpGuard's SQLite file unless the store is in memory.</summary>
internal sealed class AccountStatusStore : IDisposable, IMcpGuardAccountStatusStore
{
    private readonly PersistentMap<bool> _suspended;

    /// <summary>In memory, gone on restart.</summary>
    public AccountStatusStore() => _suspended = new();

    public AccountStatusStore(SqliteDatabase database) =>
        _suspended = new(
            database,
            "SELECT account, suspended FROM account_status WHERE suspended <> 0;",
            "INSERT INTO account_status (account, suspended) VALUES ($key, $value) ON CONFLICT (account) DO UPDATE SET suspended = excluded.suspended;",
            "DELETE FROM account_status WHERE account = $key;",
            reader => reader.GetInt64(1) != 0,
            suspended => suspended ? 1 : 0);

    public ValueTask<bool> IsSuspendedAsync(string account, CancellationToken cancellationToken) =>
        ValueTask.FromResult(_suspended.Get(account) is true);

    public ValueTask SetSuspendedAsync(string account, bool suspended, CancellationToken cancellationToken) =>
        _suspended.SetAsync(account, suspended ? true : null, cancellationToken);

    public void Dispose() => _suspended.Dispose();
}
