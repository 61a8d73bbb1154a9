using System.Threading.Channels;
using McpGuard.Credits;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace McpGuard.PostgreSql;

/// <summary>
/// The ledger in PostgreSQL, shared by every instance. Charges, reservations, captures and refunds wait in a queue; a
/// writer takes everything queued (up to <see cref="MaxBatch"/>) and applies it with one call of <c>apply_batch</c>: one
/// round trip, one commit (group commit), the accounts locked in one order so batches of several instances never
/// deadlock. Each caller is answered once that commit is durable. Request ids are charged and refunded at most once by
/// unique indexes (a reservation's by the primary key of <c>reservations</c>, where its hold stands until it is captured
/// or released, at most once, by a conditional update), a balance never goes below zero by a check constraint, and a
/// month's spend and free calls live in the account's row.
/// </summary>
internal sealed partial class PostgreSqlLedgerStore : IMcpGuardLedgerStore, ILedgerTotals, IAttemptRefunds, IHealthCheck, IAsyncDisposable
{
    /// <summary>The most operations one commit carries.</summary>
    internal const int MaxBatch = 256;

    private const short ChargeKind = 0, RefundKind = 1, AttemptRefundKind = 2, ReserveKind = 3, CaptureKind = 4;
    private const int Queued = 0, Taken = 1, Abandoned = 2;

    private readonly PostgreSqlDatabase _database;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private readonly Channel<Operation> _queue = Channel.CreateUnbounded<Operation>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task[] _writers;
    private readonly string _batchSql;
    private int _disposed;

    // Set while McpGuard:Accounts could not be applied yet (PostgreSQL was down at start): the ledger is not used until it is.
    private volatile bool _seedPending;

    public PostgreSqlLedgerStore(PostgreSqlDatabase database, TimeProvider clock, ILogger logger, int writers = 2)
    {
        _database = database;
        _clock = clock;
        _logger = logger;
        _batchSql = database.Sql("SELECT r_outcome, r_balance, r_spent, r_cap, r_id, r_amount, r_account, r_tool FROM {s}.apply_batch($1, $2, $3, $4, $5, $6, $7, $8, $9);");
        _writers = [.. Enumerable.Range(0, writers).Select(_ => Task.Run(WriteLoopAsync))];
    }

    /// <summary>Where commit times, batch sizes and failures are counted; null for none.</summary>
    public McpGuard.Telemetry.McpGuardTelemetry? Telemetry { get; init; }

    /// <summary>How many commits the writers made (for tests and benchmarks).</summary>
    internal long Commits;

    /// <summary>How many operations those commits carried.</summary>
    internal long Operations;

    /// <summary>How many batches the server refused and were applied again one operation at a time.</summary>
    internal long Splits;

    public async ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccount> seeds, DateTimeOffset now, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = Limit(cancellationToken);
            return await TrySeedAsync(seeds, now, timeout.Token);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // PostgreSQL is not there yet: start anyway (priced calls answer ledger_unavailable meanwhile) and seed once it is.
            Log.SeedDeferred(_logger, ex);
            _seedPending = true;
            _ = Task.Run(() => SeedLaterAsync(seeds, now), CancellationToken.None);
            return false;
        }
    }

    public async ValueTask<McpGuardChargeResult> ChargeAsync(McpGuardChargeRequest request, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(request.PriceMicro);
        ThrowIfNul(request.Account, nameof(request.Account));
        ThrowIfNul(request.RequestId, nameof(request.RequestId));
        // A reservation goes through the same batch as a flat charge, with the same rules; it writes a Reservation row
        // (and a row in reservations) instead of a usage row.
        var result = await EnqueueAsync(
            new Operation(request.Reserve ? ReserveKind : ChargeKind, request.Account, request.RequestId, request.Tool, request.PriceMicro, request.FreeCallsPerMonth, request.Now, request.NewRequestId, default),
            cancellationToken);
        return new McpGuardChargeResult((McpGuardChargeOutcome)result.Outcome, result.Balance, result.Spent, result.Cap);
    }

    public async ValueTask<bool> RefundAsync(string requestId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ThrowIfNul(requestId, nameof(requestId));
        var result = await EnqueueAsync(new Operation(RefundKind, null, requestId, null, 0, 0, now, false, default), cancellationToken);
        return result.Outcome == 1;
    }

    public async ValueTask<McpGuardLedgerEntry?> CaptureAsync(string requestId, long amountMicro, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(amountMicro);
        ThrowIfNul(requestId, nameof(requestId));
        var result = await EnqueueAsync(new Operation(CaptureKind, null, requestId, null, amountMicro, 0, now, false, default), cancellationToken);
        return result.Outcome == 1
            ? new McpGuardLedgerEntry(result.Id, result.Account!, McpGuardLedgerEntryKind.Capture, result.Amount, result.Balance, result.Tool, requestId, new DateTimeOffset(now.UtcDateTime), false, null)
            : null;
    }

    public async ValueTask<int> ReleaseReservationsAsync(DateTimeOffset placedBefore, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ThrowIfSeedPending();
        await _database.EnsureMigratedAsync(cancellationToken);

        // Not batched: run at start and now and then, one statement (one transaction) that locks the accounts in the order
        // a batch locks them, within the store timeout like any statement.
        await using var command = _database.DataSource.CreateCommand(_database.Sql("SELECT {s}.release_reservations($1, $2);"));
        command.Parameters.Add(new() { Value = Microseconds(placedBefore), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new() { Value = Microseconds(now), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        return (int)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// Refunds only the usage row of <paramref name="requestId"/> that <paramref name="account"/> was charged at
    /// <paramref name="chargedAt"/> (to the microsecond, as every charge stores its time), through the same group commit
    /// and unique indexes as any refund: a retry that charged the same id at another time is left alone.
    /// </summary>
    public async ValueTask<bool> RefundAttemptAsync(string requestId, string account, DateTimeOffset chargedAt, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ThrowIfNul(requestId, nameof(requestId));
        ThrowIfNul(account, nameof(account));
        var result = await EnqueueAsync(new Operation(AttemptRefundKind, account, requestId, null, 0, 0, now, false, chargedAt), cancellationToken);
        return result.Outcome == 1;
    }

    public async ValueTask<McpGuardLedgerEntry> TopUpAsync(string account, long amountMicro, string? note, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(amountMicro);
        return await MoveAsync(account, McpGuardLedgerEntryKind.TopUp, amountMicro, note, now, cancellationToken);
    }

    public async ValueTask<McpGuardLedgerEntry> AdjustAsync(string account, long amountMicro, string note, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(note);
        return await MoveAsync(account, McpGuardLedgerEntryKind.Adjustment, amountMicro, note, now, cancellationToken);
    }

    public async ValueTask<McpGuardAccount?> GetAccountAsync(string account, int freeCallsPerMonth, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ThrowIfNul(account, nameof(account));
        ThrowIfSeedPending();
        await _database.EnsureMigratedAsync(cancellationToken);
        await using var command = _database.DataSource.CreateCommand(_database.Sql("SELECT balance, cap, month, month_spent, month_free FROM {s}.accounts WHERE id = $1;"));
        command.Parameters.Add(new() { Value = account });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        var current = reader.GetInt32(2) == LedgerEngine.MonthKey(now);
        return new McpGuardAccount(
            account,
            reader.GetInt64(0),
            reader.IsDBNull(1) ? null : reader.GetInt64(1),
            current ? reader.GetInt64(3) : 0,
            Math.Max(0, freeCallsPerMonth - (current ? reader.GetInt32(4) : 0)));
    }

    public async ValueTask SetMonthlyCapAsync(string account, long? capMicro, CancellationToken cancellationToken)
    {
        if (capMicro is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(capMicro), capMicro, "A cap is zero or more micro-units.");
        }

        ThrowIfNul(account, nameof(account));
        ThrowIfSeedPending();
        await _database.EnsureMigratedAsync(cancellationToken);
        await using var command = _database.DataSource.CreateCommand(_database.Sql(
            "INSERT INTO {s}.accounts (id, cap, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET cap = excluded.cap;"));
        command.Parameters.Add(new() { Value = account });
        command.Parameters.Add(new() { Value = capMicro is { } cap ? cap : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(new() { Value = _clock.GetUtcNow().UtcDateTime });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async ValueTask<McpGuardLedgerPage> GetLedgerAsync(string account, long? before, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await _database.EnsureMigratedAsync(cancellationToken);
        await using var command = _database.DataSource.CreateCommand(_database.Sql("""
            SELECT id, account, kind, amount, balance_after, tool, request_id, created_at, free, note FROM {s}.ledger
            WHERE account = $1 AND id < $2 ORDER BY id DESC LIMIT $3;
            """));
        command.Parameters.Add(new() { Value = account });
        command.Parameters.Add(new() { Value = before ?? long.MaxValue });
        command.Parameters.Add(new() { Value = limit + 1 });
        var rows = new List<McpGuardLedgerEntry>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                rows.Add(ReadEntry(reader));
            }
        }

        var page = rows.Take(limit).ToList();
        return new McpGuardLedgerPage(page, rows.Count > limit ? page[^1].Id : null);
    }

    public async ValueTask<IReadOnlyList<McpGuardLedgerTotal>> GetTotalsAsync(DateTimeOffset start, DateTimeOffset until, TimeSpan bucket, CancellationToken cancellationToken)
    {
        LedgerTotals.Check(start, until, bucket);
        await _database.EnsureMigratedAsync(cancellationToken);

        // Grouped by PostgreSQL over the rows of the window, found through ledger_created_at: one row per bucket, account,
        // tool, kind and free flag comes back, never the rows. An operator's query, not a charge: it may take longer than one
        // store call (a day's rows, or the ledger's while the index is being built), up to ten store timeouts.
        var limit = _database.Timeout * 10;
        await using var connection = await _database.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var longer = new NpgsqlCommand($"SET LOCAL statement_timeout = {(long)limit.TotalMilliseconds};", connection, transaction))
        {
            await longer.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var command = new NpgsqlCommand(_database.Sql("""
            SELECT floor(extract(epoch FROM created_at - $1) / $3)::bigint, account, tool, kind, free, count(*), sum(amount)::bigint
            FROM {s}.ledger WHERE created_at >= $1 AND created_at < $2
            GROUP BY 1, account, tool, kind, free;
            """), connection, transaction);
        command.CommandTimeout = (int)Math.Ceiling(limit.TotalSeconds);
        command.Parameters.Add(new() { Value = Microseconds(start) });
        command.Parameters.Add(new() { Value = Microseconds(until) });
        command.Parameters.Add(new() { Value = (long)bucket.TotalSeconds });
        var totals = new List<McpGuardLedgerTotal>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            totals.Add(new McpGuardLedgerTotal(
                start + TimeSpan.FromTicks(bucket.Ticks * reader.GetInt64(0)),
                reader.GetString(1),
                reader.IsDBNull(2) ? null : reader.GetString(2),
                Enum.Parse<McpGuardLedgerEntryKind>(reader.GetString(3)),
                reader.GetBoolean(4),
                reader.GetInt64(5),
                reader.GetInt64(6)));
        }

        return totals;
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        _database.CheckHealthAsync(context, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _queue.Writer.TryComplete();
        await _stopping.CancelAsync();
        try
        {
            await Task.WhenAll(_writers);
        }
        catch (OperationCanceledException)
        {
        }

        while (_queue.Reader.TryRead(out var operation))
        {
            operation.Done.TrySetException(new ObjectDisposedException(nameof(PostgreSqlLedgerStore)));
        }

        _stopping.Dispose();
    }

    internal static McpGuardLedgerEntry ReadEntry(NpgsqlDataReader reader) => new(
        reader.GetInt64(0),
        reader.GetString(1),
        Enum.Parse<McpGuardLedgerEntryKind>(reader.GetString(2)),
        reader.GetInt64(3),
        reader.GetInt64(4),
        reader.IsDBNull(5) ? null : reader.GetString(5),
        reader.IsDBNull(6) ? null : reader.GetString(6),
        PostgreSqlDatabase.ReadTime(reader, 7),
        reader.GetBoolean(8),
        reader.IsDBNull(9) ? null : reader.GetString(9));

    /// <summary>A time as PostgreSQL's timestamptz keeps it: truncated to the microsecond.</summary>
    internal static DateTime Microseconds(DateTimeOffset time)
    {
        var utc = time.UtcDateTime;
        return new DateTime(utc.Ticks - (utc.Ticks % 10), DateTimeKind.Utc);
    }

    /// <summary>PostgreSQL text cannot hold NUL (22021): an id with one is refused alone, before it can fail a batch.</summary>
    private static void ThrowIfNul(string value, string name)
    {
        if (value.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("PostgreSQL cannot store a NUL character in an account or request id.", name);
        }
    }

    private void ThrowIfSeedPending()
    {
        if (_seedPending)
        {
            throw new InvalidOperationException("The PostgreSQL ledger is not seeded yet (McpGuard:Accounts is applied once PostgreSQL answers); it is not used until then.");
        }
    }

    private CancellationTokenSource Limit(CancellationToken cancellationToken)
    {
        var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(_database.Timeout);
        return limit;
    }

    private async Task<Result> EnqueueAsync(Operation operation, CancellationToken cancellationToken)
    {
        ThrowIfSeedPending();
        await _database.EnsureMigratedAsync(cancellationToken);
        ObjectDisposedException.ThrowIf(!_queue.Writer.TryWrite(operation), this);

        try
        {
            return await operation.Done.Task.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Not taken yet: it never will be. Taken: its batch commits or rolls back within the statement timeout.
            // Taken and then refused as a batch: its replay on its own skips it (see ApplyAsync).
            operation.GivenUp = true;
            Interlocked.CompareExchange(ref operation.State, Abandoned, Queued);
            throw;
        }
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<Operation>(MaxBatch);
        var reader = _queue.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_stopping.Token))
            {
                batch.Clear();
                while (batch.Count < MaxBatch && reader.TryRead(out var operation))
                {
                    if (Interlocked.CompareExchange(ref operation.State, Taken, Queued) == Queued)
                    {
                        batch.Add(operation);
                    }
                }

                if (batch.Count > 0)
                {
                    await ApplyAsync(batch);
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    private async Task ApplyAsync(List<Operation> batch, bool retried = false)
    {
        var n = batch.Count;
        var kinds = new short[n];
        var accounts = new string?[n];
        var requests = new string[n];
        var tools = new string?[n];
        var prices = new long[n];
        var freeCalls = new int[n];
        var times = new DateTime[n];
        var fresh = new bool[n];
        var charged = new DateTime[n];
        for (var i = 0; i < n; i++)
        {
            var operation = batch[i];
            kinds[i] = operation.Kind;
            accounts[i] = operation.Account;
            requests[i] = operation.RequestId;
            // The tool column is informational, and PostgreSQL text cannot hold NUL (22021): it must not fail the batch.
            tools[i] = operation.Tool?.Replace('\0', '\uFFFD');
            prices[i] = operation.Price;
            freeCalls[i] = operation.FreeCalls;
            times[i] = Microseconds(operation.Now);
            fresh[i] = operation.NewRequestId;
            charged[i] = Microseconds(operation.ChargedAt);
        }

        var results = new Result[n];
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            using var timeout = new CancellationTokenSource(_database.Timeout);
            await using var command = _database.DataSource.CreateCommand(_batchSql);
            command.Parameters.Add(new() { Value = kinds, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Smallint });
            command.Parameters.Add(new() { Value = accounts, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            command.Parameters.Add(new() { Value = requests, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            command.Parameters.Add(new() { Value = tools, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
            command.Parameters.Add(new() { Value = prices, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
            command.Parameters.Add(new() { Value = freeCalls, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
            command.Parameters.Add(new() { Value = times, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
            command.Parameters.Add(new() { Value = fresh, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Boolean });
            command.Parameters.Add(new() { Value = charged, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.TimestampTz });
            await using (var reader = await command.ExecuteReaderAsync(timeout.Token))
            {
                for (var i = 0; i < n; i++)
                {
                    if (!await reader.ReadAsync(timeout.Token))
                    {
                        throw new InvalidOperationException($"apply_batch answered {i} of {n} operations.");
                    }

                    results[i] = new Result(reader.GetInt16(0), reader.IsDBNull(1) ? 0 : reader.GetInt64(1), reader.IsDBNull(2) ? 0 : reader.GetInt64(2), reader.IsDBNull(3) ? null : reader.GetInt64(3));
                    if (!reader.IsDBNull(4))
                    {
                        // A capture: its row.
                        results[i] = results[i] with { Id = reader.GetInt64(4), Amount = reader.GetInt64(5), Account = reader.GetString(6), Tool = reader.IsDBNull(7) ? null : reader.GetString(7) };
                    }
                }
            }

            Interlocked.Increment(ref Commits);
            Interlocked.Add(ref Operations, n);
        }
        catch (PostgresException ex) when (n > 1 && (!ex.IsTransient || IsConflict(ex)))
        {
            // One operation the server refuses must not fail the others it was batched with, nor must a deadlock or a
            // serialization failure (two instances' batches meeting on the request-id index, say): the batch was rolled
            // back whole, so each is applied again on its own, except those whose caller has given up meanwhile.
            Interlocked.Increment(ref Splits);
            Log.BatchSplit(_logger, ex, n);
            foreach (var operation in batch)
            {
                if (operation.GivenUp)
                {
                    operation.Done.TrySetCanceled();
                }
                else
                {
                    await ApplyAsync([operation], retried: true);
                }
            }

            return;
        }
        catch (PostgresException ex) when (n == 1 && !retried && IsConflict(ex) && !batch[0].GivenUp)
        {
            // Rolled back whole by a deadlock or a serialization failure: once more.
            Log.BatchSplit(_logger, ex, n);
            await ApplyAsync(batch, retried: true);
            return;
        }
        catch (Exception ex)
        {
            _database.ForgetConnections(ex);
            Log.BatchFailed(_logger, ex, n);
            var failure = ex is OperationCanceledException ? new TimeoutException($"PostgreSQL did not commit the batch within {_database.Timeout.TotalMilliseconds:0} ms.", ex) : ex;
            foreach (var operation in batch)
            {
                operation.Done.TrySetException(failure);
            }

            Telemetry?.StoreFailed("ledger", "commit");
            return;
        }

        for (var i = 0; i < n; i++)
        {
            batch[i].Done.TrySetResult(results[i]);
        }

        Telemetry?.LedgerCommitted(n, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>A deadlock (40P01) or a serialization failure (40001): the transaction was rolled back, and may be tried again.</summary>
    private static bool IsConflict(PostgresException exception) => exception.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure;

    private async ValueTask<McpGuardLedgerEntry> MoveAsync(string account, McpGuardLedgerEntryKind kind, long amount, string? note, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ThrowIfNul(account, nameof(account));
        ThrowIfSeedPending();
        await _database.EnsureMigratedAsync(cancellationToken);
        await using var command = _database.DataSource.CreateCommand(_database.Sql("SELECT r_id, r_balance FROM {s}.move($1, $2, $3, $4, $5);"));
        command.Parameters.Add(new() { Value = account });
        command.Parameters.Add(new() { Value = kind.ToString() });
        command.Parameters.Add(new() { Value = amount });
        command.Parameters.Add(new() { Value = note is null ? DBNull.Value : note, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new() { Value = now.UtcDateTime });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        if (reader.IsDBNull(0))
        {
            throw new InvalidOperationException($"An adjustment of {amount} would take account '{account}' below zero (balance {reader.GetInt64(1)}).");
        }

        return new McpGuardLedgerEntry(reader.GetInt64(0), account, kind, amount, reader.GetInt64(1), null, null, new DateTimeOffset(now.UtcDateTime), false, note);
    }

    private async Task<bool> TrySeedAsync(IReadOnlyList<McpGuardAccount> seeds, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await _database.EnsureMigratedAsync(cancellationToken);
        await using var connection = await _database.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var gate = new NpgsqlCommand(_database.Sql(
            $"SELECT pg_advisory_xact_lock({PostgreSqlSchema.AdvisoryLockClass}, hashtext('{_database.SchemaName}:seed')); SELECT EXISTS (SELECT 1 FROM {{s}}.meta WHERE key = 'seeded');"), connection))
        {
            await using var reader = await gate.ExecuteReaderAsync(cancellationToken);
            await reader.NextResultAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            if (reader.GetBoolean(0))
            {
                // Seeded already (by this instance before a restart, or another): decided by the marker, never by
                // whether accounts exist, since a charge or top-up creates its account whether or not the seed ran.
                return false;
            }
        }

        foreach (var seed in seeds)
        {
            await using var batch = new NpgsqlBatch(connection, transaction);
            var balance = Math.Max(0, seed.BalanceMicro);
            // An account made before the seed ran (an instance without McpGuard:Accounts, say) gets its cap and the seed
            // balance on top of what it has, as the embedded ledger's seed does.
            batch.BatchCommands.Add(Command(
                "INSERT INTO {s}.accounts (id, cap, balance, created_at) VALUES ($1, $2, 0, $3) ON CONFLICT (id) DO UPDATE SET cap = excluded.cap;",
                seed.Id, seed.MonthlyCapMicro, now.UtcDateTime));
            if (balance > 0)
            {
                batch.BatchCommands.Add(Command(
                    "WITH a AS (UPDATE {s}.accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance) "
                    + "INSERT INTO {s}.ledger (account, kind, amount, balance_after, created_at, note) SELECT $1, 'TopUp', $2, a.balance, $3, 'seed' FROM a;",
                    seed.Id, balance, now.UtcDateTime));
            }

            await batch.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var marker = new NpgsqlCommand(_database.Sql("INSERT INTO {s}.meta (key, value) VALUES ('seeded', $1);"), connection, transaction))
        {
            marker.Parameters.Add(new() { Value = $"{seeds.Count} accounts at {now.UtcDateTime:O} by {Environment.MachineName}:{Environment.ProcessId}" });
            await marker.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    private NpgsqlBatchCommand Command(string sql, params object?[] values)
    {
        var command = new NpgsqlBatchCommand(_database.Sql(sql));
        foreach (var value in values)
        {
            command.Parameters.Add(value is null ? new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint } : new NpgsqlParameter { Value = value });
        }

        return command;
    }

    private async Task SeedLaterAsync(IReadOnlyList<McpGuardAccount> seeds, DateTimeOffset now)
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), _stopping.Token);
                using var timeout = Limit(_stopping.Token);
                if (await TrySeedAsync(seeds, now, timeout.Token))
                {
                    Log.SeededLater(_logger, seeds.Count);
                }

                _seedPending = false;
                return;
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception)
            {
                // Still unreachable: try again.
            }
        }
    }

    private sealed class Operation(short kind, string? account, string requestId, string? tool, long price, int freeCalls, DateTimeOffset now, bool newRequestId, DateTimeOffset chargedAt)
    {
        public int State;

        /// <summary>Its caller stopped waiting (its cancellation token fired).</summary>
        public volatile bool GivenUp;

        public short Kind { get; } = kind;

        public string? Account { get; } = account;

        public string RequestId { get; } = requestId;

        public string? Tool { get; } = tool;

        public long Price { get; } = price;

        public int FreeCalls { get; } = freeCalls;

        public DateTimeOffset Now { get; } = now;

        public bool NewRequestId { get; } = newRequestId;

        /// <summary>For a refund of one attempt: when that attempt's charge (or reservation) was taken.</summary>
        public DateTimeOffset ChargedAt { get; } = chargedAt;

        public TaskCompletionSource<Result> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>What <c>apply_batch</c> answered for one operation; a capture's row too (id, signed amount, account, tool).</summary>
    private readonly record struct Result(short Outcome, long Balance, long Spent, long? Cap)
    {
        public long Id { get; init; }

        public long Amount { get; init; }

        public string? Account { get; init; }

        public string? Tool { get; init; }
    }

    private static partial class Log
    {
        [LoggerMessage(8101, LogLevel.Error, "PostgreSQL did not apply a batch of {Count} charges, captures and refunds; their callers are answered with the error (a refused charge is refunded by McpGuard if it landed).", EventName = "PostgreSqlBatchFailed")]
        public static partial void BatchFailed(ILogger logger, Exception exception, int count);

        [LoggerMessage(8104, LogLevel.Warning, "PostgreSQL refused a batch of {Count} charges, captures and refunds (one operation it refused, or a deadlock or serialization failure); each whose caller still waits is applied on its own.", EventName = "PostgreSqlBatchSplit")]
        public static partial void BatchSplit(ILogger logger, Exception exception, int count);

        [LoggerMessage(8102, LogLevel.Warning, "PostgreSQL is not reachable at start: the seed balances of McpGuard:Accounts are applied (to a ledger not seeded yet) once it is; until then this instance's ledger refuses every operation.", EventName = "PostgreSqlSeedDeferred")]
        public static partial void SeedDeferred(ILogger logger, Exception exception);

        [LoggerMessage(8103, LogLevel.Information, "Seeded the PostgreSQL ledger with {Count} accounts from McpGuard:Accounts once PostgreSQL answered.", EventName = "PostgreSqlSeededLater")]
        public static partial void SeededLater(ILogger logger, int count);
    }
}
