using System.Collections.Concurrent;
using System.Globalization;
using McpGuard.Storage;
using Microsoft.Data.Sqlite;

namespace McpGuard.Auth;

/// <summary>Keys in process memory, gone on restart.</summary>
internal class InMemoryApiKeyStore : IMcpGuardApiKeyStore, IDisposable
{
    private readonly ConcurrentDictionary<string, McpGuardApiKey> _byHash = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _hashById = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _writes = new(1, 1);

    public ValueTask<McpGuardApiKey?> FindAsync(ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken) =>
        ValueTask.FromResult(_byHash.TryGetValue(Convert.ToHexString(sha256.Span), out var key) ? key : null);

    public async ValueTask AddAsync(McpGuardApiKey key, ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken)
    {
        var hash = Convert.ToHexString(sha256.Span);
        await _writes.WaitAsync(cancellationToken);
        try
        {
            if (_hashById.ContainsKey(key.Id) || _byHash.ContainsKey(hash))
            {
                throw new InvalidOperationException($"A key with id '{key.Id}' (or the same secret) already exists.");
            }

            await PersistAddAsync(key, sha256, cancellationToken);
            _byHash[hash] = key;
            _hashById[key.Id] = hash;
        }
        finally
        {
            _writes.Release();
        }
    }

    public async ValueTask<bool> RevokeAsync(string keyId, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            if (!_hashById.TryGetValue(keyId, out var hash))
            {
                return false;
            }

            await PersistRevokeAsync(keyId, cancellationToken);
            _byHash[hash] = _byHash[hash].AsRevoked();
            return true;
        }
        finally
        {
            _writes.Release();
        }
    }

    public void Dispose()
    {
        _writes.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Adds a key read back from durable storage.</summary>
    protected void Load(McpGuardApiKey key, byte[] sha256)
    {
        var hash = Convert.ToHexString(sha256);
        _byHash[hash] = key;
        _hashById[key.Id] = hash;
    }

    protected virtual ValueTask PersistAddAsync(McpGuardApiKey key, ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    protected virtual ValueTask PersistRevokeAsync(string keyId, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}

/// <summary>Keys in the <c>api_keys</c> table of McpGuard's SQLite file, read into memory when it opens and written through.</summary>
internal sealed class SqliteApiKeyStore : InMemoryApiKeyStore
{
    private readonly SqliteDatabase _database;
    private readonly TimeProvider _clock;

    public SqliteApiKeyStore(SqliteDatabase database, TimeProvider clock)
    {
        _database = database;
        _clock = clock;
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, hash, account, scopes, expires_at, revoked, max_price FROM api_keys;";
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            Load(
                new McpGuardApiKey(
                    reader.GetString(0),
                    reader.GetString(2),
                    reader.GetString(3).Split(' ', StringSplitOptions.RemoveEmptyEntries),
                    expiresAt: reader.IsDBNull(4) ? null : DateTimeOffset.Parse(reader.GetString(4), CultureInfo.InvariantCulture),
                    revoked: reader.GetInt64(5) != 0,
                    maxPriceMicro: reader.IsDBNull(6) ? null : reader.GetInt64(6)),
                (byte[])reader.GetValue(1));
        }
    }

    protected override async ValueTask PersistAddAsync(McpGuardApiKey key, ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken)
    {
        await using var connection = _database.Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO api_keys (id, hash, account, scopes, expires_at, revoked, created_at, max_price) VALUES ($id, $hash, $account, $scopes, $expires, $revoked, $at, $max);";
        command.Parameters.AddWithValue("$id", key.Id);
        command.Parameters.AddWithValue("$hash", sha256.ToArray());
        command.Parameters.AddWithValue("$account", key.Account);
        command.Parameters.AddWithValue("$scopes", string.Join(' ', key.Scopes));
        command.Parameters.AddWithValue("$expires", key.ExpiresAt is { } expires ? SqliteText.Format(expires) : DBNull.Value);
        command.Parameters.AddWithValue("$revoked", key.Revoked ? 1 : 0);
        command.Parameters.AddWithValue("$max", key.MaxPriceMicro is { } max ? max : DBNull.Value);
        command.Parameters.AddWithValue("$at", SqliteText.Format(_clock.GetUtcNow()));
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode == 19)
        {
            throw new InvalidOperationException($"A key with id '{key.Id}' (or the same secret) already exists.", ex);
        }
    }

    protected override async ValueTask PersistRevokeAsync(string keyId, CancellationToken cancellationToken)
    {
        await using var connection = _database.Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "UPDATE api_keys SET revoked = 1 WHERE id = $id;";
        command.Parameters.AddWithValue("$id", keyId);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
