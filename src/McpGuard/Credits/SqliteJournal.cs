using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;
using McpGuard.Storage;
using SQLitePCL;

namespace McpGuard.Credits;

/// <summary>
/// The SQLite journal: a WAL database where a change is committed before its caller is answered. With
/// <c>synchronous=NORMAL</c> (the default) a commit survives the process being killed; with <c>FULL</c> it is
/// fsynced and survives power loss too. Changes queue in the engine's order; one commit at a time, on a thread-pool
/// work item, writes whatever has accumulated in a single transaction (group commit): concurrent callers share one
/// commit (and one fsync) instead of paying one each. The turn to commit is a flag, not a loop parked on a channel:
/// nothing waits between commits, and a commit that ends with more queued hands the turn to the next work item.
/// </summary>
internal sealed class SqliteJournal : LedgerJournal, IThreadPoolWorkItem
{
    private readonly SqliteDatabase _database;
    private readonly SqliteConnection _writer;
    private readonly RawStatement _begin;
    private readonly RawStatement _commit;
    private readonly LedgerRowInsert _insertEntry;
    private readonly SqliteCommand _upsertAccount;
    private readonly Lock _queueLock = new();
    private List<(JournalWrite Write, TaskCompletionSource Done)> _queue = [];
    private List<(JournalWrite Write, TaskCompletionSource Done)> _spare = [];

    /// <summary>1 while a thread commits (or the journal is closed): at most one commit at a time, in queue order.</summary>
    private int _committing;
    private Exception? _failed;
    private bool _closed;

    public SqliteJournal(SqliteDatabase database, McpGuardLedgerDurability durability = McpGuardLedgerDurability.ProcessCrash)
    {
        _database = database;
        _writer = database.Open(durability == McpGuardLedgerDurability.PowerLoss ? "FULL" : "NORMAL");
        _begin = new RawStatement(_writer, "BEGIN IMMEDIATE;");
        _commit = new RawStatement(_writer, "COMMIT;");
        _insertEntry = new LedgerRowInsert(_writer);
        _upsertAccount = Prepare("INSERT INTO accounts (id, monthly_cap, created_at) VALUES ($id, $cap, $at) ON CONFLICT (id) DO UPDATE SET monthly_cap = excluded.monthly_cap;",
            "$id", "$cap", "$at");
    }

    public override LedgerSnapshot Load()
    {
        // Its own connection: the writer's connection belongs to whoever commits.
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
        lock (_queueLock)
        {
            if (_failed is null && !_closed)
            {
                _queue.Add((write, done));
                return done.Task;
            }
        }

        done.SetException(_failed ?? new ObjectDisposedException(nameof(SqliteJournal)));
        return done.Task;
    }

    public override void Flush()
    {
        // The caller's own append is visible to it; an empty queue means a running commit already took it.
        if (Volatile.Read(ref _queue).Count > 0 && Interlocked.CompareExchange(ref _committing, 1, 0) == 0)
        {
            // Nobody is committing: the commit runs on the pool, after the work already queued there.
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }

        // Otherwise a commit is running; the queue is checked again when it ends, so what was queued is committed next.
    }

    /// <summary>The commit, on a thread-pool thread: one transaction for everything queued, then the next turn if more came meanwhile.</summary>
    void IThreadPoolWorkItem.Execute()
    {
        CommitQueued();
        Release();
    }

    /// <summary>Ends this thread's turn; when more was queued meanwhile (and nobody took the turn), its commit is handed to the pool.</summary>
    private void Release()
    {
        Interlocked.Exchange(ref _committing, 0);
        bool more;
        lock (_queueLock)
        {
            more = _queue.Count > 0;
        }

        if (more && Interlocked.CompareExchange(ref _committing, 1, 0) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    /// <summary>Commits everything queued in one transaction, then tells the callers. Only the thread holding the turn calls it.</summary>
    private void CommitQueued()
    {
        List<(JournalWrite Write, TaskCompletionSource Done)> batch;
        lock (_queueLock)
        {
            if (_queue.Count == 0 || _failed is not null)
            {
                return;
            }

            batch = _queue;
            _queue = _spare;
        }

        try
        {
            _begin.Run();
            foreach (var (write, _) in batch)
            {
                if (write.Account is { } account)
                {
                    Run(_upsertAccount, account.Id, account.Cap, SqliteText.Format(account.Now));
                }

                if (write.Entry is { } e)
                {
                    _insertEntry.Run(e);
                }
            }

            _commit.Run();
        }
        catch (Exception ex)
        {
            // The in-memory state is ahead of the disk now: fail this batch and everything after it.
            RollBackQuietly();
            List<(JournalWrite Write, TaskCompletionSource Done)> rest;
            lock (_queueLock)
            {
                _failed = ex;
                rest = _queue;
                _queue = [];
            }

            OnFailed?.Invoke(ex);
            foreach (var (_, done) in batch)
            {
                done.SetException(ex);
            }

            foreach (var (_, done) in rest)
            {
                done.SetException(ex);
            }

            return;
        }

        foreach (var (_, done) in batch)
        {
            done.SetResult(); // continuations run on the pool, never on the committing thread
        }

        batch.Clear();
        _spare = batch;
    }

    private void RollBackQuietly()
    {
        if (raw.sqlite3_get_autocommit(_writer.Handle) == 0)
        {
            _ = raw.sqlite3_exec(_writer.Handle, "ROLLBACK;");
        }
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

    public override async ValueTask DisposeAsync()
    {
        lock (_queueLock)
        {
            _closed = true;
        }

        // Take the turn for good (waiting for a running commit to end), then commit what was queued before closing.
        while (Interlocked.CompareExchange(ref _committing, 1, 0) != 0)
        {
            await Task.Delay(1);
        }

        try
        {
            CommitQueued();
        }
        finally
        {
            _insertEntry.Dispose();
            _begin.Dispose();
            _commit.Dispose();
            await _upsertAccount.DisposeAsync();
            await _writer.DisposeAsync();
            await base.DisposeAsync();
        }
    }

    /// <summary>A statement without parameters (<c>BEGIN</c>, <c>COMMIT</c>) prepared once and stepped on SQLite's own API.</summary>
    private sealed class RawStatement : IDisposable
    {
        private readonly sqlite3 _db;
        private readonly sqlite3_stmt _statement;

        public RawStatement(SqliteConnection connection, string sql)
        {
            _db = connection.Handle!;
            SqliteException.ThrowExceptionForRC(raw.sqlite3_prepare_v2(_db, sql, out _statement), _db);
        }

        public void Run()
        {
            var step = raw.sqlite3_step(_statement);
            raw.sqlite3_reset(_statement);
            if (step != raw.SQLITE_DONE)
            {
                SqliteException.ThrowExceptionForRC(step, _db);
                throw new InvalidOperationException($"A journal statement returned {step}.");
            }
        }

        public void Dispose() => _statement.Dispose();
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
