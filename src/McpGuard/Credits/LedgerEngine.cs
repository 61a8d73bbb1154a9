using Microsoft.Extensions.Logging;

namespace McpGuard.Credits;

/// <summary>
/// The ledger's rules, over state held in memory and made durable by a <see cref="LedgerJournal"/>.
/// Every change happens under one lock (so a balance can never be spent twice) and is handed to the
/// journal in that same order; the caller is answered only once the journal says the change is durable.
/// </summary>
internal partial class LedgerEngine : IMcpGuardLedgerStore, IAsyncDisposable
{
    private readonly LedgerJournal _journal;
    private readonly TimeProvider _clock;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, AccountState> _accounts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ChargeRecord> _charges = new(StringComparer.Ordinal);
    private long _lastId;
    private Exception? _fault;

    public LedgerEngine(LedgerJournal journal, TimeProvider clock, ILogger logger)
    {
        _journal = journal;
        _clock = clock;
        _logger = logger;
        journal.OnFailed = OnJournalFailed;
        Replay(journal.Load(), clock.GetUtcNow());
    }

    public async ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccountSeed> seeds, DateTimeOffset now, CancellationToken cancellationToken)
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
                var account = GetOrCreate(seed.Account, now, out var created);
                AddIfAny(writes, created);
                account.Cap = seed.MonthlyCapMicro;
                writes.Add(Append(new JournalWrite { Account = new(account.Id, account.Cap, now) }));
                if (seed.InitialBalanceMicro > 0)
                {
                    account.Balance += seed.InitialBalanceMicro;
                    writes.Add(Append(new JournalWrite { Entry = NewEntry(account, McpGuardLedgerEntryKind.TopUp, seed.InitialBalanceMicro, null, null, now, false, "seed") }));
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
                if (_charges.ContainsKey(request.RequestId))
                {
                    return new McpGuardChargeResult(McpGuardChargeOutcome.DuplicateRequest, account.Balance, account.MonthSpent, account.Cap);
                }

                if (request.FreeCallsPerMonth - account.MonthFree > 0)
                {
                    account.Spend(_charges[request.RequestId] = new ChargeRecord(account.Id, request.Tool, 0, true, month));
                    write = Append(new JournalWrite { Entry = NewEntry(account, McpGuardLedgerEntryKind.Usage, 0, request.Tool, request.RequestId, request.Now, true, null) });
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
                    account.Spend(_charges[request.RequestId] = new ChargeRecord(account.Id, request.Tool, request.PriceMicro, false, month));
                    write = Append(new JournalWrite { Entry = NewEntry(account, McpGuardLedgerEntryKind.Usage, -request.PriceMicro, request.Tool, request.RequestId, request.Now, false, null) });
                    result = new McpGuardChargeResult(McpGuardChargeOutcome.Charged, account.Balance, account.MonthSpent, account.Cap);
                }
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
            if (!_charges.TryGetValue(requestId, out var charge) || charge.Refunded)
            {
                return false;
            }

            charge.Refunded = true;
            var account = _accounts[charge.Account];
            account.Roll(MonthKey(now));
            account.Balance += charge.Amount;
            account.Unspend(charge);

            write = Append(new JournalWrite { Entry = NewEntry(account, McpGuardLedgerEntryKind.Refund, charge.Amount, charge.Tool, requestId, now, charge.Free, null) });
        }

        _journal.Flush();
        await write;
        return true;
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
                writes.Add(Append(new JournalWrite { Entry = entry }));
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

    public ValueTask DisposeAsync() => _journal.DisposeAsync();

    private void ThrowIfFaulted()
    {
        if (_fault is not null)
        {
            throw new InvalidOperationException("The ledger store failed to write and stopped accepting changes; see the earlier error in the log.", _fault);
        }
    }

    private Task Append(JournalWrite write) => _journal.AppendAsync(write);

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

    /// <summary>Rebuilds balances, caps, this month's spend and free calls, and charges from what the journal holds.</summary>
    private void Replay(LedgerSnapshot snapshot, DateTimeOffset now)
    {
        foreach (var (id, cap) in snapshot.Accounts)
        {
            _accounts[id] = new AccountState(id, DateTimeOffset.UnixEpoch) { Cap = cap };
        }

        var month = MonthKey(now);
        foreach (var entry in snapshot.Entries)
        {
            _lastId = Math.Max(_lastId, entry.Id);
            if (!_accounts.TryGetValue(entry.Account, out var account))
            {
                _accounts[entry.Account] = account = new AccountState(entry.Account, entry.Timestamp);
            }

            account.Roll(month);
            account.Balance += entry.AmountMicro;
            switch (entry.Kind)
            {
                case McpGuardLedgerEntryKind.Usage when entry.RequestId is { } requestId:
                    account.Spend(_charges[requestId] = new ChargeRecord(entry.Account, entry.Tool, -entry.AmountMicro, entry.Free, MonthKey(entry.Timestamp)));
                    break;
                case McpGuardLedgerEntryKind.Refund when entry.RequestId is { } requestId && _charges.TryGetValue(requestId, out var charge):
                    charge.Refunded = true;
                    account.Unspend(charge);
                    break;
            }
        }
    }

    private sealed class AccountState(string id, DateTimeOffset created)
    {
        public string Id { get; } = id;

        public DateTimeOffset Created { get; } = created;

        public long Balance { get; set; }

        public long? Cap { get; set; }

        public int Month { get; private set; } = -1;

        public long MonthSpent { get; set; }

        public int MonthFree { get; set; }

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

    private sealed class ChargeRecord(string account, string? tool, long amount, bool free, int month)
    {
        public string Account { get; } = account;

        public string? Tool { get; } = tool;

        /// <summary>What was debited (0 for a free call).</summary>
        public long Amount { get; } = amount;

        public bool Free { get; } = free;

        public int Month { get; } = month;

        public bool Refunded { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(6901, LogLevel.Critical, "The ledger journal failed to write; the ledger stops accepting changes.", EventName = "JournalFailed")]
        public static partial void JournalFailed(ILogger logger, Exception exception);
    }
}
