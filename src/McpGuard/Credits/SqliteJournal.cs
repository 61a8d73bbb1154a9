using System.Globalization;
using System.Threading.Channels;
using System.Text;
using Microsoft.Data.Sqlite;
using McpGuard.Storage;
using SQLitePCL;

namespace McpGuard.Credits;

/// <summary>
/// The SQLite journal: a WAL database where a change is committed before its caller is answered. With
/// <c>synchronous=NORMAL</c> (the default) a commit survives the process being killed; with <c>FULL</c> it is
/// fsynced and survives power loss too. One writer drains a queue and commits whatever has accumulated in a
/// single transaction (group commit): concurrent callers share one commit (and one fsync) instead of paying one each.
/// </summary>
internal sealed class SqliteJournal : LedgerJournal
{
    private const int MaxBatch = 1024;

    private readonly SqliteDatabase _database;
    private readonly SqliteConnection _writer;
    private readonly Channel<(JournalWrite Write, TaskCompletionSource Done)> _queue =
        Channel.CreateUnbounded<(JournalWrite, TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _writerLoop;

    public SqliteJournal(SqliteDatabase database, McpGuardLedgerDurability durability = McpGuardLedgerDurability.ProcessCrash)
    {
        _database = database;
        _writer = database.Open(durability == McpGuardLedgerDurability.PowerLoss ? "FULL" : "NORMAL");
        _writerLoop = Task.Run(WriteLoopAsync);
    }

    public override LedgerSnapshot Load()
    {
        // Its own connection: the writer loop is already preparing its statements on _writer, and a SqliteConnection
        // used from two threads at once corrupts its command list (seen as a NullReferenceException when it closes).
        using var connection = _database.Open();
        var entries = new List<McpGuardLedgerEntry>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT id, account, kind, amount, balance_after, tool, request_id, free, note, created_at FROM ledger ORDER BY id;";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                entries.Add(ReadEntry(reader));
            }
        }

        var accounts = new List<(string, long?)>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT id, monthly_cap FROM accounts;";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                accounts.Add((reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetInt64(1)));
            }
        }

        return new LedgerSnapshot(entries, accounts);
    }

    public override Task AppendAsync(JournalWrite write)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite((write, done)))
        {
            done.SetException(new ObjectDisposedException(nameof(SqliteJournal)));
        }

        return done.Task;
    }

    public override async ValueTask<IReadOnlyList<McpGuardLedgerEntry>> ReadAsync(string account, long? before, int limit, CancellationToken cancellationToken)
    {
        await using var connection = _database.Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, account, kind, amount, balance_after, tool, request_id, free, note, created_at FROM ledger WHERE account = $account AND id < $before ORDER BY id DESC LIMIT $limit;";
        command.Parameters.AddWithValue("$account", account);
        command.Parameters.AddWithValue("$before", before ?? long.MaxValue);
        command.Parameters.AddWithValue("$limit", limit);
        var rows = new List<McpGuardLedgerEntry>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(ReadEntry(reader));
        }

        return rows;
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<(JournalWrite Write, TaskCompletionSource Done)>(MaxBatch);
        using var insertEntry = new LedgerRowInsert(_writer);
        using var upsertAccount = Prepare("INSERT INTO accounts (id, monthly_cap, created_at) VALUES ($id, $cap, $at) ON CONFLICT (id) DO UPDATE SET monthly_cap = excluded.monthly_cap;",
            "$id", "$cap", "$at");

        while (await _queue.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            try
            {
                using var transaction = _writer.BeginTransaction();
                upsertAccount.Transaction = transaction;

                foreach (var (write, _) in batch)
                {
                    if (write.Account is { } account)
                    {
                        Run(upsertAccount, account.Id, account.Cap, SqliteText.Format(account.Now));
                    }

                    if (write.Entry is { } e)
                    {
                        insertEntry.Run(e);
                    }
                }

                transaction.Commit();
                foreach (var (_, done) in batch)
                {
                    done.SetResult();
                }
            }
            catch (Exception ex)
            {
                // The in-memory state is ahead of the disk now: fail this batch and everything after it.
                _queue.Writer.TryComplete(ex);
                foreach (var (_, done) in batch)
                {
                    done.SetException(ex);
                }

                while (_queue.Reader.TryRead(out var rest))
                {
                    rest.Done.SetException(ex);
                }

                return;
            }
        }
    }

    public override async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        try
        {
            await _writerLoop;
        }
        finally
        {
            await _writer.DisposeAsync();
            await base.DisposeAsync();
        }
    }

    /// <summary>
    /// The ledger row insert, the one statement every charge and refund runs: prepared once and driven through
    /// SQLite's own API (bind, step, reset), which skips what <see cref="SqliteCommand.ExecuteNonQuery"/> does per call
    /// (a data reader, a statement enumerator, a boxed value and a type lookup per parameter). Text is bound from
    /// UTF-8 encoded on the stack; the row is the same as the command wrote (a test reads it back column by column).
    /// Runs on the writer's connection, inside its open transaction.
    /// </summary>
    private sealed class LedgerRowInsert : IDisposable
    {
        private const string Sql = "INSERT INTO ledger (id, account, kind, amount, balance_after, tool, request_id, free, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10);";

        private readonly sqlite3 _db;
        private readonly sqlite3_stmt _statement;

        public LedgerRowInsert(SqliteConnection connection)
        {
            _db = connection.Handle!;
            SqliteException.ThrowExceptionForRC(raw.sqlite3_prepare_v2(_db, Sql, out _statement), _db);
        }

        public void Run(McpGuardLedgerEntry entry)
        {
            Span<byte> timestamp = stackalloc byte[32];
            if (!entry.Timestamp.UtcDateTime.TryFormat(timestamp, out var length, SqliteText.TimestampFormat, CultureInfo.InvariantCulture))
            {
                throw new InvalidOperationException("A ledger timestamp did not fit its buffer.");
            }

            Check(raw.sqlite3_bind_int64(_statement, 1, entry.Id));
            BindText(2, entry.Account);
            BindText(3, entry.Kind.ToString()); // the enum's cached name
            Check(raw.sqlite3_bind_int64(_statement, 4, entry.AmountMicro));
            Check(raw.sqlite3_bind_int64(_statement, 5, entry.BalanceAfterMicro));
            BindText(6, entry.Tool);
            BindText(7, entry.RequestId);
            Check(raw.sqlite3_bind_int64(_statement, 8, entry.Free ? 1 : 0));
            BindText(9, entry.Note);
            Check(raw.sqlite3_bind_text(_statement, 10, timestamp[..length]));

            var step = raw.sqlite3_step(_statement);
            raw.sqlite3_reset(_statement);
            if (step != raw.SQLITE_DONE)
            {
                SqliteException.ThrowExceptionForRC(step, _db);
                throw new InvalidOperationException($"Inserting a ledger row returned {step}.");
            }
        }

        public void Dispose() => _statement.Dispose();

        private void BindText(int index, string? value)
        {
            if (value is null)
            {
                Check(raw.sqlite3_bind_null(_statement, index));
                return;
            }

            const int StackLimit = 512;
            var byteCount = Encoding.UTF8.GetMaxByteCount(value.Length);
            Span<byte> bytes = byteCount <= StackLimit ? stackalloc byte[StackLimit] : new byte[byteCount];
            var length = Encoding.UTF8.GetBytes(value, bytes);
            Check(raw.sqlite3_bind_text(_statement, index, bytes[..length])); // SQLite copies the text (SQLITE_TRANSIENT)
        }

        private void Check(int rc) => SqliteException.ThrowExceptionForRC(rc, _db);
    }

    private SqliteCommand Prepare(string sql, params string[] parameters)
    {
        var command = _writer.CreateCommand();
        command.CommandText = sql;
        foreach (var name in parameters)
        {
            command.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        command.Prepare();
        return command;
    }

    private static void Run(SqliteCommand command, params object?[] values)
    {
        for (var i = 0; i < values.Length; i++)
        {
            command.Parameters[i].Value = values[i] ?? DBNull.Value;
        }

        command.ExecuteNonQuery();
    }

    private static McpGuardLedgerEntry ReadEntry(SqliteDataReader reader) => new(
        reader.GetInt64(0),
        reader.GetString(1),
        Enum.Parse<McpGuardLedgerEntryKind>(reader.GetString(2)),
        reader.GetInt64(3),
        reader.GetInt64(4),
        reader.IsDBNull(5) ? null : reader.GetString(5),
        reader.IsDBNull(6) ? null : reader.GetString(6),
        DateTimeOffset.Parse(reader.GetString(9), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal),
        reader.GetInt64(7) != 0,
        reader.IsDBNull(8) ? null : reader.GetString(8));

}
