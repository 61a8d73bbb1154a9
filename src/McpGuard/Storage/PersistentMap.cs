using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;

namespace McpGuard.Storage;

/// <summary>
/// A small string-keyed map that every request reads and only an operator writes: held in memory for the reads, and,
/// when it is backed by a table of McpGuard's SQLite file, written through to it (one statement per change, under one
/// write lock) before memory changes. Loaded whole when the store opens.
/// </summary>
internal sealed class PersistentMap<TValue> : IDisposable
    where TValue : struct
{
    private readonly ConcurrentDictionary<string, TValue> _values = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _writes = new(1, 1);
    private readonly SqliteDatabase? _database;
    private readonly string? _upsert;
    private readonly string? _delete;
    private readonly Func<TValue, object>? _toColumn;

    /// <summary>In memory only.</summary>
    public PersistentMap()
    {
    }

    /// <summary>
    /// Backed by a table: <paramref name="select"/> reads (key, value) rows; <paramref name="upsert"/> takes <c>$key</c> and
    /// <c>$value</c>; <paramref name="delete"/> takes <c>$key</c>.
    /// </summary>
    public PersistentMap(SqliteDatabase database, string select, string upsert, string delete, Func<SqliteDataReader, TValue> fromColumn, Func<TValue, object> toColumn)
    {
        _database = database;
        _upsert = upsert;
        _delete = delete;
        _toColumn = toColumn;
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = select;
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            _values[reader.GetString(0)] = fromColumn(reader);
        }
    }

    public void Dispose() => _writes.Dispose();

    public TValue? Get(string key) => _values.TryGetValue(key, out var value) ? value : null;

    /// <summary>Sets the key's value, or removes it when <paramref name="value"/> is null.</summary>
    public async ValueTask SetAsync(string key, TValue? value, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            if (_database is not null)
            {
                await using var connection = _database.Open();
                await using var command = connection.CreateCommand();
                command.CommandText = value is null ? _delete : _upsert;
                command.Parameters.AddWithValue("$key", key);
                if (value is { } set)
                {
                    command.Parameters.AddWithValue("$value", _toColumn!(set));
                }

                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            if (value is { } newValue)
            {
                _values[key] = newValue;
            }
            else
            {
                _values.TryRemove(key, out _);
            }
        }
        finally
        {
            _writes.Release();
        }
    }
}
