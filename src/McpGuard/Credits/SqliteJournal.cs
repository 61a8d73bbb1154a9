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
    private readonly SqliteCommand _updateTotals;
    private readonly SqliteCommand _rollUp;
    private readonly SqliteCommand _deleteRolledUp;
    private readonly SqliteCommand _checkpoint;
    private readonly SqliteCommand _insertHold;
    private readonly SqliteCommand _deleteHold;
    private readonly int _checkpointEvery;

    /// <summary>Each account's totals after its last row since the last checkpoint: what the next checkpoint writes.</summary>
    private readonly Dictionary<string, AccountTotals> _dirty = new(StringComparer.Ordinal);
    private long _lastEntryId;
    private long _rowsSinceCheckpoint;
    private readonly System.Collections.Concurrent.ConcurrentBag<SqliteCommand> _lookups = [];
    private long _committed;
    private readonly Lock _queueLock = new();
    private List<(JournalWrite Write, TaskCompletionSource Done)> _queue = [];
    private List<(JournalWrite Write, TaskCompletionSource Done)> _spare = [];

    /// <summary>1 while a thread commits (or the journal is closed): at most one commit at a time, in queue order.</summary>
    private int _committing;
    private Exception? _failed;
    private bool _closed;

    /// <summary>Rows between checkpoints by default: a start reads at most this many rows, whatever the history.</summary>
    internal const int DefaultCheckpointEvery = 4_096;

    /// <summary>The rows a roll-up turns into daily totals (a metered call's reservation, release and capture with them); top-ups and adjustments stay rows.</summary>
    private const string RolledUpKinds = "('Usage', 'Refund', 'Reservation', 'Release', 'Capture')";

    public SqliteJournal(SqliteDatabase database, McpGuardLedgerDurability durability = McpGuardLedgerDurability.ProcessCrash, int checkpointEvery = DefaultCheckpointEvery)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(checkpointEvery, 1);
        _checkpointEvery = checkpointEvery;
        _database = database;
        _writer = database.Open(durability == McpGuardLedgerDurability.PowerLoss ? "FULL" : "NORMAL");
        _begin = new RawStatement(_writer, "BEGIN IMMEDIATE;");
        _commit = new RawStatement(_writer, "COMMIT;");
        _insertEntry = new LedgerRowInsert(_writer);
        _upsertAccount = Prepare("INSERT INTO accounts (id, monthly_cap, created_at) VALUES ($id, $cap, $at) ON CONFLICT (id) DO UPDATE SET monthly_cap = excluded.monthly_cap;",
            "$id", "$cap", "$at");
        _updateTotals = Prepare("UPDATE accounts SET balance = $balance, month = $month, month_spent = $spent, month_free = $free WHERE id = $id;",
            "$balance", "$month", "$spent", "$free", "$id");
        _checkpoint = Prepare("UPDATE ledger_checkpoint SET last_id = $last WHERE id = 1;", "$last");
        _insertHold = Prepare("INSERT INTO ledger_holds (request_id, account, tool, amount, created_at) VALUES ($id, $account, $tool, $amount, $at);",
            "$id", "$account", "$tool", "$amount", "$at");
        _deleteHold = Prepare("DELETE FROM ledger_holds WHERE request_id = $id;", "$id");

        // Usage and refund rows (and a metered call's reservation, release and capture) in an id range become daily totals
        // (top-ups and adjustments stay rows), then go.
        _rollUp = Prepare($$"""
            INSERT INTO ledger_daily (account, day, tool, kind, free, rows, amount, last_id)
            SELECT account, substr(created_at, 1, 10), COALESCE(tool, ''), kind, free, COUNT(*), SUM(amount), MAX(id)
            FROM ledger WHERE id BETWEEN $from AND $to AND kind IN {{RolledUpKinds}}
            GROUP BY account, substr(created_at, 1, 10), COALESCE(tool, ''), kind, free
            ON CONFLICT (account, day, tool, kind, free)
            DO UPDATE SET rows = rows + excluded.rows, amount = amount + excluded.amount, last_id = max(last_id, excluded.last_id);
            """, "$from", "$to");
        _deleteRolledUp = Prepare($"DELETE FROM ledger WHERE id BETWEEN $from AND $to AND kind IN {RolledUpKinds};", "$from", "$to");
    }

    public override long Committed => Volatile.Read(ref _committed);

    public override LedgerSnapshot Load()
    {
        // Its own connection: the writer's connection belongs to whoever commits. The accounts carry their totals as of
        // the checkpoint, so the only rows read are those written after it: at most one checkpoint interval's worth.
        using var connection = _database.Open();
        var accounts = new List<StoredAccount>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT id, monthly_cap, created_at, balance, month, month_spent, month_free FROM accounts;";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                accounts.Add(new StoredAccount(
                    reader.GetString(0),
                    reader.IsDBNull(1) ? null : reader.GetInt64(1),
                    DateTimeOffset.Parse(reader.GetString(2), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal),
                    new AccountTotals(reader.GetInt64(3), reader.GetInt32(4), reader.GetInt64(5), reader.GetInt32(6))));
            }
        }

        var tail = new List<McpGuardLedgerEntry>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT id, account, kind, amount, balance_after, tool, request_id, free, note, created_at FROM ledger WHERE id > (SELECT last_id FROM ledger_checkpoint) ORDER BY id;";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                tail.Add(ReadEntry(reader));
            }
        }

        long lastId;
        using (var command = connection.CreateCommand())
        {
            // Ids are never reused, even when the newest rows were rolled up.
            command.CommandText = "SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM ledger), (SELECT last_id FROM ledger_checkpoint), (SELECT COALESCE(MAX(last_id), 0) FROM ledger_daily));";
            lastId = Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
        }

        var holds = new List<StoredHold>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT request_id, account, tool, amount, created_at FROM ledger_holds;";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                holds.Add(new StoredHold(reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetInt64(3),
                    DateTimeOffset.Parse(reader.GetString(4), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal)));
            }
        }

        // The rows of the tail stay to be checkpointed, with the totals the engine will have after applying them.
        _lastEntryId = lastId;
        _rowsSinceCheckpoint = tail.Count;
        return new LedgerSnapshot(accounts, tail, lastId) { Holds = holds };
    }

    public override void Recovered(IReadOnlyDictionary<string, AccountTotals> totals)
    {
        foreach (var (id, each) in totals)
        {
            _dirty[id] = each;
        }
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

    /// <summary>Where commit times, batch sizes and failures are counted; null for none.</summary>
    public McpGuard.Telemetry.McpGuardTelemetry? Telemetry { get; init; }

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

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            _begin.Run();
            foreach (var (write, _) in batch)
            {
                if (write.Account is { } account)
                {
                    Run(_upsertAccount, account.Id, account.Cap, SqliteText.Format(account.Now));
                }

                if (write.Preceding is { } preceding)
                {
                    Insert(preceding);
                }

                if (write.Entry is { } e)
                {
                    Insert(e);
                    _dirty[e.Account] = write.Totals;
                }

                if (write.RollUp is { } rollUp)
                {
                    RollUp(rollUp);
                }
            }

            if (_rowsSinceCheckpoint >= _checkpointEvery)
            {
                WriteCheckpoint();
            }

            _commit.Run();
        }
        catch (Exception ex)
        {
            // The in-memory state is ahead of the disk now: fail this batch and everything after it (no checkpoint is
            // written from here on, so the totals on disk stay those of the last commit that held one).
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

            Telemetry?.StoreFailed("ledger", "commit");
            return;
        }

        var seconds = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
        var size = batch.Count;
        Volatile.Write(ref _committed, _committed + batch.Count);
        foreach (var (write, done) in batch)
        {
            // Continuations run on the pool, never on the committing thread.
            if (write.RollUp?.Error is { } error)
            {
                done.SetException(error);
            }
            else
            {
                done.SetResult();
            }
        }

        batch.Clear();
        _spare = batch;
        Telemetry?.LedgerCommitted(size, seconds);
    }

    /// <summary>Inside the open transaction: one ledger row, and the hold a reservation places or a release ends.</summary>
    private void Insert(McpGuardLedgerEntry entry)
    {
        _insertEntry.Run(entry);
        if (entry.Kind == McpGuardLedgerEntryKind.Reservation)
        {
            Run(_insertHold, entry.RequestId, entry.Account, entry.Tool, -entry.AmountMicro, SqliteText.Format(entry.Timestamp));
        }
        else if (entry.Kind == McpGuardLedgerEntryKind.Release)
        {
            Run(_deleteHold, entry.RequestId);
        }

        _lastEntryId = entry.Id;
        _rowsSinceCheckpoint++;
    }

    /// <summary>
    /// Rolls a range of rows up inside a savepoint of the open transaction, and says on it how many rows went: a roll-up
    /// that fails is undone alone, its error kept for whoever asked for it, and the changes committed with it stand.
    /// </summary>
    private void RollUp(LedgerRollUp rollUp)
    {
        // Rows after the checkpoint are what a start applies on top of the totals: a checkpoint first, so none of the
        // rows rolled up (all written before this commit) is one of those.
        if (_rowsSinceCheckpoint > 0 || _dirty.Count > 0)
        {
            WriteCheckpoint();
        }

        SqliteDatabase.Execute(_writer, "SAVEPOINT roll_up;");
        try
        {
            Run(_rollUp, rollUp.FromId, rollUp.ToId);
            rollUp.Rows = Run(_deleteRolledUp, rollUp.FromId, rollUp.ToId);
            SqliteDatabase.Execute(_writer, "RELEASE roll_up;");
        }
        catch (SqliteException ex)
        {
            SqliteDatabase.Execute(_writer, "ROLLBACK TO roll_up; RELEASE roll_up;");
            rollUp.Rows = 0;
            rollUp.Error = ex;
        }
    }

    /// <summary>
    /// Inside the open transaction: every account changed since the last checkpoint gets its totals as they stand after
    /// its last row, and the checkpoint moves to the last row. Once per <see cref="DefaultCheckpointEvery"/> rows, so the
    /// rows' commits do not also write the accounts' page each time.
    /// </summary>
    private void WriteCheckpoint()
    {
        foreach (var (id, totals) in _dirty)
        {
            Run(_updateTotals, totals.Balance, totals.Month, totals.MonthSpent, totals.MonthFree, id);
        }

        Run(_checkpoint, _lastEntryId);
        _dirty.Clear();
        _rowsSinceCheckpoint = 0;
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

    public override async ValueTask<IReadOnlyList<McpGuardLedgerTotal>> TotalsAsync(DateTimeOffset from, DateTimeOffset to, TimeSpan bucket, CancellationToken cancellationToken)
    {
        await using var connection = _database.Open();

        // No index on the time (it would cost every charge an insert more): rows are in time order to within the slack,
        // so the rows before the window are found by halving the id range, and only the rows after them are read and grouped.
        if (await ScalarAsync(connection, "SELECT MIN(id) FROM ledger;", cancellationToken) is not long low
            || await ScalarAsync(connection, "SELECT MAX(id) FROM ledger;", cancellationToken) is not long high)
        {
            return [];
        }

        var before = await LastRowBeforeAsync(connection, low, high, from - LedgerTotals.TimeOrderSlack, cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT (CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) - $from) / $bucket, account, tool, kind, free, COUNT(*), SUM(amount)
            FROM ledger WHERE id > $before AND created_at >= $fromText AND created_at < $toText
            GROUP BY 1, account, tool, kind, free;
            """;
        command.Parameters.AddWithValue("$from", from.ToUnixTimeSeconds());
        command.Parameters.AddWithValue("$bucket", (long)bucket.TotalSeconds);
        command.Parameters.AddWithValue("$before", before);
        command.Parameters.AddWithValue("$fromText", SqliteText.Format(from));
        command.Parameters.AddWithValue("$toText", SqliteText.Format(to));
        var totals = new List<McpGuardLedgerTotal>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            totals.Add(new McpGuardLedgerTotal(
                from + TimeSpan.FromTicks(bucket.Ticks * reader.GetInt64(0)),
                reader.GetString(1),
                reader.IsDBNull(2) ? null : reader.GetString(2),
                Enum.Parse<McpGuardLedgerEntryKind>(reader.GetString(3)),
                reader.GetInt64(4) != 0,
                reader.GetInt64(5),
                reader.GetInt64(6)));
        }

        return totals;
    }

    /// <summary>
    /// The id of the last row written before <paramref name="cutoff"/> among the ids from <paramref name="low"/> to
    /// <paramref name="high"/>, <paramref name="low"/> − 1 when there is none. Rows are written in time order, so it is found
    /// by halving the id range, each step one look-up on the row id: no scan, however long the history.
    /// </summary>
    private static async Task<long> LastRowBeforeAsync(SqliteConnection connection, long low, long high, DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        var before = SqliteText.Format(cutoff);
        var found = low - 1;
        while (low <= high)
        {
            var middle = low + ((high - low) / 2);
            var row = await RowAtOrAfterAsync(connection, middle, cancellationToken);
            if (row is { } r && string.CompareOrdinal(r.CreatedAt, before) < 0)
            {
                found = r.Id;
                low = r.Id + 1;
            }
            else
            {
                high = middle - 1;
            }
        }

        return found;
    }

    public override StoredCharge? FindCharge(string requestId)
    {
        // Safe from any thread: each look-up takes a prepared statement on a reader connection of its own from a pool
        // (one per concurrent look-up, kept for the next), so look-ups run beside each other and beside commits (WAL).
        if (!_lookups.TryTake(out var lookup))
        {
            var connection = _database.Open();
            lookup = connection.CreateCommand();
            lookup.CommandText = "SELECT account, tool, amount, free, created_at, kind FROM ledger WHERE request_id = $id;";
            lookup.Parameters.Add(new SqliteParameter { ParameterName = "$id" });
            lookup.Prepare();
        }

        try
        {
            lookup.Parameters[0].Value = requestId;
            var rows = new List<(McpGuardLedgerEntryKind, StoredCharge)>(2);
            using (var reader = lookup.ExecuteReader())
            {
                while (reader.Read())
                {
                    rows.Add((Enum.Parse<McpGuardLedgerEntryKind>(reader.GetString(5)), new StoredCharge(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), Math.Abs(reader.GetInt64(2)), reader.GetInt64(3) != 0,
                        DateTimeOffset.Parse(reader.GetString(4), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal), Refunded: false)));
                }
            }

            return StoredCharge.Of(rows);
        }
        finally
        {
            _lookups.Add(lookup);
        }
    }

    public override ValueTask<IReadOnlyDictionary<string, LedgerSums>> SumAsync(long lastId, CancellationToken cancellationToken) =>
        // SQLite's reads are synchronous and this one reads every row (seconds on millions): a thread of its own, so the
        // thread pool's workers go on serving requests and committing charges meanwhile.
        new(Task.Factory.StartNew<IReadOnlyDictionary<string, LedgerSums>>(() => Sum(lastId, cancellationToken), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default));

    private Dictionary<string, LedgerSums> Sum(long lastId, CancellationToken cancellationToken)
    {
        using var connection = _database.Open();

        // One read transaction (deferred: a snapshot, never the write lock, so commits go on while it reads): the rows and
        // the daily totals as of one commit, whatever a roll-up does meanwhile.
        using var transaction = connection.BeginTransaction(deferred: true);
        var kinds = new Dictionary<string, long[]>(StringComparer.Ordinal); // top-ups, usage, refunds, adjustments, rows
        void Add(string sql)
        {
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = sql;
            command.Parameters.AddWithValue("$last", lastId);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                cancellationToken.ThrowIfCancellationRequested();
                var account = reader.GetString(0);
                if (!kinds.TryGetValue(account, out var sums))
                {
                    kinds[account] = sums = new long[5];
                }

                var slot = Enum.Parse<McpGuardLedgerEntryKind>(reader.GetString(1)) switch
                {
                    McpGuardLedgerEntryKind.TopUp => 0,
                    var kind when LedgerSums.IsUsage(kind) => 1,
                    McpGuardLedgerEntryKind.Refund => 2,
                    _ => 3,
                };
                sums[slot] += reader.GetInt64(2);
                sums[4] += reader.GetInt64(3);
            }
        }

        Add("SELECT account, kind, SUM(amount), COUNT(*) FROM ledger WHERE id <= $last GROUP BY account, kind;");
        Add("SELECT account, kind, SUM(amount), SUM(rows) FROM ledger_daily GROUP BY account, kind;");

        // Each account's last row says its balance after it, unless rows after it were rolled up (their ids are gone).
        var last = new Dictionary<string, long>(StringComparer.Ordinal);
        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = """
                SELECT l.account, l.balance_after FROM ledger l
                WHERE l.id IN (SELECT MAX(id) FROM ledger WHERE id <= $last GROUP BY account)
                AND l.id > COALESCE((SELECT MAX(d.last_id) FROM ledger_daily d WHERE d.account = l.account), 0);
                """;
            command.Parameters.AddWithValue("$last", lastId);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                last[reader.GetString(0)] = reader.GetInt64(1);
            }
        }

        return kinds.ToDictionary(
            k => k.Key,
            k => new LedgerSums(k.Value[0], k.Value[1], k.Value[2], k.Value[3], k.Value[4], last.TryGetValue(k.Key, out var after) ? after : null),
            StringComparer.Ordinal);
    }

    public override async ValueTask<(long From, long To)?> FindRowsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        await using var connection = _database.Open();

        // The oldest usage or refund row (rolled-up rows are gone, so this passes over kept top-ups only).
        if (await ScalarAsync(connection, $"SELECT id FROM ledger WHERE kind IN {RolledUpKinds} ORDER BY id LIMIT 1;", cancellationToken) is not long from
            || await ScalarAsync(connection, "SELECT MAX(id) FROM ledger;", cancellationToken) is not long last)
        {
            return null;
        }

        var found = await LastRowBeforeAsync(connection, from, last, cutoff, cancellationToken);
        return found < from ? null : (from, found);
    }

    private static async Task<(long Id, string CreatedAt)?> RowAtOrAfterAsync(SqliteConnection connection, long id, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, created_at FROM ledger WHERE id >= $id ORDER BY id LIMIT 1;";
        command.Parameters.AddWithValue("$id", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? (reader.GetInt64(0), reader.GetString(1)) : null;
    }

    private static async Task<object?> ScalarAsync(SqliteConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is DBNull ? null : value;
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
            if (_failed is null && _dirty.Count > 0)
            {
                // A clean stop leaves no rows after the checkpoint: the next start reads the accounts alone.
                _begin.Run();
                WriteCheckpoint();
                _commit.Run();
            }
        }
        finally
        {
            _insertEntry.Dispose();
            _begin.Dispose();
            _commit.Dispose();
            await _upsertAccount.DisposeAsync();
            await _updateTotals.DisposeAsync();
            await _checkpoint.DisposeAsync();
            await _rollUp.DisposeAsync();
            await _deleteRolledUp.DisposeAsync();
            while (_lookups.TryTake(out var lookup))
            {
                var connection = lookup.Connection!;
                await lookup.DisposeAsync();
                await connection.DisposeAsync();
            }

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

    private static int Run(SqliteCommand command, params object?[] values)
    {
        for (var i = 0; i < values.Length; i++)
        {
            command.Parameters[i].Value = values[i] ?? DBNull.Value;
        }

        return command.ExecuteNonQuery();
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
