namespace McpGuard.Credits;

/// <summary>
/// One durable change: a ledger row with its account's totals after it, a change of an account's row, or a roll-up of
/// old rows. The rare parts are references, so the common write (one row per charge) stays small.
/// </summary>
internal sealed record JournalWrite
{
    /// <summary>A row written just before <see cref="Entry"/>, in the same commit: a metered call's release, before its capture.</summary>
    public McpGuardLedgerEntry? Preceding { get; init; }

    public McpGuardLedgerEntry? Entry { get; init; }

    /// <summary>The totals of <see cref="Entry"/>'s account once the row is applied (kept with the rows, read on start).</summary>
    public AccountTotals Totals { get; init; }

    /// <summary>Insert or update the account row (its cap).</summary>
    public JournalAccount? Account { get; init; }

    /// <summary>Roll usage and refund rows in an id range into daily totals.</summary>
    public LedgerRollUp? RollUp { get; init; }
}

/// <summary>An account row as written: its cap, and when it was created.</summary>
internal sealed record JournalAccount(string Id, long? Cap, DateTimeOffset Now);

/// <summary>
/// What the engine keeps per account, as the store keeps it next to the rows: the balance, and the spend and free calls
/// of <see cref="Month"/> (a <see cref="LedgerEngine.MonthKey"/>; -1 before the first charge).
/// </summary>
internal readonly record struct AccountTotals(long Balance, int Month, long MonthSpent, int MonthFree);

/// <summary>An account as the store holds it on start.</summary>
internal sealed record StoredAccount(string Id, long? Cap, DateTimeOffset Created, AccountTotals Totals);

/// <summary>
/// What the engine needs to start: the accounts with their totals as of the journal's last checkpoint, and the rows
/// written after it (<see cref="Tail"/>, at most one checkpoint interval of rows), which the engine applies on top. Never
/// the whole history, so a start takes the same time and memory whatever it holds.
/// </summary>
internal sealed record LedgerSnapshot(IReadOnlyList<StoredAccount> Accounts, IReadOnlyList<McpGuardLedgerEntry> Tail, long LastId)
{
    public static readonly LedgerSnapshot Empty = new([], [], 0);

    /// <summary>The reservations still held (placed, neither released nor captured), wherever their rows are.</summary>
    public IReadOnlyList<StoredHold> Holds { get; init; } = [];
}

/// <summary>A reservation still held, as the store keeps it beside its row.</summary>
internal sealed record StoredHold(string RequestId, string Account, string? Tool, long Amount, DateTimeOffset Placed);

/// <summary>
/// A request's charge as the store holds it (its usage row, or the capture of its reservation), and whether it was
/// refunded (a released reservation counts as refunded): what a refund or a repeated request id needs.
/// </summary>
internal sealed record StoredCharge(string Account, string? Tool, long Amount, bool Free, DateTimeOffset Timestamp, bool Refunded)
{
    /// <summary>When the request's reservation was placed, for a metered call: the month its hold and capture count in.</summary>
    public DateTimeOffset? ReservedAt { get; init; }

    /// <summary>Reads a request's rows (any order): null when none is a charge, a capture, a reservation or a refund.</summary>
    public static StoredCharge? Of(IEnumerable<(McpGuardLedgerEntryKind Kind, StoredCharge Row)> rows)
    {
        StoredCharge? usage = null, refund = null, reservation = null;
        var released = false;
        foreach (var (kind, row) in rows)
        {
            switch (kind)
            {
                case McpGuardLedgerEntryKind.Usage or McpGuardLedgerEntryKind.Capture:
                    usage = row;
                    break;
                case McpGuardLedgerEntryKind.Refund:
                    refund = row;
                    break;
                case McpGuardLedgerEntryKind.Reservation:
                    reservation = row;
                    break;
                case McpGuardLedgerEntryKind.Release:
                    released = true;
                    break;
            }
        }

        // A refund whose usage row was rolled up (it was older than the retention, the refund was not) still says the id
        // was charged, and refunded: never charged again, never refunded again. A reservation released and never captured
        // was given back whole. (One still held is the engine's, in memory.)
        var found = usage is not null ? usage with { Refunded = refund is not null }
            : refund is not null ? refund with { Refunded = true }
            : reservation is not null ? reservation with { Refunded = released }
            : null;
        return found is not null && reservation is not null ? found with { ReservedAt = reservation.Timestamp } : found;
    }
}

/// <summary>
/// Usage and refund rows with ids from <see cref="FromId"/> to <see cref="ToId"/> become per-account, per-tool, per-day
/// totals. The journal says how many rows went, or why none did, once the commit that held it is done.
/// </summary>
internal sealed record LedgerRollUp(long FromId, long ToId)
{
    public int Rows { get; set; }

    /// <summary>Why the roll-up was undone (alone: the changes committed with it stand); null when it went.</summary>
    public Exception? Error { get; set; }
}

/// <summary>What the rows say an account holds: every row, and the daily totals of rows rolled up.</summary>
internal sealed record LedgerSums(long TopUps, long Usage, long Refunds, long Adjustments, long Rows, long? LastBalanceAfter)
{
    public long Total => TopUps + Usage + Refunds + Adjustments;

    /// <summary>Whether a row of <paramref name="kind"/> adds to <see cref="Usage"/>: a charge, and a metered call's hold, release and capture.</summary>
    public static bool IsUsage(McpGuardLedgerEntryKind kind) =>
        kind is McpGuardLedgerEntryKind.Usage or McpGuardLedgerEntryKind.Reservation or McpGuardLedgerEntryKind.Capture or McpGuardLedgerEntryKind.Release;
}

/// <summary>An account whose balance is not what its rows add up to.</summary>
internal sealed record LedgerDifference(string Account, long Balance, LedgerSums Rows);

/// <summary>The money invariant checked for every account, as of the row <see cref="AsOfId"/>.</summary>
internal sealed record LedgerCheck(int AccountsChecked, long RowsChecked, long AsOfId, IReadOnlyList<LedgerDifference> Differences);

/// <summary>
/// The rules <see cref="ILedgerTotals.GetTotalsAsync"/> shares between the stores: its arguments, and which bucket
/// a row falls in. Rows are written in time order to within <see cref="TimeOrderSlack"/> (each row's time is its call's,
/// taken just before the row gets its id), so a store may find the window's first row by its id and read from there.
/// </summary>
internal static class LedgerTotals
{
    /// <summary>How far a row's time may run behind the time of a row with a smaller id.</summary>
    public static readonly TimeSpan TimeOrderSlack = TimeSpan.FromMinutes(1);

    public static void Check(DateTimeOffset from, DateTimeOffset to, TimeSpan bucket)
    {
        if (to <= from)
        {
            throw new ArgumentOutOfRangeException(nameof(to), to, "The end of the window must come after its start.");
        }

        if (bucket < TimeSpan.FromSeconds(1) || bucket.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(bucket), bucket, "A bucket is a whole number of seconds, at least one.");
        }
    }

    /// <summary>The start of the bucket <paramref name="time"/> falls in.</summary>
    public static DateTimeOffset BucketOf(DateTimeOffset from, TimeSpan bucket, DateTimeOffset time) =>
        from + TimeSpan.FromTicks(bucket.Ticks * ((time - from).Ticks / bucket.Ticks));

    /// <summary>Adds up rows already read (the in-memory journal's), keeping those in [from, to).</summary>
    public static IReadOnlyList<McpGuardLedgerTotal> Add(IEnumerable<McpGuardLedgerEntry> rows, DateTimeOffset from, DateTimeOffset to, TimeSpan bucket) =>
        [.. rows.Where(r => r.Timestamp >= from && r.Timestamp < to)
            .GroupBy(r => (Start: BucketOf(from, bucket, r.Timestamp), r.Account, r.Tool, r.Kind, r.Free))
            .Select(g => new McpGuardLedgerTotal(g.Key.Start, g.Key.Account, g.Key.Tool, g.Key.Kind, g.Key.Free, g.LongCount(), g.Sum(r => r.AmountMicro)))];
}

/// <summary>Where the engine's changes become durable, in the order the engine made them.</summary>
internal abstract class LedgerJournal : IAsyncDisposable
{
    public abstract LedgerSnapshot Load();

    /// <summary>Queues a change; the task completes when it is durable. Called in the engine's order, under its lock.</summary>
    public abstract Task AppendAsync(JournalWrite write);

    /// <summary>How many appended changes are durable: changes are made durable in order, so the first this many are.</summary>
    public abstract long Committed { get; }

    /// <summary>
    /// Called after <see cref="AppendAsync"/>, outside the engine's lock: may make what is queued durable on the calling
    /// thread (so its task is complete on return), or leave it to a commit already running.
    /// </summary>
    public virtual void Flush()
    {
    }

    /// <summary>
    /// Told after a start applied the rows written after the last checkpoint: the totals those accounts have now, which
    /// the next checkpoint must write (their rows are already in the journal).
    /// </summary>
    public virtual void Recovered(IReadOnlyDictionary<string, AccountTotals> totals)
    {
    }

    /// <summary>Told once, when a write failed: every change queued from then on fails too.</summary>
    public Action<Exception>? OnFailed { get; set; }

    /// <summary>
    /// The charge of a request id among the durable rows (its usage row, or its refund row alone when the usage row was
    /// rolled up), or null. Safe to call from any thread, inside the engine's lock or outside it.
    /// </summary>
    public abstract StoredCharge? FindCharge(string requestId);

    public abstract ValueTask<IReadOnlyList<McpGuardLedgerEntry>> ReadAsync(string account, long? before, int limit, CancellationToken cancellationToken);

    /// <summary>The durable rows written in [from, to), added up per bucket, account, tool, kind and free flag (see <see cref="LedgerTotals"/>).</summary>
    public abstract ValueTask<IReadOnlyList<McpGuardLedgerTotal>> TotalsAsync(DateTimeOffset from, DateTimeOffset to, TimeSpan bucket, CancellationToken cancellationToken);

    /// <summary>What the durable rows with ids up to <paramref name="lastId"/> (and the daily totals) add up to, per account.</summary>
    public abstract ValueTask<IReadOnlyDictionary<string, LedgerSums>> SumAsync(long lastId, CancellationToken cancellationToken);

    /// <summary>The id range of the usage and refund rows written before <paramref name="cutoff"/>, or null when there are none. Reads, never writes.</summary>
    public virtual ValueTask<(long From, long To)?> FindRowsBeforeAsync(DateTimeOffset cutoff, CancellationToken cancellationToken) =>
        ValueTask.FromResult<(long, long)?>(null);

    public virtual ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>
/// The in-memory journal: rows kept per account in process memory, gone on restart. A store for tests and throwaway
/// servers: it keeps every row (and every request id) for the life of the process.
/// </summary>
internal sealed class InMemoryJournal : LedgerJournal
{
    private readonly Dictionary<string, List<McpGuardLedgerEntry>> _rows = new(StringComparer.Ordinal);
    /// <summary>Each request id's rows: most have one (a charge), so a list is made only for the second (a refund, a capture).</summary>
    private readonly Dictionary<string, (McpGuardLedgerEntry First, List<McpGuardLedgerEntry>? More)> _byRequest = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private long _committed;

    public override LedgerSnapshot Load() => LedgerSnapshot.Empty;

    public override long Committed => Volatile.Read(ref _committed);

    public override Task AppendAsync(JournalWrite write)
    {
        lock (_lock)
        {
            if (write.Preceding is { } preceding)
            {
                Add(preceding);
            }

            if (write.Entry is { } entry)
            {
                Add(entry);
            }

            _committed++;
        }

        return Task.CompletedTask;
    }

    /// <summary>Under the lock: keeps a row by account and by request id.</summary>
    private void Add(McpGuardLedgerEntry entry)
    {
        if (!_rows.TryGetValue(entry.Account, out var rows))
        {
            _rows[entry.Account] = rows = [];
        }

        rows.Add(entry);
        if (entry.RequestId is not { } requestId)
        {
            return;
        }

        if (!_byRequest.TryGetValue(requestId, out var requestRows))
        {
            _byRequest[requestId] = (entry, null);
        }
        else
        {
            (requestRows.More ??= []).Add(entry);
            _byRequest[requestId] = requestRows;
        }
    }

    public override StoredCharge? FindCharge(string requestId)
    {
        lock (_lock)
        {
            return _byRequest.TryGetValue(requestId, out var rows)
                ? StoredCharge.Of(rows.More is null ? [Read(rows.First)] : rows.More.Prepend(rows.First).Select(Read))
                : null;

            static (McpGuardLedgerEntryKind, StoredCharge) Read(McpGuardLedgerEntry r) =>
                (r.Kind, new StoredCharge(r.Account, r.Tool, Math.Abs(r.AmountMicro), r.Free, r.Timestamp, Refunded: false));
        }
    }

    public override ValueTask<IReadOnlyList<McpGuardLedgerEntry>> ReadAsync(string account, long? before, int limit, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            IReadOnlyList<McpGuardLedgerEntry> page = _rows.TryGetValue(account, out var rows)
                ? [.. rows.Where(r => before is null || r.Id < before).OrderByDescending(r => r.Id).Take(limit)]
                : [];
            return ValueTask.FromResult(page);
        }
    }

    public override ValueTask<IReadOnlyList<McpGuardLedgerTotal>> TotalsAsync(DateTimeOffset from, DateTimeOffset to, TimeSpan bucket, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            // Each account's rows are in id order, so in time order to within the slack: read back from the newest while
            // they can still be in the window, never the older history.
            var window = new List<McpGuardLedgerEntry>();
            var oldest = from - LedgerTotals.TimeOrderSlack;
            foreach (var rows in _rows.Values)
            {
                for (var i = rows.Count - 1; i >= 0 && rows[i].Timestamp >= oldest; i--)
                {
                    window.Add(rows[i]);
                }
            }

            return ValueTask.FromResult(LedgerTotals.Add(window, from, to, bucket));
        }
    }

    public override ValueTask<IReadOnlyDictionary<string, LedgerSums>> SumAsync(long lastId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var sums = new Dictionary<string, LedgerSums>(StringComparer.Ordinal);
            foreach (var (account, rows) in _rows)
            {
                var upTo = rows.Where(r => r.Id <= lastId).ToList();
                sums[account] = new LedgerSums(
                    upTo.Where(r => r.Kind == McpGuardLedgerEntryKind.TopUp).Sum(r => r.AmountMicro),
                    upTo.Where(r => LedgerSums.IsUsage(r.Kind)).Sum(r => r.AmountMicro),
                    upTo.Where(r => r.Kind == McpGuardLedgerEntryKind.Refund).Sum(r => r.AmountMicro),
                    upTo.Where(r => r.Kind == McpGuardLedgerEntryKind.Adjustment).Sum(r => r.AmountMicro),
                    upTo.Count,
                    upTo.Count > 0 ? upTo.MaxBy(r => r.Id)!.BalanceAfterMicro : null);
            }

            return ValueTask.FromResult<IReadOnlyDictionary<string, LedgerSums>>(sums);
        }
    }
}
