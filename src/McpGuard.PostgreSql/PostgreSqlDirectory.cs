using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace McpGuard.PostgreSql;

/// <summary>
/// API keys, suspended accounts and tool statuses, answered from a copy in memory (no request waits on PostgreSQL) and
/// kept current three ways: a change made here is read back before the call returns; a change made by any instance bumps
/// <c>changes.version</c> and is announced with <c>NOTIFY</c>, which a connection kept <c>LISTEN</c>ing reloads on; and
/// that connection also polls the version every <see cref="PollInterval"/> and reloads everything after it reconnects, so
/// a notification lost with a dropped connection is caught all the same.
/// </summary>
internal sealed partial class PostgreSqlDirectory : IAsyncDisposable
{
    /// <summary>How often the listening connection checks the change counter.</summary>
    internal static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    private readonly PostgreSqlDatabase _database;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _reloading = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private volatile Snapshot _current = Snapshot.Empty;
    private Task? _listening;
    private int _disposed;

    public PostgreSqlDirectory(PostgreSqlDatabase database, TimeProvider clock, ILogger logger)
    {
        _database = database;
        _clock = clock;
        _logger = logger;
    }

    /// <summary>The change counter the copy in memory was read at (-1 before the first read).</summary>
    internal long Version => _current.Version;

    /// <summary>How many times the listening connection (re)connected.</summary>
    internal int Connects;

    public McpGuardApiKey? FindKey(ReadOnlySpan<byte> sha256) =>
        _current.KeysByHash.GetValueOrDefault(Convert.ToHexString(sha256));

    public bool IsSuspended(string account) => _current.Suspended.Contains(account);

    public McpGuardToolStatus? ToolStatus(string tool) => _current.Tools.TryGetValue(tool, out var status) ? status : null;

    /// <summary>Reads everything once (when PostgreSQL answers) and keeps listening; returns when the first read is done or failed.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _listening ??= Task.Run(ListenAsync, CancellationToken.None);
        }

        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_database.Timeout);
            await ReloadAsync(timeout.Token);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Log.FirstReadFailed(_logger, ex);
        }
    }

    public async ValueTask AddKeyAsync(McpGuardApiKey key, ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken)
    {
        try
        {
            await ChangeAsync(
                "INSERT INTO {s}.api_keys (id, hash, account, scopes, expires_at, revoked, created_at, max_price) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [key.Id, sha256.ToArray(), key.Account, string.Join(' ', key.Scopes), key.ExpiresAt is { } expires ? expires.UtcDateTime : DBNull.Value, key.Revoked, _clock.GetUtcNow().UtcDateTime,
                    new NpgsqlParameter { Value = key.MaxPriceMicro is { } max ? max : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint }],
                cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new InvalidOperationException($"A key with id '{key.Id}' (or the same secret) already exists.", ex);
        }
    }

    public async ValueTask<bool> RevokeKeyAsync(string keyId, CancellationToken cancellationToken) =>
        await ChangeAsync("UPDATE {s}.api_keys SET revoked = true WHERE id = $1", [keyId], cancellationToken) > 0;

    public async ValueTask SetSuspendedAsync(string account, bool suspended, CancellationToken cancellationToken) =>
        await ChangeAsync(
            suspended
                ? "INSERT INTO {s}.account_status (account, suspended) VALUES ($1, true) ON CONFLICT (account) DO UPDATE SET suspended = true"
                : "DELETE FROM {s}.account_status WHERE account = $1",
            [account],
            cancellationToken);

    public async ValueTask SetToolStatusAsync(string tool, McpGuardToolStatus? status, CancellationToken cancellationToken) =>
        await ChangeAsync(
            status is { } value
                ? "INSERT INTO {s}.tool_status (tool, status) VALUES ($1, $2) ON CONFLICT (tool) DO UPDATE SET status = excluded.status"
                : "DELETE FROM {s}.tool_status WHERE tool = $1",
            status is { } given ? [tool, given.ToString()] : [tool],
            cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _stopping.CancelAsync();
        if (_listening is { } listening)
        {
            await listening.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        _stopping.Dispose();
        _reloading.Dispose();
    }

    /// <summary>Applies one change with the counter bump and notification in the same transaction, then reads it back.</summary>
    private async Task<int> ChangeAsync(string sql, object[] values, CancellationToken cancellationToken)
    {
        await _database.EnsureMigratedAsync(cancellationToken);
        int changed;
        await using (var batch = _database.DataSource.CreateBatch())
        {
            var change = new NpgsqlBatchCommand(_database.Sql(sql));
            foreach (var value in values)
            {
                // A bare DBNull is a missing time; another null comes typed, as a parameter of its own.
                change.Parameters.Add(value switch
                {
                    NpgsqlParameter typed => typed,
                    DBNull => new NpgsqlParameter { Value = value, NpgsqlDbType = NpgsqlDbType.TimestampTz },
                    _ => new NpgsqlParameter { Value = value },
                });
            }

            batch.BatchCommands.Add(change);
            batch.BatchCommands.Add(new NpgsqlBatchCommand(_database.Sql("SELECT {s}.changed()")));
            await batch.ExecuteNonQueryAsync(cancellationToken);
            changed = batch.BatchCommands[0].RecordsAffected;
        }

        await ReloadAsync(cancellationToken);
        return changed;
    }

    /// <summary>Reads keys, suspensions and tool statuses with the counter they are current at, and swaps them in.</summary>
    private async Task ReloadAsync(CancellationToken cancellationToken)
    {
        await _database.EnsureMigratedAsync(cancellationToken);
        await _reloading.WaitAsync(cancellationToken);
        try
        {
            await using var connection = await _database.DataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
            await using var command = new NpgsqlCommand(_database.Sql("""
                SELECT version FROM {s}.changes WHERE id = 1;
                SELECT hash, id, account, scopes, expires_at, revoked, max_price FROM {s}.api_keys;
                SELECT account FROM {s}.account_status WHERE suspended;
                SELECT tool, status FROM {s}.tool_status;
                """), connection, transaction);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            var version = reader.GetInt64(0);
            var keys = new Dictionary<string, McpGuardApiKey>(StringComparer.Ordinal);
            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                keys[Convert.ToHexString((byte[])reader.GetValue(0))] = new McpGuardApiKey(
                    reader.GetString(1),
                    reader.GetString(2),
                    reader.GetString(3).Split(' ', StringSplitOptions.RemoveEmptyEntries),
                    reader.IsDBNull(4) ? null : PostgreSqlDatabase.ReadTime(reader, 4),
                    reader.GetBoolean(5),
                    reader.IsDBNull(6) ? null : reader.GetInt64(6));
            }

            var suspended = new HashSet<string>(StringComparer.Ordinal);
            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                suspended.Add(reader.GetString(0));
            }

            var tools = new Dictionary<string, McpGuardToolStatus>(StringComparer.Ordinal);
            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                if (Enum.TryParse<McpGuardToolStatus>(reader.GetString(1), out var status))
                {
                    tools[reader.GetString(0)] = status;
                }
            }

            if (version >= _current.Version)
            {
                _current = new Snapshot(version, keys, suspended, tools);
            }
        }
        finally
        {
            _reloading.Release();
        }
    }

    private async Task ListenAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await _database.EnsureMigratedAsync(token);
                await using var connection = await _database.ListenDataSource.OpenConnectionAsync(token);
                var notified = false;
                connection.Notification += (_, _) => notified = true;
                await using (var listen = new NpgsqlCommand($"LISTEN {_database.Channel};", connection))
                {
                    await listen.ExecuteNonQueryAsync(token);
                }

                // Whatever changed while no connection listened.
                Interlocked.Increment(ref Connects);
                await ReloadAsync(token);
                await using var poll = new NpgsqlCommand(_database.Sql("SELECT version FROM {s}.changes WHERE id = 1;"), connection);
                while (!token.IsCancellationRequested)
                {
                    notified = false;
                    await connection.WaitAsync(PollInterval, token);
                    if (notified)
                    {
                        await ReloadAsync(token);
                        continue;
                    }

                    if ((long)(await poll.ExecuteScalarAsync(token))! != _current.Version)
                    {
                        await ReloadAsync(token);
                    }
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _database.ForgetConnections(ex);
                Log.ListenFailed(_logger, ex);
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(250), token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private sealed class Snapshot(long version, Dictionary<string, McpGuardApiKey> keysByHash, HashSet<string> suspended, Dictionary<string, McpGuardToolStatus> tools)
    {
        public static readonly Snapshot Empty = new(-1, new(StringComparer.Ordinal), new(StringComparer.Ordinal), new(StringComparer.Ordinal));

        public long Version { get; } = version;

        public Dictionary<string, McpGuardApiKey> KeysByHash { get; } = keysByHash;

        public HashSet<string> Suspended { get; } = suspended;

        public Dictionary<string, McpGuardToolStatus> Tools { get; } = tools;
    }

    private static partial class Log
    {
        [LoggerMessage(8201, LogLevel.Warning, "The PostgreSQL connection that listens for key and status changes failed; reconnecting (everything is read again then). Keys and statuses are answered from memory meanwhile.", EventName = "PostgreSqlListenFailed")]
        public static partial void ListenFailed(ILogger logger, Exception exception);

        [LoggerMessage(8202, LogLevel.Error, "Could not read API keys and statuses from PostgreSQL at start; tried again until it answers (until then only keys and statuses in configuration apply).", EventName = "PostgreSqlFirstReadFailed")]
        public static partial void FirstReadFailed(ILogger logger, Exception exception);
    }
}

/// <summary>API keys in PostgreSQL, found in memory.</summary>
internal sealed class PostgreSqlApiKeyStore(PostgreSqlDirectory directory, PostgreSqlDatabase database) : IMcpGuardApiKeyStore, IHealthCheck
{
    public ValueTask<McpGuardApiKey?> FindAsync(ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken) =>
        ValueTask.FromResult(directory.FindKey(sha256.Span));

    public ValueTask AddAsync(McpGuardApiKey key, ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken) =>
        directory.AddKeyAsync(key, sha256, cancellationToken);

    public ValueTask<bool> RevokeAsync(string keyId, CancellationToken cancellationToken) => directory.RevokeKeyAsync(keyId, cancellationToken);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        database.CheckHealthAsync(context, cancellationToken);
}

/// <summary>Suspended accounts in PostgreSQL, answered from memory.</summary>
internal sealed class PostgreSqlAccountStatusStore(PostgreSqlDirectory directory, PostgreSqlDatabase database) : IMcpGuardAccountStatusStore, IHealthCheck
{
    public ValueTask<bool> IsSuspendedAsync(string account, CancellationToken cancellationToken) => ValueTask.FromResult(directory.IsSuspended(account));

    public ValueTask SetSuspendedAsync(string account, bool suspended, CancellationToken cancellationToken) =>
        directory.SetSuspendedAsync(account, suspended, cancellationToken);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        database.CheckHealthAsync(context, cancellationToken);
}

/// <summary>Tool status overrides in PostgreSQL, answered from memory.</summary>
internal sealed class PostgreSqlToolStatusStore(PostgreSqlDirectory directory, PostgreSqlDatabase database) : IMcpGuardToolStatusStore, IHealthCheck
{
    public ValueTask<McpGuardToolStatus?> GetStatusAsync(string tool, CancellationToken cancellationToken) => ValueTask.FromResult(directory.ToolStatus(tool));

    public ValueTask SetStatusAsync(string tool, McpGuardToolStatus? status, CancellationToken cancellationToken) =>
        directory.SetToolStatusAsync(tool, status, cancellationToken);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        database.CheckHealthAsync(context, cancellationToken);
}
