using Microsoft.Extensions.Logging;

namespace McpGuard.Credits;

/// <summary>
/// The ledger's rules, over state held in memory and made durable by a <see cref="LedgerJournal"/>.
/// Every change happens under one lock (so a balance can never be spent twice) and is handed to the
/// journal in that same order; the caller is answered only once the journal says the change is durable.
/// </summary>
/// <remarks>
/// What it holds is bounded by live state, not by history: the accounts (with their balance and this month's spend and
/// free calls, which the journal keeps next to the rows, so a start reads them and not the rows), and the most recent
/// charges by request id (<see cref="RecentCapacity"/>, plus any whose row is not durable yet). A request id it no
/// longer holds is looked up in the journal: for a refund, and for a repeated id a client sent (an id McpGuard made for
/// the request is new by construction, so it needs no look-up).
/// </remarks>
internal partial class LedgerEngine : IMcpGuardLedgerStore, ILedgerTotals, Microsoft.Extensions.Diagnostics.HealthChecks.IHealthCheck, IAsyncDisposable
{
    /// <summary>Unhealthy once the journal failed to write: from then on the ledger refuses every change until the app restarts.</summary>
    public Task<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult> CheckHealthAsync(Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_fault is { } fault
            ? new Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult(context.Registration.FailureStatus, $"the ledger failed to write and accepts no changes until the app restarts: {fault.Message}", fault)
            : Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy());

    /// <summary>How many recent charges are held by request id, by default: at 12k priced calls a second, the last 5 s or so.</summary>
    internal const int DefaultRecentCapacity = 65_536;

    private readonly LedgerJournal _journal;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, AccountState> _accounts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ChargeRecord> _recent;
    private readonly Queue<ChargeRecord> _recentOrder;

    /// <summary>The reservations held now, by request id: never let go of until released or captured, whatever their age.</summary>
    /// <remarks>Each with the time it was placed, which only a hold needs (not every charge held by request id).</remarks>
    private readonly Dictionary<string, (ChargeRecord Charge, DateTimeOffset Placed)> _holds = new(StringComparer.Ordinal);
    private long _lastId;
    private long _appended;
    private long _maxEvictedSequence;
    private Task _lastWrite = Task.CompletedTask;
    private Exception? _fault;

    public LedgerEngine(LedgerJournal journal, TimeProvider clock, ILogger logger, int recentCapacity = DefaultRecentCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(recentCapacity, 1);
        _journal = journal;
        _clock = clock;
        _logger = logger;
        RecentCapacity = recentCapacity;

        // Sized once, with room for the charges whose rows are still being written: the table never grows (and never
        // rehashes under the lock) in steady state.
        _recent = new(recentCapacity + 1024, StringComparer.Ordinal);
        _recentOrder = new(recentCapacity + 1024);
        journal.OnFailed = OnJournalFailed;
        Start(journal.Load());
    }

    /// <summary>How many recent charges are held by request id (more only while their rows are being written).</summary>
    public int RecentCapacity { get; }

    /// <summary>How many charges are held by request id now.</summary>
    internal int RecentCount
    {
        get
        {
            lock (_lock)
            {
                return _recent.Count;
            }
        }
    }

    /// <summary>How many ledger rows the start read: those after the journal's last checkpoint, however long the history.</summary>
    internal long RowsReadAtStart { get; private set; }

    public async ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccount> seeds, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var writes = new List<Task>();
        lock (_lock)
        {
            ThrowIfFaulted();
            if (_accounts.Count > 0)
            {
                return false;
            }

            foreach (var seed in seeds)
            {
                var account = GetOrCreate(seed.Id, now, out var created);
                AddIfAny(writes, created);
                account.Cap = seed.MonthlyCapMicro;
                writes.Add(Append(new JournalWrite { Account = new(account.Id, account.Cap, now) }));
                if (seed.BalanceMicro > 0)
                {
                    account.Balance += seed.BalanceMicro;
                    writes.Add(AppendEntry(account, McpGuardLedgerEntryKind.TopUp, seed.BalanceMicro, null, null, now, false, "seed"));
                }
            }
        }

        _journal.Flush();
        await Task.WhenAll(writes);
        return true;
    }

    public async ValueTask<McpGuardChargeResult> ChargeAsync(McpGuardChargeRequest request, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(request.PriceMicro);

        // An id the client sent may have been charged long ago: look it up in the journal before taking the lock, so the
        // look-up never holds up other charges. What it cannot have seen is checked under the lock below.
        var committedBefore = 0L;
        var stored = false;
        if (!request.NewRequestId)
        {
            committedBefore = _journal.Committed;
            stored = _journal.FindCharge(request.RequestId) is not null;
        }

        McpGuardChargeResult result;
        Task? created;
        Task write;
        try
        {
            lock (_lock)
            {
                ThrowIfFaulted();
                var account = GetOrCreate(request.Account, request.Now, out created);
                var month = MonthKey(request.Now);
                account.Roll(month);
                // Held in memory, found by the look-up, or (rarely) a charge of this id that was committed after the
                // look-up began has left memory since: then the journal has it now.
                if (_recent.ContainsKey(request.RequestId) || stored
                    || (!request.NewRequestId && _maxEvictedSequence > committedBefore && _journal.FindCharge(request.RequestId) is not null))
                {
                    return new McpGuardChargeResult(McpGuardChargeOutcome.DuplicateRequest, account.Balance, account.MonthSpent, account.Cap);
                }

                ChargeRecord charge;
                if (request.FreeCallsPerMonth - account.MonthFree > 0)
                {
                    charge = new ChargeRecord(request.RequestId, account.Id, request.Tool, 0, true, month);
                    account.Spend(charge);
                    write = AppendEntry(account, McpGuardLedgerEntryKind.Usage, 0, request.Tool, request.RequestId, request.Now, true, null);
                    result = new McpGuardChargeResult(McpGuardChargeOutcome.Free, account.Balance, account.MonthSpent, account.Cap);
                }
                else if (account.Balance < request.PriceMicro)
                {
                    return new McpGuardChargeResult(McpGuardChargeOutcome.OutOfCredit, account.Balance, account.MonthSpent, account.Cap);
                }
                else if (account.Cap is long cap && account.MonthSpent + request.PriceMicro > cap)
                {
                    return new McpGuardChargeResult(McpGuardChargeOutcome.CapReached, account.Balance, account.MonthSpent, account.Cap);
                }
                else
                {
                    account.Balance -= request.PriceMicro;
                    charge = new ChargeRecord(request.RequestId, account.Id, request.Tool, request.PriceMicro, false, month);
                    account.Spend(charge);
                    if (request.Reserve)
                    {
                        // A hold on the maximum, counted in the month's spend until it is settled.
                        _holds[request.RequestId] = (charge, request.Now);
                    }

                    write = AppendEntry(account, request.Reserve ? McpGuardLedgerEntryKind.Reservation : McpGuardLedgerEntryKind.Usage, -request.PriceMicro, request.Tool, request.RequestId, request.Now, false, null);
                    result = new McpGuardChargeResult(McpGuardChargeOutcome.Charged, account.Balance, account.MonthSpent, account.Cap);
                }

                Remember(charge);
            }
        }
        finally
        {
            // Commits what this call queued (a new account's row too, when the call is refused), on this thread when no
            // commit is running.
            _journal.Flush();
        }

        await (created is null ? write : Task.WhenAll(created, write));
        return result;
    }

    public async ValueTask<bool> RefundAsync(string requestId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        Task write;
        lock (_lock)
        {
            ThrowIfFaulted();
            if (_holds.Remove(requestId, out var reservation))
            {
                // A reservation still held: given back whole, with a release row.
                write = Release(reservation.Charge, now);
                reservation.Charge.Refunded = true;
            }
            else
            {
                var held = _recent.TryGetValue(requestId, out var charge);
                if (!held)
                {
                    // Not held any more (a call that outlived the recent window, or a charge from before a restart): the
                    // journal has its row if it was taken.
                    if (_journal.FindCharge(requestId) is not { } stored || stored.Refunded)
                    {
                        return false;
                    }

                    charge = ChargeRecord.From(requestId, stored);
                }

                if (charge!.Refunded)
                {
                    return false;
                }

                charge.Refunded = true;
                var account = _accounts[charge.Account];
                account.Roll(MonthKey(now));
                account.Balance += charge.Amount;
                account.Unspend(charge);

                write = AppendEntry(account, McpGuardLedgerEntryKind.Refund, charge.Amount, charge.Tool, requestId, now, charge.Free, null);
                KeepUntilDurable(charge);
            }
        }

        _journal.Flush();
        await write;
        return true;
    }

    public async ValueTask<McpGuardLedgerEntry?> CaptureAsync(string requestId, long amountMicro, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(amountMicro);
        McpGuardLedgerEntry capture;
        Task write;
        lock (_lock)
        {
            ThrowIfFaulted();
            if (!_holds.Remove(requestId, out var held))
            {
                return null;
            }

            var hold = held.Charge;

            // The whole hold back, then what was used, in one write: the month's spend counts the capture instead of the hold.
            var release = ReleaseRow(hold, now);
            var account = _accounts[hold.Account];
            hold.Amount = Math.Min(amountMicro, hold.Amount);
            account.Balance -= hold.Amount;
            account.Spend(hold);
            capture = NewEntry(account, McpGuardLedgerEntryKind.Capture, -hold.Amount, hold.Tool, requestId, now, false, null);
            write = Append(new JournalWrite { Preceding = release, Entry = capture, Totals = account.Totals });
            KeepUntilDurable(hold);
        }

        _journal.Flush();
        await write;
        return capture;
    }

    public async ValueTask<int> ReleaseReservationsAsync(DateTimeOffset placedBefore, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var writes = new List<Task>();
        lock (_lock)
        {
            ThrowIfFaulted();
            foreach (var hold in _holds.Values.Where(h => h.Placed < placedBefore).Select(h => h.Charge).ToList())
            {
                _holds.Remove(hold.RequestId);
                writes.Add(Release(hold, now));
                hold.Refunded = true;
            }
        }

        if (writes.Count == 0)
        {
            return 0;
        }

        _journal.Flush();
        await Task.WhenAll(writes);
        return writes.Count;
    }

    /// <summary>Under the lock: gives a hold (taken out of <see cref="_holds"/>) back to its account with a release row.</summary>
    private Task Release(ChargeRecord hold, DateTimeOffset now)
    {
        var release = ReleaseRow(hold, now);
        var write = Append(new JournalWrite { Entry = release, Totals = _accounts[hold.Account].Totals });
        KeepUntilDurable(hold);
        return write;
    }

    /// <summary>Under the lock: the hold back in its account's balance (and out of the month's spend), and its release row, not yet written.</summary>
    private McpGuardLedgerEntry ReleaseRow(ChargeRecord hold, DateTimeOffset now)
    {
        var account = _accounts[hold.Account];
        account.Roll(MonthKey(now));
        account.Balance += hold.Amount;
        account.Unspend(hold);
        return NewEntry(account, McpGuardLedgerEntryKind.Release, hold.Amount, hold.Tool, hold.RequestId, now, false, null);
    }

    /// <summary>
    /// Under the lock, after a charge's latest row (a refund, a release, a capture) was appended: the charge stays held by
    /// request id until that row is durable too (until then, the journal would not know of it), or is held again when it
    /// had already left memory.
    /// </summary>
    private void KeepUntilDurable(ChargeRecord charge)
    {
        if (_recent.ContainsKey(charge.RequestId))
        {
            charge.Sequence = _appended;
        }
        else
        {
            Remember(charge);
        }
    }

    public async ValueTask<McpGuardLedgerEntry> TopUpAsync(string account, long amountMicro, string? note, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(amountMicro);
        return await MoveAsync(account, McpGuardLedgerEntryKind.TopUp, amountMicro, note, now);
    }

    public async ValueTask<McpGuardLedgerEntry> AdjustAsync(string account, long amountMicro, string note, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(note);
        return await MoveAsync(account, McpGuardLedgerEntryKind.Adjustment, amountMicro, note, now);
    }

    private async ValueTask<McpGuardLedgerEntry> MoveAsync(string accountId, McpGuardLedgerEntryKind kind, long amount, string? note, DateTimeOffset now)
    {
        McpGuardLedgerEntry entry;
        var writes = new List<Task>(2);
        try
        {
            lock (_lock)
            {
                ThrowIfFaulted();
                var account = GetOrCreate(accountId, now, out var created);
                AddIfAny(writes, created);
                if (account.Balance + amount < 0)
                {
                    throw new InvalidOperationException($"An adjustment of {amount} would take account '{accountId}' below zero (balance {account.Balance}).");
                }

                account.Balance = checked(account.Balance + amount);
                entry = NewEntry(account, kind, amount, null, null, now, false, note);
                writes.Add(Append(new JournalWrite { Entry = entry, Totals = account.Totals }));
            }
        }
        finally
        {
            // A new account's row is queued even when the move is refused.
            _journal.Flush();
        }

        await Task.WhenAll(writes);
        return entry;
    }

    public ValueTask<McpGuardAccount?> GetAccountAsync(string account, int freeCallsPerMonth, DateTimeOffset now, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            ThrowIfFaulted();
            if (!_accounts.TryGetValue(account, out var state))
            {
                return ValueTask.FromResult<McpGuardAccount?>(null);
            }

            var month = MonthKey(now);
            var spent = state.Month == month ? state.MonthSpent : 0;
            var free = state.Month == month ? state.MonthFree : 0;
            return ValueTask.FromResult<McpGuardAccount?>(new McpGuardAccount(state.Id, state.Balance, state.Cap, spent, Math.Max(0, freeCallsPerMonth - free)));
        }
    }

    public async ValueTask SetMonthlyCapAsync(string account, long? capMicro, CancellationToken cancellationToken)
    {
        if (capMicro is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(capMicro), capMicro, "A cap is zero or more micro-units.");
        }

        await UpdateAccountAsync(account, state => state.Cap = capMicro);
    }

    private async ValueTask UpdateAccountAsync(string accountId, Action<AccountState> change)
    {
        var writes = new List<Task>(2);
        lock (_lock)
        {
            ThrowIfFaulted();
            var account = GetOrCreate(accountId, _clock.GetUtcNow(), out var created);
            AddIfAny(writes, created);
            change(account);
            writes.Add(Append(new JournalWrite { Account = new(account.Id, account.Cap, account.Created) }));
        }

        _journal.Flush();
        await Task.WhenAll(writes);
    }

    public async ValueTask<McpGuardLedgerPage> GetLedgerAsync(string account, long? before, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var rows = await _journal.ReadAsync(account, before, limit + 1, cancellationToken);
        var page = rows.Take(limit).ToList();
        return new McpGuardLedgerPage(page, rows.Count > limit ? page[^1].Id : null);
    }

    public ValueTask<IReadOnlyList<McpGuardLedgerTotal>> GetTotalsAsync(DateTimeOffset start, DateTimeOffset until, TimeSpan bucket, CancellationToken cancellationToken)
    {
        LedgerTotals.Check(start, until, bucket);
        return _journal.TotalsAsync(start, until, bucket, cancellationToken);
    }

    /// <summary>
    /// Checks the money invariant for every account: its balance equals what its rows add up to (top-ups, less usage,
    /// plus refunds and adjustments, rolled-up rows included), and its last row's balance-after equals its balance. The
    /// balances are taken under the lock with the last row id; the rows are summed once everything up to it is durable.
    /// </summary>
    public async ValueTask<LedgerCheck> VerifyAsync(CancellationToken cancellationToken)
    {
        Dictionary<string, long> balances;
        long lastId;
        Task lastWrite;
        lock (_lock)
        {
            ThrowIfFaulted();
            balances = _accounts.ToDictionary(a => a.Key, a => a.Value.Balance, StringComparer.Ordinal);
            lastId = _lastId;
            lastWrite = _lastWrite;
        }

        // The journal commits in order: once the last change made before the snapshot is durable, every row up to it is.
        _journal.Flush();
        await lastWrite.WaitAsync(cancellationToken);

        var sums = await _journal.SumAsync(lastId, cancellationToken);
        var differences = new List<LedgerDifference>();
        foreach (var account in balances.Keys.Union(sums.Keys).Order(StringComparer.Ordinal))
        {
            var balance = balances.GetValueOrDefault(account);
            var rows = sums.GetValueOrDefault(account) ?? new LedgerSums(0, 0, 0, 0, 0, null);
            if (rows.Total != balance || (rows.LastBalanceAfter is { } after && after != balance))
            {
                differences.Add(new LedgerDifference(account, balance, rows));
            }
        }

        return new LedgerCheck(balances.Count, sums.Values.Sum(s => s.Rows), lastId, differences);
    }

    /// <summary>
    /// Rolls the usage and refund rows written before <paramref name="cutoff"/> into per-account, per-tool, per-day
    /// totals, <paramref name="chunk"/> row ids per commit so no commit holds the writer long. Returns how many rows went.
    /// </summary>
    public async ValueTask<long> RollUpAsync(DateTimeOffset cutoff, int chunk, CancellationToken cancellationToken)
    {
        if (await _journal.FindRowsBeforeAsync(cutoff, cancellationToken) is not var (from, to))
        {
            return 0;
        }

        long rolled = 0;
        for (var start = from; start <= to; start += chunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var rollUp = new LedgerRollUp(start, Math.Min(to, start + chunk - 1));
            Task write;
            lock (_lock)
            {
                ThrowIfFaulted();
                write = Append(new JournalWrite { RollUp = rollUp });
            }

            _journal.Flush();
            await write;
            rolled += rollUp.Rows;
        }

        return rolled;
    }

    public ValueTask DisposeAsync() => _journal.DisposeAsync();

    private void ThrowIfFaulted()
    {
        if (_fault is not null)
        {
            throw new InvalidOperationException("The ledger store failed to write and stopped accepting changes; see the earlier error in the log.", _fault);
        }
    }

    private Task Append(JournalWrite write)
    {
        _appended++;
        return _lastWrite = _journal.AppendAsync(write);
    }

    private Task AppendEntry(AccountState account, McpGuardLedgerEntryKind kind, long amount, string? tool, string? requestId, DateTimeOffset now, bool free, string? note) =>
        Append(new JournalWrite { Entry = NewEntry(account, kind, amount, tool, requestId, now, free, note), Totals = account.Totals });

    /// <summary>
    /// Holds a charge by its request id, then lets go of the oldest held charges beyond <see cref="RecentCapacity"/>
    /// whose rows are durable (the journal finds those). One in, at most a few out: the cost per call stays flat.
    /// </summary>
    private void Remember(ChargeRecord charge)
    {
        charge.Sequence = _appended;
        _recent[charge.RequestId] = charge;
        _recentOrder.Enqueue(charge);
        var committed = _journal.Committed;
        while (_recent.Count > RecentCapacity && _recentOrder.TryPeek(out var oldest) && oldest.Sequence <= committed)
        {
            _recentOrder.Dequeue();
            _recent.Remove(oldest.RequestId);
            _maxEvictedSequence = Math.Max(_maxEvictedSequence, oldest.Sequence);
        }
    }

    private void OnJournalFailed(Exception exception)
    {
        _fault ??= exception;
        Log.JournalFailed(_logger, exception);
    }

    /// <summary>The account, created (and its creation journalled, <paramref name="created"/>) when it is new.</summary>
    private AccountState GetOrCreate(string id, DateTimeOffset now, out Task? created)
    {
        created = null;
        if (!_accounts.TryGetValue(id, out var account))
        {
            _accounts[id] = account = new AccountState(id, now);
            created = Append(new JournalWrite { Account = new(id, null, now) });
        }

        return account;
    }

    private static void AddIfAny(List<Task> writes, Task? write)
    {
        if (write is not null)
        {
            writes.Add(write);
        }
    }

    private McpGuardLedgerEntry NewEntry(AccountState account, McpGuardLedgerEntryKind kind, long amount, string? tool, string? requestId, DateTimeOffset now, bool free, string? note) =>
        new(++_lastId, account.Id, kind, amount, account.Balance, tool, requestId, now, free, note);

    internal static int MonthKey(DateTimeOffset time)
    {
        var utc = time.UtcDateTime;
        return (utc.Year * 12) + utc.Month - 1;
    }

    /// <summary>
    /// Takes up the accounts with their totals as of the journal's last checkpoint, then applies the rows written after it
    /// as the calls that wrote them did: each charge counted in its month, each refund taking its charge back out.
    /// </summary>
    private void Start(LedgerSnapshot snapshot)
    {
        foreach (var stored in snapshot.Accounts)
        {
            _accounts[stored.Id] = new AccountState(stored.Id, stored.Created, stored.Totals) { Cap = stored.Cap };
        }

        var charges = new Dictionary<string, ChargeRecord>(StringComparer.Ordinal);
        foreach (var entry in snapshot.Tail)
        {
            if (!_accounts.TryGetValue(entry.Account, out var account))
            {
                _accounts[entry.Account] = account = new AccountState(entry.Account, entry.Timestamp);
            }

            account.Balance += entry.AmountMicro;
            switch (entry.Kind)
            {
                case McpGuardLedgerEntryKind.Usage when entry.RequestId is { } requestId:
                    var month = MonthKey(entry.Timestamp);
                    account.Roll(month);
                    account.Spend(charges[requestId] = new ChargeRecord(requestId, entry.Account, entry.Tool, -entry.AmountMicro, entry.Free, month));
                    break;
                case McpGuardLedgerEntryKind.Reservation when entry.RequestId is { } requestId:
                    var placed = MonthKey(entry.Timestamp);
                    account.Roll(placed);
                    account.Spend(charges[requestId] = new ChargeRecord(requestId, entry.Account, entry.Tool, -entry.AmountMicro, false, placed));
                    break;
                case McpGuardLedgerEntryKind.Release when entry.RequestId is { } requestId:
                    // The hold given back (its own amount, which a capture after it may not equal), in its reservation's month.
                    var heldIn = ReservedMonth(requestId, charges, entry);
                    account.Roll(MonthKey(entry.Timestamp));
                    account.Unspend(charges[requestId] = new ChargeRecord(requestId, entry.Account, entry.Tool, entry.AmountMicro, false, heldIn));
                    break;
                case McpGuardLedgerEntryKind.Capture when entry.RequestId is { } requestId:
                    // After its release row: the capture counts in the month its reservation was placed.
                    var reservedIn = ReservedMonth(requestId, charges, entry);
                    account.Roll(MonthKey(entry.Timestamp));
                    account.Spend(charges[requestId] = new ChargeRecord(requestId, entry.Account, entry.Tool, -entry.AmountMicro, false, reservedIn));
                    break;
                case McpGuardLedgerEntryKind.Refund when entry.RequestId is { } requestId:
                    var charge = charges.GetValueOrDefault(requestId) ?? (_journal.FindCharge(requestId) is { } stored ? ChargeRecord.From(requestId, stored) : null);
                    account.Roll(MonthKey(entry.Timestamp));
                    if (charge is not null)
                    {
                        account.Unspend(charge);
                    }

                    break;
            }
        }

        foreach (var hold in snapshot.Holds)
        {
            // Held when the process stopped: settled by a capture or refund of a call still running elsewhere (a shared
            // store), or released once older than the upstream timeout (ReleaseReservationsAsync).
            var record = new ChargeRecord(hold.RequestId, hold.Account, hold.Tool, hold.Amount, false, MonthKey(hold.Placed));
            _holds[hold.RequestId] = (record, hold.Placed);
            Remember(record);
        }

        _lastId = snapshot.LastId;
        RowsReadAtStart = snapshot.Tail.Count;
        if (snapshot.Tail.Count > 0)
        {
            _journal.Recovered(snapshot.Tail.Select(e => e.Account).Distinct(StringComparer.Ordinal).ToDictionary(id => id, id => _accounts[id].Totals, StringComparer.Ordinal));
        }
    }

    /// <summary>The month a metered call's reservation was placed in: from the rows read so far, else from the journal.</summary>
    private int ReservedMonth(string requestId, Dictionary<string, ChargeRecord> charges, McpGuardLedgerEntry entry) =>
        charges.TryGetValue(requestId, out var charge) ? charge.Month
        : _journal.FindCharge(requestId)?.ReservedAt is { } placed ? MonthKey(placed)
        : MonthKey(entry.Timestamp);

    private sealed class AccountState(string id, DateTimeOffset created)
    {
        public AccountState(string id, DateTimeOffset created, AccountTotals totals)
            : this(id, created)
        {
            Balance = totals.Balance;
            Month = totals.Month;
            MonthSpent = totals.MonthSpent;
            MonthFree = totals.MonthFree;
        }

        public string Id { get; } = id;

        public DateTimeOffset Created { get; } = created;

        public long Balance { get; set; }

        public long? Cap { get; set; }

        public int Month { get; private set; } = -1;

        public long MonthSpent { get; set; }

        public int MonthFree { get; set; }

        /// <summary>What the journal keeps of this account next to its rows.</summary>
        public AccountTotals Totals => new(Balance, Month, MonthSpent, MonthFree);

        /// <summary>Counts a charge toward this month's spend or free calls, when it was taken this month.</summary>
        public void Spend(ChargeRecord charge) => Count(charge, 1);

        /// <summary>Takes a refunded charge back out of this month's spend or free calls, when it was taken this month.</summary>
        public void Unspend(ChargeRecord charge) => Count(charge, -1);

        /// <summary>Starts a new month's spend and free calls when the calendar month (UTC) changes.</summary>
        public void Roll(int month)
        {
            if (month > Month)
            {
                Month = month;
                MonthSpent = 0;
                MonthFree = 0;
            }
        }

        private void Count(ChargeRecord charge, int sign)
        {
            if (charge.Month != Month)
            {
                return;
            }

            if (charge.Free)
            {
                MonthFree += sign;
            }
            else
            {
                MonthSpent += sign * charge.Amount;
            }
        }
    }

    private sealed class ChargeRecord(string requestId, string account, string? tool, long amount, bool free, int month)
    {
        public string RequestId { get; } = requestId;

        public string Account { get; } = account;

        /// <summary>A charge as the journal holds it, for an id no longer held in memory.</summary>
        public static ChargeRecord From(string requestId, StoredCharge stored) =>
            new(requestId, stored.Account, stored.Tool, stored.Amount, stored.Free, MonthKey(stored.ReservedAt ?? stored.Timestamp));

        public string? Tool { get; } = tool;

        /// <summary>What was debited (0 for a free call): for a reservation, what it holds, then what its capture took.</summary>
        public long Amount { get; set; } = amount;

        public bool Free { get; } = free;

        public int Month { get; } = month;

        public bool Refunded { get; set; }

        /// <summary>The journal sequence of this charge's last row (its usage row, then its refund): durable once the journal committed that many.</summary>
        public long Sequence { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(6901, LogLevel.Critical, "The ledger journal failed to write; the ledger stops accepting changes.", EventName = "JournalFailed")]
        public static partial void JournalFailed(ILogger logger, Exception exception);
    }
}
