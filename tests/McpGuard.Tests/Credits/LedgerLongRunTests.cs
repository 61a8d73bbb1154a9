using CsCheck;
using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Credits;

/// <summary>
/// The ledger run for months (issue #17): what it holds in memory is bounded by live state, a start reads the accounts'
/// totals and not the rows, old rows roll into daily totals, and the money invariant is checked on demand. Every
/// property is checked against the behaviour the ledger had when it held everything: a model that keeps every charge.
/// </summary>
public sealed class LedgerLongRunTests : IAsyncLifetime
{
    private static readonly DateTimeOffset January5 = new(2026, 1, 5, 10, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _clock = new(January5);
    private readonly List<StoreUnderTest> _stores = [];
    private readonly List<string> _paths = [];

    public static TheoryData<string> Stores => new() { nameof(McpGuardStoreKind.InMemory), nameof(McpGuardStoreKind.Sqlite) };

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        _paths.ForEach(LedgerFile.Delete);
    }

    // ---- memory bounded by live state ----

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Memory_holds_a_bounded_number_of_charges_however_many_are_taken(string kindName)
    {
        var store = Open(Enum.Parse<McpGuardStoreKind>(kindName), recentCapacity: 64);
        await store.Engine.TopUpAsync("a", 1_000_000, null, _clock.GetUtcNow(), default);

        for (var i = 0; i < 2_000; i++)
        {
            Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync("a", $"req_{i}", 10, newId: true)).Outcome);
        }

        Assert.Equal(64, store.Engine.RecentCount);

        // A burst from many callers at once: charges whose rows are still being written stay held until they are durable;
        // the next charge lets go of every durable one beyond the capacity.
        await Task.WhenAll(Enumerable.Range(0, 500).Select(i => Task.Run(async () => await store.ChargeAsync("a", $"burst_{i}", 10, newId: true))));
        await store.ChargeAsync("a", "after-burst", 10, newId: true);
        Assert.Equal(64, store.Engine.RecentCount);
        ValueAssert.Equal(new McpGuardAccount("a", 1_000_000 - (2_501 * 10), null, 2_501 * 10, 0), await store.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_client_id_is_still_a_duplicate_and_still_refundable_once_it_left_memory(string kindName)
    {
        var store = Open(Enum.Parse<McpGuardStoreKind>(kindName), recentCapacity: 8);
        await store.Engine.TopUpAsync("a", 10_000, null, _clock.GetUtcNow(), default);
        await store.ChargeAsync("a", "order-42", 700, tool: "report");
        for (var i = 0; i < 100; i++)
        {
            await store.ChargeAsync("a", $"req_{i}", 10, newId: true);
        }

        Assert.Equal(8, store.Engine.RecentCount);

        // The id the client sent is refused again, looked up in the store; nothing moves.
        ValueAssert.Equal(new McpGuardChargeResult(McpGuardChargeOutcome.DuplicateRequest, 8_300, 1_700, null), await store.ChargeAsync("a", "order-42", 700, tool: "report"));

        // Its refund (a call that outlived the recent window) finds the charge in the store, once.
        Assert.True(await store.Engine.RefundAsync("order-42", _clock.GetUtcNow(), default));
        Assert.False(await store.Engine.RefundAsync("order-42", _clock.GetUtcNow(), default));
        Assert.False(await store.Engine.RefundAsync("never-charged", _clock.GetUtcNow(), default));
        ValueAssert.Equal(new McpGuardAccount("a", 9_000, null, 1_000, 0), await store.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default));
        var rows = await store.RowsAsync("a");
        Assert.Equal(
            [new Row("a", "Usage", -700, 9_300, "report", "order-42", false, null), new Row("a", "Refund", 700, 9_000, "report", "order-42", false, null)],
            rows.Where(r => r.RequestId == "order-42"));
        Assert.Empty((await store.Engine.VerifyAsync(default)).Differences);
    }

    [Fact]
    public async Task A_charge_whose_row_is_not_durable_yet_stays_held_so_a_repeat_at_the_same_time_is_refused()
    {
        // The engine holds one charge, and lets go of a charge only once its row is committed: until then the store could
        // not find it. Many callers at once, each id sent twice among charges with new ids, so charges leave memory all the
        // time while others are being written. Every id is charged once and the journal never meets a repeated row.
        var store = Open(McpGuardStoreKind.Sqlite, recentCapacity: 1);
        await store.Engine.TopUpAsync("a", 100_000_000, null, _clock.GetUtcNow(), default);

        // Round r sends twice-r first and twice-(r-1) last, so other charges come between an id's two sends.
        static string IdOf(int round, int i) => i switch { 0 => $"twice-{round}", 5 => $"twice-{round - 1}", _ => $"req_{round}_{i}" };
        var results = await Task.WhenAll(Enumerable.Range(1, 400).SelectMany(round => Enumerable.Range(0, 6).Select(i => Task.Run(async () =>
            (Id: IdOf(round, i), (await store.ChargeAsync("a", IdOf(round, i), 10, newId: i is > 0 and < 5)).Outcome)))));

        Assert.All(results.Where(r => r.Id.StartsWith("req_", StringComparison.Ordinal)), r => Assert.Equal(McpGuardChargeOutcome.Charged, r.Outcome));
        Assert.All(
            results.Where(r => r.Id.StartsWith("twice-", StringComparison.Ordinal) && r.Id is not ("twice-0" or "twice-400")).GroupBy(r => r.Id),
            pair => Assert.Equal([McpGuardChargeOutcome.Charged, McpGuardChargeOutcome.DuplicateRequest], pair.Select(r => r.Outcome).Order()));
        Assert.Empty((await store.Engine.VerifyAsync(default)).Differences);
    }

    [Fact]
    public async Task A_repeat_whose_first_charge_is_committed_and_leaves_memory_during_its_look_up_is_refused()
    {
        // The look-up of a client's id runs outside the engine's lock. Here it is held just after it found nothing, while
        // the same id is charged by another call, committed, and pushed out of memory by a third charge: the engine must
        // see that a charge committed after its look-up began has left memory, and look again under the lock.
        var path = NewPath();
        var journal = new PausingJournal(new SqliteJournal(new McpGuard.Storage.SqliteDatabase(path)), pauseOn: "order-7");
        await using var engine = new LedgerEngine(journal, _clock, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, recentCapacity: 1);
        await engine.TopUpAsync("a", 10_000, null, _clock.GetUtcNow(), default);
        McpGuardChargeRequest Charge(string id, bool newId) => new("a", id, "add", 100, 0, _clock.GetUtcNow(), newId);

        var first = Task.Run(async () => await engine.ChargeAsync(Charge("order-7", newId: false), default));
        Assert.True(journal.Paused.Wait(TimeSpan.FromSeconds(10)), "The first look-up never ran.");
        Assert.Equal(McpGuardChargeOutcome.Charged, (await engine.ChargeAsync(Charge("order-7", newId: false), default)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await engine.ChargeAsync(Charge("req_next", newId: true), default)).Outcome);
        Assert.Equal(1, engine.RecentCount);
        journal.Resume.Set();

        ValueAssert.Equal(new McpGuardChargeResult(McpGuardChargeOutcome.DuplicateRequest, 9_800, 200, null), await first.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Single(LedgerFile.Rows(path), r => r.RequestId == "order-7");
        Assert.Empty((await engine.VerifyAsync(default)).Differences);
    }

    /// <summary>The SQLite journal, with the first look-up of one id held after it ran until the test lets it go.</summary>
    private sealed class PausingJournal : LedgerJournal
    {
        private readonly SqliteJournal _inner;
        private readonly string _pauseOn;
        private int _paused;

        public PausingJournal(SqliteJournal inner, string pauseOn)
        {
            _inner = inner;
            _pauseOn = pauseOn;
            inner.OnFailed = e => OnFailed?.Invoke(e);
        }

        public ManualResetEventSlim Paused { get; } = new();

        public ManualResetEventSlim Resume { get; } = new();

        public override long Committed => _inner.Committed;

        public override LedgerSnapshot Load() => _inner.Load();

        public override Task AppendAsync(JournalWrite write) => _inner.AppendAsync(write);

        public override void Flush() => _inner.Flush();

        public override StoredCharge? FindCharge(string requestId)
        {
            var found = _inner.FindCharge(requestId);
            if (requestId == _pauseOn && Interlocked.Exchange(ref _paused, 1) == 0)
            {
                Paused.Set();
                Resume.Wait(TimeSpan.FromSeconds(10));
            }

            return found;
        }

        public override ValueTask<IReadOnlyList<McpGuardLedgerEntry>> ReadAsync(string account, long? before, int limit, CancellationToken cancellationToken) =>
            _inner.ReadAsync(account, before, limit, cancellationToken);

        public override ValueTask<IReadOnlyDictionary<string, LedgerSums>> SumAsync(long lastId, CancellationToken cancellationToken) =>
            _inner.SumAsync(lastId, cancellationToken);

        public override ValueTask<IReadOnlyList<McpGuardLedgerTotal>> TotalsAsync(DateTimeOffset from, DateTimeOffset to, TimeSpan bucket, CancellationToken cancellationToken) =>
            _inner.TotalsAsync(from, to, bucket, cancellationToken);

        public override async ValueTask DisposeAsync()
        {
            await _inner.DisposeAsync();
            await base.DisposeAsync();
        }
    }

    // ---- restart in seconds ----

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_start_reads_the_rows_after_the_last_checkpoint_and_not_the_history(bool crash)
    {
        // A clean stop writes a checkpoint: the next start reads no row. A crash (the files copied while the ledger runs,
        // as a kill would leave them) leaves the rows after the last checkpoint (every 100 rows here) to apply on top.
        async Task<(long RowsRead, McpGuardAccount Before, McpGuardAccount After)> RestartAfterAsync(int charges)
        {
            var path = NewPath();
            McpGuardAccount before;
            var first = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path, checkpointEvery: 100);
            var reopen = path;
            try
            {
                await first.Engine.TopUpAsync("a", 10_000_000, null, _clock.GetUtcNow(), default);
                for (var i = 0; i < charges; i++)
                {
                    await first.ChargeAsync("a", $"c{i}", 3, freeCalls: 5, newId: true);
                    if (i % 10 == 0)
                    {
                        await first.Engine.RefundAsync($"c{i}", _clock.GetUtcNow(), default);
                    }
                }

                before = (await first.Engine.GetAccountAsync("a", 5, _clock.GetUtcNow(), default))!;
                if (crash)
                {
                    reopen = CopyAsACrashLeavesIt(path);
                }
            }
            finally
            {
                await first.DisposeAsync();
            }

            var second = Open(McpGuardStoreKind.Sqlite, path: reopen, checkpointEvery: 100);
            return (second.Engine.RowsReadAtStart, before, (await second.Engine.GetAccountAsync("a", 5, _clock.GetUtcNow(), default))!);
        }

        var small = await RestartAfterAsync(20);
        var large = await RestartAfterAsync(3_000);

        // 20 charges and 2 refunds, then 3,000 charges and 300 refunds: 23 and 3,301 rows, the top-up included.
        Assert.Equal(crash ? (23L, 3_301L % 100) : (0L, 0L), (small.RowsRead, large.RowsRead));
        ValueAssert.Equal(small.Before, small.After);
        ValueAssert.Equal(large.Before, large.After);

        // c0 to c5 free (c0 refunded, giving its free call back), 2,994 paid of which 299 refunded.
        ValueAssert.Equal(new McpGuardAccount("a", 10_000_000 - ((3_000 - 6 - 299) * 3), null, (3_000 - 6 - 299) * 3, 0), large.After);
    }

    /// <summary>A copy of a ledger file as a kill would leave it: the database and its WAL, without the shared-memory index.</summary>
    private string CopyAsACrashLeavesIt(string path)
    {
        var copy = NewPath();
        File.Copy(path, copy);
        File.Copy(path + "-wal", copy + "-wal");
        return copy;
    }

    [Fact]
    public async Task A_version_2_file_gets_the_totals_its_rows_add_up_to()
    {
        // The same history written by this version, then taken back to version 2 (no totals, no daily table): the
        // migration must compute what the engine kept, for every account, whatever the months, refunds and free calls.
        var path = NewPath();
        var accounts = new Dictionary<string, McpGuardAccount>();
        await using (var first = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path))
        {
            await first.Engine.SeedAsync([new McpGuardAccount("a", 50_000, 40_000, 0, 0), new McpGuardAccount("b", 900, null, 0, 0), new McpGuardAccount("idle", 0, 5, 0, 0)], _clock.GetUtcNow(), default);
            await first.ChargeAsync("a", "jan-1", 1_000, freeCalls: 1);
            await first.ChargeAsync("a", "jan-2", 1_000, freeCalls: 1);
            _clock.Advance(TimeSpan.FromDays(30)); // February
            await first.ChargeAsync("a", "feb-free", 700, freeCalls: 2);
            await first.ChargeAsync("a", "feb-free-refunded", 700, freeCalls: 2);
            Assert.True(await first.Engine.RefundAsync("feb-free-refunded", _clock.GetUtcNow(), default));
            await first.ChargeAsync("a", "feb-1", 700, freeCalls: 1);
            await first.ChargeAsync("a", "feb-2", 300, freeCalls: 1);
            Assert.True(await first.Engine.RefundAsync("feb-2", _clock.GetUtcNow(), default));
            Assert.True(await first.Engine.RefundAsync("jan-2", _clock.GetUtcNow(), default)); // January's refund, in February
            await first.ChargeAsync("b", "b-1", 400);
            await first.Engine.AdjustAsync("b", -100, "correction", _clock.GetUtcNow(), default);
            foreach (var id in new[] { "a", "b", "idle" })
            {
                accounts[id] = (await first.Engine.GetAccountAsync(id, 2, _clock.GetUtcNow(), default))!;
            }
        }

        using (var connection = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            connection.Open();
            McpGuard.Storage.SqliteDatabase.Execute(connection, """
                ALTER TABLE accounts DROP COLUMN balance; ALTER TABLE accounts DROP COLUMN month;
                ALTER TABLE accounts DROP COLUMN month_spent; ALTER TABLE accounts DROP COLUMN month_free;
                DROP TABLE ledger_daily; DROP TABLE ledger_checkpoint; DROP TABLE ledger_holds; ALTER TABLE api_keys DROP COLUMN max_price;
                PRAGMA user_version = 2;
                """);
        }

        var second = Open(McpGuardStoreKind.Sqlite, path: path);
        Assert.Equal(4, LedgerFile.Scalar(path, "PRAGMA user_version;"));
        foreach (var (id, expected) in accounts)
        {
            ValueAssert.Equal(expected, await second.Engine.GetAccountAsync(id, 2, _clock.GetUtcNow(), default));
        }

        ValueAssert.Equal(new McpGuardAccount("a", 50_000 - 700, 40_000, 700, 1), accounts["a"]);
        ValueAssert.Equal(new McpGuardAccount("b", 900 - 400 - 100, null, 400, 2), accounts["b"]);
        Assert.Empty((await second.Engine.VerifyAsync(default)).Differences);
    }

    // ---- the model: every sequence of calls, refunds, top-ups, months and restarts ----

    [Fact]
    public async Task Charges_refunds_restarts_and_months_agree_with_a_ledger_that_keeps_everything()
    {
        // Each case: a fresh SQLite file and an engine that holds only 3 recent charges and checkpoints every 4 rows,
        // driven by a generated sequence (charges, refunds, top-ups, days passing, retention passes, clean restarts and
        // crashes) against a
        // model that keeps every charge forever (the ledger's behaviour before issue #17). Outcomes, balances, month spend
        // and free calls must agree after every step, and the invariant must hold at the end.
        var operation = Gen.Select(Gen.Int[0, 9], Gen.Int[0, 1], Gen.Int[-1, 5], Gen.Int[1, 400], Gen.Int[0, 2])
            .Select((kind, account, slot, amount, free) => new ModelOperation(kind, account, slot, amount, free));
        var cases = 0;
        await operation.Array[1, 60].SampleAsync(
            async operations =>
            {
                Interlocked.Increment(ref cases);
                await RunAgainstModelAsync(operations);
            },
            iter: 150,
            threads: 1,
            seed: TestSeeds.Next());
        TestReport.Write($"Ledger model: {cases} sequences of up to 60 steps agreed with a ledger that keeps everything.");
    }

    private sealed record ModelOperation(int Kind, int Account, int Slot, int Amount, int FreeCalls);

    private async Task RunAgainstModelAsync(ModelOperation[] operations)
    {
        var clock = new FakeTimeProvider(January5);
        var path = NewPath();
        var store = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, clock, path, recentCapacity: 3, checkpointEvery: 4);
        var abandoned = new List<StoreUnderTest>();
        var model = new KeepEverythingLedger();
        var newIds = new List<string>();
        var made = 0;
        var generation = 0;
        try
        {
            string[] accounts = ["a", "b"];
            foreach (var account in accounts)
            {
                await store.Engine.TopUpAsync(account, 1_000, null, clock.GetUtcNow(), default);
                model.TopUp(account, 1_000);
            }

            foreach (var op in operations)
            {
                var account = accounts[op.Account];
                var now = clock.GetUtcNow();
                switch (op.Kind)
                {
                    case <= 3: // a charge: one of a few client ids (repeats happen), or an id McpGuard made
                        var newId = op.Slot < 0;
                        var id = newId ? $"req_{made++}" : $"client-{op.Slot}-{generation}";
                        if (newId)
                        {
                            newIds.Add(id);
                        }

                        var expected = model.Charge(account, id, op.Amount, op.FreeCalls, now);
                        var actual = await store.ChargeAsync(account, id, op.Amount, op.FreeCalls, now: now, newId: newId);
                        Assert.Equal(expected, actual.Outcome);
                        break;
                    case <= 5: // a refund of a client id or of a made one
                        var target = op.Slot < 0 && newIds.Count > 0 ? newIds[op.Amount % newIds.Count] : $"client-{Math.Max(op.Slot, 0)}-{generation}";
                        Assert.Equal(model.Refund(target, now), await store.Engine.RefundAsync(target, now, default));
                        break;
                    case 6:
                        await store.Engine.TopUpAsync(account, op.Amount, null, now, default);
                        model.TopUp(account, op.Amount);
                        break;
                    case 7 when op.Amount % 2 == 0: // a clean restart on the same file
                        await store.DisposeAsync();
                        store = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, clock, path, recentCapacity: 3, checkpointEvery: 4);
                        break;
                    case 7: // a crash: go on from the files as they are now, without a clean stop
                        abandoned.Add(store);
                        path = CopyAsACrashLeavesIt(path);
                        store = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, clock, path, recentCapacity: 3, checkpointEvery: 4);
                        break;
                    case 8: // time passes: days, sometimes into the next month
                        clock.Advance(TimeSpan.FromDays(op.Amount % 45));
                        break;
                    default: // a retention pass: money stays; the ids used so far are not used again (a rolled-up id is free)
                        await store.Engine.RollUpAsync(now.AddDays(-(op.Amount % 20)), chunk: 1 + (op.Amount % 5), default);
                        generation++;
                        newIds.Clear();
                        break;
                }

                foreach (var each in accounts)
                {
                    var (balance, spent, freeLeft) = model.Account(each, op.FreeCalls, clock.GetUtcNow());
                    ValueAssert.Equal(new McpGuardAccount(each, balance, null, spent, freeLeft), await store.Engine.GetAccountAsync(each, op.FreeCalls, clock.GetUtcNow(), default));
                }
            }

            Assert.Empty((await store.Engine.VerifyAsync(default)).Differences);
            Assert.True(store.Engine.RecentCount <= 3, $"{store.Engine.RecentCount} charges held.");
        }
        finally
        {
            await store.DisposeAsync();
            foreach (var old in abandoned)
            {
                await old.DisposeAsync();
            }
        }
    }

    /// <summary>The ledger's rules over a full history: every charge kept, spend and free calls recomputed from them.</summary>
    private sealed class KeepEverythingLedger
    {
        private readonly Dictionary<string, long> _balances = new(StringComparer.Ordinal);
        private readonly Dictionary<string, (string Account, long Amount, bool Free, int Month, bool Refunded)> _charges = new(StringComparer.Ordinal);

        public void TopUp(string account, long amount) => _balances[account] = _balances.GetValueOrDefault(account) + amount;

        public McpGuardChargeOutcome Charge(string account, string id, long price, int freeCalls, DateTimeOffset now)
        {
            var (balance, _, freeLeft) = Account(account, freeCalls, now);
            if (_charges.ContainsKey(id))
            {
                return McpGuardChargeOutcome.DuplicateRequest;
            }

            if (freeLeft > 0)
            {
                _charges[id] = (account, 0, true, LedgerEngine.MonthKey(now), false);
                return McpGuardChargeOutcome.Free;
            }

            if (balance < price)
            {
                return McpGuardChargeOutcome.OutOfCredit;
            }

            _balances[account] = balance - price;
            _charges[id] = (account, price, false, LedgerEngine.MonthKey(now), false);
            return McpGuardChargeOutcome.Charged;
        }

        public bool Refund(string id, DateTimeOffset now)
        {
            if (!_charges.TryGetValue(id, out var charge) || charge.Refunded)
            {
                return false;
            }

            _charges[id] = charge with { Refunded = true };
            _balances[charge.Account] += charge.Amount;
            return true;
        }

        public (long Balance, long Spent, int FreeLeft) Account(string account, int freeCalls, DateTimeOffset now)
        {
            var month = LedgerEngine.MonthKey(now);
            var thisMonth = _charges.Values.Where(c => c.Account == account && c.Month == month && !c.Refunded).ToList();
            return (_balances.GetValueOrDefault(account), thisMonth.Where(c => !c.Free).Sum(c => c.Amount), Math.Max(0, freeCalls - thisMonth.Count(c => c.Free)));
        }
    }

    // ---- the money invariant, checked on demand ----

    [Fact]
    public async Task The_invariant_check_finds_a_planted_difference_and_nothing_else()
    {
        var path = NewPath();
        var store = Open(McpGuardStoreKind.Sqlite, path: path);
        await store.Engine.SeedAsync([new McpGuardAccount("a", 5_000, null, 0, 0), new McpGuardAccount("b", 2_000, null, 0, 0)], _clock.GetUtcNow(), default);
        await store.ChargeAsync("a", "a-1", 800);
        await store.ChargeAsync("b", "b-1", 300);
        await store.ChargeAsync("b", "b-2", 300);
        Assert.True(await store.Engine.RefundAsync("b-2", _clock.GetUtcNow(), default));
        await store.Engine.AdjustAsync("b", -50, "goodwill reversed", _clock.GetUtcNow(), default);

        var clean = await store.Engine.VerifyAsync(default);
        Assert.Equal((2, 7L, 7L), (clean.AccountsChecked, clean.RowsChecked, clean.AsOfId));
        Assert.Empty(clean.Differences);

        // Someone edits the file behind the ledger's back: b's first usage row now says 290, not 300.
        using (var connection = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            connection.Open();
            McpGuard.Storage.SqliteDatabase.Execute(connection, "UPDATE ledger SET amount = -290 WHERE request_id = 'b-1' AND kind = 'Usage';");
        }

        var planted = await store.Engine.VerifyAsync(default);
        var difference = Assert.Single(planted.Differences);
        Assert.Equal(new LedgerDifference("b", 1_650, new LedgerSums(2_000, -590, 300, -50, 5, 1_650)), difference);
        Assert.Equal(1_660, difference.Rows.Total);
    }

    [Fact]
    public async Task Charges_go_on_while_the_invariant_check_reads_a_large_ledger()
    {
        // 300,000 rows written straight into the file (with the totals and checkpoint they imply). The check reads them
        // in a snapshot that never takes the file's write lock: charges made meanwhile commit before it ends. Under a
        // write transaction they would all wait for it (and fail after SQLite's 5 s busy timeout).
        var path = NewPath();
        await using (var seeded = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path))
        {
            await seeded.Engine.TopUpAsync("a", 1_000_000_000, null, _clock.GetUtcNow(), default);
        }

        using (var connection = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            connection.Open();
            McpGuard.Storage.SqliteDatabase.Execute(connection, """
                BEGIN;
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
                INSERT INTO ledger (id, account, kind, amount, balance_after, tool, request_id, free, note, created_at)
                SELECT i + 1, 'a', 'Usage', -1, 1000000000 - i, 'add', 'gen-' || i, 0, NULL, '2026-01-05T10:00:00.0000000Z' FROM n;
                UPDATE accounts SET balance = 1000000000 - 300000, month = 24312, month_spent = 300000 WHERE id = 'a';
                UPDATE ledger_checkpoint SET last_id = 300001;
                COMMIT;
                PRAGMA wal_checkpoint(TRUNCATE);
                """);
        }

        var store = Open(McpGuardStoreKind.Sqlite, path: path);
        await store.ChargeAsync("a", "warm-up", 1, newId: true);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var check = store.Engine.VerifyAsync(default).AsTask();
        var during = 0;
        while (!check.IsCompleted)
        {
            Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync("a", $"during-{during}", 1, newId: true)).Outcome);
            if (!check.IsCompleted)
            {
                during++;
            }
        }

        var result = await check;
        Assert.Empty(result.Differences);
        Assert.Equal(300_002, result.RowsChecked);
        Assert.True(during >= 3, $"Only {during} charges committed while the check read the ledger ({watch.ElapsedMilliseconds} ms).");
    }

    // ---- history that stays useful and bounded ----

    [Fact]
    public async Task Rows_older_than_the_retention_roll_into_daily_totals_and_the_money_stays_the_same()
    {
        var path = NewPath();
        var store = Open(McpGuardStoreKind.Sqlite, path: path);
        await store.Engine.SeedAsync([new McpGuardAccount("a", 10_000, null, 0, 0)], _clock.GetUtcNow(), default);
        await store.ChargeAsync("a", "jan5-1", 100, tool: "add");
        await store.ChargeAsync("a", "jan5-2", 100, tool: "add");
        await store.ChargeAsync("a", "jan5-3", 250, tool: "report");
        Assert.True(await store.Engine.RefundAsync("jan5-2", _clock.GetUtcNow(), default));
        _clock.Advance(TimeSpan.FromDays(1));
        await store.ChargeAsync("a", "jan6-1", 100, tool: "add");
        await store.Engine.TopUpAsync("a", 500, "invoice 3", _clock.GetUtcNow(), default);
        _clock.Advance(TimeSpan.FromDays(40)); // February 15
        await store.ChargeAsync("a", "feb-1", 100, tool: "add");
        var before = await store.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default);

        var rolled = await store.Engine.RollUpAsync(_clock.GetUtcNow().AddDays(-30), chunk: 2, default);

        Assert.Equal(5, rolled);
        Assert.Equal(
            [("TopUp", 10_000L, "seed"), ("TopUp", 500L, "invoice 3"), ("Usage", -100L, "feb-1")],
            LedgerFile.Rows(path).Select(r => (r.Kind, r.Amount, r.Note ?? r.RequestId!)));
        Assert.Equal(
            ["a|2026-01-05|add|Refund|0|1|100|5", "a|2026-01-05|add|Usage|0|2|-200|3", "a|2026-01-05|report|Usage|0|1|-250|4", "a|2026-01-06|add|Usage|0|1|-100|6"],
            LedgerFile.Strings(path, "SELECT account || '|' || day || '|' || tool || '|' || kind || '|' || free || '|' || rows || '|' || amount || '|' || last_id FROM ledger_daily ORDER BY day, tool, kind;"));
        ValueAssert.Equal(before, await store.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default));
        var check = await store.Engine.VerifyAsync(default);
        Assert.Empty(check.Differences);
        Assert.Equal(8, check.RowsChecked); // 3 rows and 5 rolled up

        // Nothing left to roll; a restart keeps the balance; an id whose row was rolled up is free again (documented).
        Assert.Equal(0, await store.Engine.RollUpAsync(_clock.GetUtcNow().AddDays(-30), chunk: 2, default));
        await store.DisposeAsync();
        var reopened = Open(McpGuardStoreKind.Sqlite, path: path);
        ValueAssert.Equal(before, await reopened.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default));
        Assert.Equal(McpGuardChargeOutcome.Charged, (await reopened.ChargeAsync("a", "jan5-1", 100)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.DuplicateRequest, (await reopened.ChargeAsync("a", "feb-1", 100)).Outcome);
        Assert.Empty((await reopened.Engine.VerifyAsync(default)).Differences);
    }

    [Fact]
    public async Task A_charge_whose_usage_row_was_rolled_up_but_not_its_refund_is_neither_charged_nor_refunded_again()
    {
        var path = NewPath();
        var store = Open(McpGuardStoreKind.Sqlite, path: path);
        await store.Engine.TopUpAsync("a", 10_000, null, _clock.GetUtcNow(), default);
        _clock.SetUtcNow(new DateTimeOffset(2026, 1, 5, 23, 59, 59, TimeSpan.Zero));
        await store.ChargeAsync("a", "job-7", 700);
        _clock.Advance(TimeSpan.FromSeconds(2)); // the refund comes on the 6th
        Assert.True(await store.Engine.RefundAsync("job-7", _clock.GetUtcNow(), default));

        // The cut-off falls between the usage row and its refund.
        Assert.Equal(1, await store.Engine.RollUpAsync(new DateTimeOffset(2026, 1, 6, 0, 0, 0, TimeSpan.Zero), chunk: 100, default));
        await store.DisposeAsync();
        var reopened = Open(McpGuardStoreKind.Sqlite, path: path);

        Assert.Equal(McpGuardChargeOutcome.DuplicateRequest, (await reopened.ChargeAsync("a", "job-7", 700)).Outcome);
        Assert.False(await reopened.Engine.RefundAsync("job-7", _clock.GetUtcNow(), default));
        ValueAssert.Equal(new McpGuardAccount("a", 10_000, null, 0, 0), await reopened.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default));
        Assert.Empty((await reopened.Engine.VerifyAsync(default)).Differences);
    }

    [Fact]
    public async Task Row_ids_are_never_reused_when_the_newest_rows_were_rolled_up()
    {
        var path = NewPath();
        var store = Open(McpGuardStoreKind.Sqlite, path: path);
        await store.Engine.TopUpAsync("a", 10_000, null, _clock.GetUtcNow(), default);
        await store.ChargeAsync("a", "old-1", 100);
        await store.ChargeAsync("a", "old-2", 100);
        _clock.Advance(TimeSpan.FromDays(40));
        Assert.Equal(2, await store.Engine.RollUpAsync(_clock.GetUtcNow().AddDays(-30), chunk: 100, default));

        // After a crash (no checkpoint since the start) the newest row left is the top-up, id 1.
        var reopened = Open(McpGuardStoreKind.Sqlite, path: CopyAsACrashLeavesIt(path));
        var entry = await reopened.Engine.TopUpAsync("a", 1, "after", _clock.GetUtcNow(), default);

        Assert.Equal(4, entry.Id);
        Assert.Empty((await reopened.Engine.VerifyAsync(default)).Differences);
    }

    private StoreUnderTest Open(
        McpGuardStoreKind kind, int recentCapacity = LedgerEngine.DefaultRecentCapacity, string? path = null, int checkpointEvery = SqliteJournal.DefaultCheckpointEvery)
    {
        path ??= kind == McpGuardStoreKind.Sqlite ? NewPath() : null;
        var store = StoreUnderTest.Open(kind, _clock, path, recentCapacity, checkpointEvery);
        _stores.Add(store);
        return store;
    }

    private string NewPath()
    {
        var path = LedgerFile.NewPath();
        _paths.Add(path);
        return path;
    }
}
