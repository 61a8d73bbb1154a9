using CsCheck;
using McpGuard.Credits;
using McpGuard.PostgreSql;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.ScaleOut.PostgreSql;

/// <summary>
/// The PostgreSQL ledger against the embedded one (LedgerEngine on SQLite): generated sequences of charges (repeated ids,
/// free tiers, caps), reservations (metered prices: the same ids as the charges), captures (below and above the hold,
/// twice, of ids never reserved), releases of old holds, refunds (of charges, holds and captures; twice, unknown ids),
/// top-ups, adjustments (some refused below zero), cap changes and days passing across month ends, run step by step on
/// both. Every answer, every account and every row must be the same.
/// </summary>
public sealed class LedgerDifferentialTests(PostgreSqlCluster cluster) : IClassFixture<PostgreSqlCluster>
{
    private static readonly DateTimeOffset Start = new(2026, 1, 20, 8, 0, 0, TimeSpan.Zero);
    private static readonly string[] Accounts = ["a", "b"];

    [Fact]
    public async Task Generated_sequences_give_the_same_outcomes_balances_month_totals_and_rows_as_the_embedded_ledger()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        var operation = Gen.Select(Gen.Int[0, 13], Gen.Int[0, 1], Gen.Int[0, 5], Gen.Int[-300, 400], Gen.Int[0, 2])
            .Select((kind, account, slot, amount, free) => new Step(kind, account, slot, amount, free));
        var cases = 0;
        var steps = 0;
        await operation.Array[1, 40].SampleAsync(
            async sequence =>
            {
                var n = Interlocked.Increment(ref cases);
                Interlocked.Add(ref steps, sequence.Length);
                await RunAsync(connectionString, $"diff_{n}", sequence);
            },
            iter: 60,
            threads: 1,
            seed: TestSeeds.Next());
        TestReport.Write($"PostgreSQL ledger differential: {cases} sequences ({steps} steps) agreed with LedgerEngine on SQLite.");
    }

    [Fact]
    public async Task Charges_and_refunds_out_of_time_order_across_month_ends_give_the_same_month_totals_as_the_embedded_ledger()
    {
        // Instances' clocks differ and a batch carries the time each call began: a charge may be older than the month
        // its account has already rolled to. It changes the balance, but not the newer month's spend or free calls.
        var connectionString = await cluster.CreateDatabaseAsync();
        var clock = new FakeTimeProvider(Start);
        var path = LedgerFile.NewPath();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var engine = new LedgerEngine(new SqliteJournal(new McpGuard.Storage.SqliteDatabase(path)), clock, NullLogger.Instance);
        var database = new PostgreSqlDatabase(connectionString, "months", TimeSpan.FromSeconds(10), NullLogger.Instance);
        var store = new PostgreSqlLedgerStore(database, clock, NullLogger.Instance);
        try
        {
            IMcpGuardLedgerStore[] both = [engine, store];
            await Both(both, async s => (object)await s.SeedAsync([new("a", 10_000, 1_000, 0, 0)], clock.GetUtcNow(), default), "seed");
            var jan31 = new DateTimeOffset(2026, 1, 31, 23, 59, 59, TimeSpan.Zero);
            var feb1 = new DateTimeOffset(2026, 2, 1, 0, 0, 1, TimeSpan.Zero);
            var feb28 = new DateTimeOffset(2026, 2, 28, 23, 59, 59, TimeSpan.Zero);
            var mar1 = new DateTimeOffset(2026, 3, 1, 0, 0, 1, TimeSpan.Zero);
            (string What, Func<IMcpGuardLedgerStore, Task<object>> Step)[] steps =
            [
                ("January charge", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "j1", "add", 100, 0, jan31), default))),
                ("February charge rolls the month", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "f1", "add", 200, 0, feb1), default))),
                ("late January charge", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "j2", "add", 300, 0, jan31), default))),
                ("late January free call", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "j3", "add", 300, 1, jan31), default))),
                ("February free call", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "f2", "add", 300, 1, feb1), default))),
                ("late January charge over the February cap", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "j4", "add", 900, 0, jan31), default))),
                ("refund of a January charge in February", async s => (object)await s.RefundAsync("j2", feb1, default)),
                ("refund of a February charge", async s => (object)await s.RefundAsync("f1", feb28, default)),
                ("refund of the late free call", async s => (object)await s.RefundAsync("j3", feb28, default)),
                ("March charge rolls the month", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "m1", "add", 400, 0, mar1), default))),
                ("late February charge", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "f3", "add", 50, 0, feb28), default))),
                ("refund of the March charge dated February", async s => (object)await s.RefundAsync("m1", feb28, default)),
                ("refund of the February free call dated February", async s => (object)await s.RefundAsync("f2", feb28, default)),
                ("late February reservation in March", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "f4", "search", 70, 0, feb28, reserve: true), default))),
                ("its capture in March", async s => DescribeCapture(await s.CaptureAsync("f4", 30, mar1, default))),
                ("its refund", async s => (object)await s.RefundAsync("f4", mar1, default)),
                ("March reservation", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "m3", "search", 90, 0, mar1, reserve: true), default))),
                ("late February reservation held", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "f5", "search", 40, 0, feb28, reserve: true), default))),
                ("release of the holds placed before March", async s => (object)await s.ReleaseReservationsAsync(mar1.AddSeconds(-1), mar1, default)),
                ("capture of the March reservation dated February", async s => DescribeCapture(await s.CaptureAsync("m3", 500, feb28, default))),
                ("refund of the March capture dated February", async s => (object)await s.RefundAsync("m3", feb28, default)),
                ("another March charge", async s => Describe(await s.ChargeAsync(new McpGuardChargeRequest("a", "m2", "add", 10, 0, mar1), default))),
            ];
            foreach (var (what, step) in steps)
            {
                await Both(both, step, what);
                foreach (var at in new[] { jan31, feb1, feb28, mar1 })
                {
                    await Both(both, async s => Describe(await s.GetAccountAsync("a", 1, at, default)), $"{what}, then the account at {at:O}");
                }
            }

            Assert.Equal(await RowsAsync(engine, "a"), await RowsAsync(store, "a"));
        }
        finally
        {
            await store.DisposeAsync();
            await database.DisposeAsync();
            await engine.DisposeAsync();
            LedgerFile.Delete(path);
        }
    }

    private static async Task RunAsync(string connectionString, string schema, Step[] sequence)
    {
        var clock = new FakeTimeProvider(Start);
        var path = LedgerFile.NewPath();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var engine = new LedgerEngine(new SqliteJournal(new McpGuard.Storage.SqliteDatabase(path)), clock, NullLogger.Instance);
        var database = new PostgreSqlDatabase(connectionString, schema, TimeSpan.FromSeconds(10), NullLogger.Instance);
        var store = new PostgreSqlLedgerStore(database, clock, NullLogger.Instance);
        try
        {
            IMcpGuardLedgerStore[] both = [engine, store];
            McpGuardAccount[] seeds = [new("a", 1_000, 1_500, 0, 0), new("b", 200, null, 0, 0)];
            await Both(both, async s => (object)await s.SeedAsync(seeds, clock.GetUtcNow(), default), "seed");
            for (var i = 0; i < sequence.Length; i++)
            {
                var step = sequence[i];
                var account = Accounts[step.Account];
                var id = $"r{step.Slot}";
                var now = clock.GetUtcNow();
                var what = $"step {i} {step}";
                switch (step.Kind)
                {
                    case <= 3:
                        var request = new McpGuardChargeRequest(account, id, "add", Math.Abs(step.Amount), step.FreeCalls, now);
                        await Both(both, async s => Describe(await s.ChargeAsync(request, default)), what);
                        break;
                    case 4 or 5:
                        await Both(both, async s => (object)await s.RefundAsync(step.Slot == 5 ? "never-charged" : id, now, default), what);
                        break;
                    case 6:
                        await Both(both, async s => Describe(await s.TopUpAsync(account, Math.Abs(step.Amount) + 1, "top-up", now, default)), what);
                        break;
                    case 7:
                        await Both(both, async s => Describe(await s.AdjustAsync(account, step.Amount, "fix", now, default)), what);
                        break;
                    case 8:
                        await Both(both, async s => { await s.SetMonthlyCapAsync(account, step.Amount < 0 ? null : step.Amount * 3, default); return "cap set"; }, what);
                        break;
                    case 9:
                        clock.Advance(TimeSpan.FromDays(step.Slot * 3) + TimeSpan.FromSeconds(1));
                        break;
                    case 10 or 11:
                        var reservation = new McpGuardChargeRequest(account, id, "search", Math.Abs(step.Amount) * 2, step.FreeCalls, now, reserve: true);
                        await Both(both, async s => Describe(await s.ChargeAsync(reservation, default)), what);
                        break;
                    case 12:
                        await Both(both, async s => DescribeCapture(await s.CaptureAsync(step.Slot == 5 ? "never-reserved" : id, Math.Abs(step.Amount) * 3, now, default)), what);
                        break;
                    default:
                        await Both(both, async s => (object)await s.ReleaseReservationsAsync(now - TimeSpan.FromDays(step.Slot), now, default), what);
                        break;
                }

                foreach (var a in Accounts.Append("nobody"))
                {
                    await Both(both, async s => Describe(await s.GetAccountAsync(a, 2, clock.GetUtcNow(), default)), $"{what}, then account {a}");
                }
            }

            foreach (var a in Accounts)
            {
                var expected = await RowsAsync(engine, a);
                var actual = await RowsAsync(store, a);
                Assert.Equal(expected, actual);
                var sum = (await PostgreSqlCluster.QueryAsync<long>(connectionString, $"SELECT coalesce(sum(amount), 0)::bigint FROM {schema}.ledger WHERE account = '{a}'"))[0];
                Assert.Equal(sum, (await store.GetAccountAsync(a, 0, clock.GetUtcNow(), default))!.BalanceMicro);
            }
        }
        finally
        {
            await store.DisposeAsync();
            await database.DisposeAsync();
            await engine.DisposeAsync();
            LedgerFile.Delete(path);
        }
    }

    /// <summary>Runs one step on both ledgers: the same answer, or the same exception type.</summary>
    private static async Task Both(IMcpGuardLedgerStore[] stores, Func<IMcpGuardLedgerStore, Task<object>> step, string what)
    {
        var answers = new List<string>();
        foreach (var store in stores)
        {
            try
            {
                answers.Add($"{await step(store)}");
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
            {
                answers.Add($"{ex.GetType().Name}: {ex.Message}");
            }
        }

        Assert.True(answers[0] == answers[1], $"{what}: LedgerEngine answered {answers[0]}, PostgreSQL {answers[1]}");
    }

    private static string Describe(McpGuardChargeResult r) => $"{r.Outcome} balance {r.BalanceMicro} spent {r.SpentThisMonthMicro} cap {r.MonthlyCapMicro}";

    private static string Describe(McpGuardAccount? a) => a is null ? "none" : $"{a.Id} balance {a.BalanceMicro} cap {a.MonthlyCapMicro} spent {a.SpentThisMonthMicro} free left {a.FreeCallsLeft}";

    private static string Describe(McpGuardLedgerEntry e) => $"{e.Account} {e.Kind} {e.AmountMicro} -> {e.BalanceAfterMicro} {e.Note} {e.Timestamp:O}";

    private static string DescribeCapture(McpGuardLedgerEntry? e) =>
        e is null ? "nothing held" : $"{Describe(e)} tool={e.Tool} id={e.RequestId} free={e.Free}";

    /// <summary>
    /// The account's rows, oldest first, paged 3 at a time through the store (ids differ: PostgreSQL's identity may skip).
    /// The release rows one release of old holds wrote (the same time, one after another) come in no particular order:
    /// they are compared as a set, each with the balance after the last of them.
    /// </summary>
    private static async Task<List<string>> RowsAsync(IMcpGuardLedgerStore store, string account)
    {
        var entries = new List<McpGuardLedgerEntry>();
        long? before = null;
        do
        {
            var page = await store.GetLedgerAsync(account, before, 3, default);
            Assert.True(page.Entries.Count <= 3);
            entries.AddRange(page.Entries);
            before = page.NextCursor;
        }
        while (before is not null);

        Assert.True(entries.Zip(entries.Skip(1)).All(p => p.First.Id > p.Second.Id), "pages are newest first, ids decreasing");
        entries.Reverse();
        var rows = new List<string>();
        for (var i = 0; i < entries.Count;)
        {
            var run = 1;
            if (entries[i].Kind == McpGuardLedgerEntryKind.Release)
            {
                while (i + run < entries.Count && entries[i + run].Kind == McpGuardLedgerEntryKind.Release && entries[i + run].Timestamp == entries[i].Timestamp)
                {
                    run++;
                }
            }

            var last = entries[i + run - 1].BalanceAfterMicro;
            rows.AddRange(entries.Skip(i).Take(run).OrderBy(e => e.RequestId, StringComparer.Ordinal)
                .Select(e => $"{e.Kind} {e.AmountMicro} -> {(run > 1 ? $"{last} (after the run)" : e.BalanceAfterMicro)} tool={e.Tool} id={e.RequestId} free={e.Free} note={e.Note} at={e.Timestamp.UtcDateTime:O}"));
            i += run;
        }

        return rows;
    }

    private sealed record Step(int Kind, int Account, int Slot, int Amount, int FreeCalls);
}
