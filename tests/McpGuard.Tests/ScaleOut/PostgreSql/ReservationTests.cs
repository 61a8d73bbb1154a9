using System.Collections.Concurrent;
using CsCheck;
using McpGuard.PostgreSql;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace McpGuard.Tests.ScaleOut.PostgreSql;

/// <summary>
/// Metered prices on the PostgreSQL ledger: a reservation holds the maximum, a capture releases the hold and takes what
/// was used (never more than the hold, at most once), a refund releases a hold or refunds a capture (once), holds of a dead
/// instance are released by age (after a restart too), the monthly cap counts holds, and the money invariant holds with
/// flat charges and reservations mixed under concurrency from two instances.
/// </summary>
public sealed class ReservationTests(PostgreSqlCluster cluster) : IClassFixture<PostgreSqlCluster>
{
    private static readonly DateTimeOffset Now = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    private int _released;

    [Fact]
    public async Task A_reservation_captured_below_its_hold_writes_a_reservation_a_release_and_a_capture_of_what_was_used()
    {
        await using var ledger = await LedgerAsync(100_000);
        var store = ledger.Store;

        var reserved = await store.ChargeAsync(Reserve("a", "m-1", 20_000, Now), default);
        Assert.Equal((McpGuardChargeOutcome.Charged, 80_000L, 20_000L), (reserved.Outcome, reserved.BalanceMicro, reserved.SpentThisMonthMicro));
        Assert.Equal([(20_000L, true)], await HoldsAsync(ledger.ConnectionString));

        var capture = await store.CaptureAsync("m-1", 14, Now.AddSeconds(1), default);

        Assert.NotNull(capture);
        Assert.Equal(("a", McpGuardLedgerEntryKind.Capture, -14L, 99_986L, "search", "m-1", Now.AddSeconds(1), false, (string?)null),
            (capture.Account, capture.Kind, capture.AmountMicro, capture.BalanceAfterMicro, capture.Tool, capture.RequestId, capture.Timestamp, capture.Free, capture.Note));
        var rows = await ScaleOutHosts.RowsAsync(ledger.ConnectionString, "a");
        Assert.Equal(
            [("TopUp", 100_000L, 100_000L, (string?)null), ("Reservation", -20_000L, 80_000L, "m-1"), ("Release", 20_000L, 100_000L, "m-1"), ("Capture", -14L, 99_986L, "m-1")],
            rows.Select(r => (r.Kind, r.Amount, r.BalanceAfter, r.RequestId)));
        Assert.Equal(capture.Id, rows[^1].Id);
        var account = (await store.GetAccountAsync("a", 0, Now, default))!;
        Assert.Equal((100_000L - 14, 14L), (account.BalanceMicro, account.SpentThisMonthMicro));
        Assert.Equal([(20_000L, false)], await HoldsAsync(ledger.ConnectionString));
        Assert.Equal(["search"], await PostgreSqlCluster.QueryAsync<string>(ledger.ConnectionString, "SELECT DISTINCT tool FROM mcpguard.ledger WHERE request_id = 'm-1';"));
        await ScaleOutHosts.AssertLedgerAsync(ledger.ConnectionString, "a");
    }

    [Fact]
    public async Task A_capture_above_the_hold_takes_the_hold_and_a_second_capture_finds_nothing_held()
    {
        await using var ledger = await LedgerAsync(10_000);
        var store = ledger.Store;
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(Reserve("a", "m-1", 500, Now), default)).Outcome);

        var capture = await store.CaptureAsync("m-1", 800, Now, default);
        Assert.Equal((-500L, 9_500L), (capture!.AmountMicro, capture.BalanceAfterMicro));
        Assert.Null(await store.CaptureAsync("m-1", 100, Now, default));
        Assert.Null(await store.CaptureAsync("never-reserved", 100, Now, default));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await store.CaptureAsync("m-1", -1, Now, default));

        Assert.Equal([("Reservation", -500L), ("Release", 500L), ("Capture", -500L)],
            (await ScaleOutHosts.RowsAsync(ledger.ConnectionString, "a")).Skip(1).Select(r => (r.Kind, r.Amount)));
        var account = (await store.GetAccountAsync("a", 0, Now, default))!;
        Assert.Equal((9_500L, 500L), (account.BalanceMicro, account.SpentThisMonthMicro));
        await ScaleOutHosts.AssertLedgerAsync(ledger.ConnectionString, "a");
    }

    [Fact]
    public async Task A_refund_of_a_held_reservation_releases_it_once_and_nothing_can_capture_it_after()
    {
        await using var ledger = await LedgerAsync(10_000);
        var store = ledger.Store;
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(Reserve("a", "m-1", 3_000, Now), default)).Outcome);

        Assert.True(await store.RefundAsync("m-1", Now.AddSeconds(1), default));
        Assert.False(await store.RefundAsync("m-1", Now.AddSeconds(2), default));
        Assert.Null(await store.CaptureAsync("m-1", 10, Now.AddSeconds(3), default));

        Assert.Equal([("Reservation", -3_000L, 7_000L), ("Release", 3_000L, 10_000L)],
            (await ScaleOutHosts.RowsAsync(ledger.ConnectionString, "a")).Skip(1).Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
        var account = (await store.GetAccountAsync("a", 0, Now, default))!;
        Assert.Equal((10_000L, 0L), (account.BalanceMicro, account.SpentThisMonthMicro));
        Assert.Equal(0, await store.ReleaseReservationsAsync(Now.AddDays(1), Now.AddDays(1), default));

        // The id was charged (reserved) once: a flat charge or a reservation of it is a duplicate, however it was settled.
        Assert.Equal(McpGuardChargeOutcome.DuplicateRequest, (await store.ChargeAsync(new McpGuardChargeRequest("a", "m-1", "add", 100, 0, Now), default)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.DuplicateRequest, (await store.ChargeAsync(new McpGuardChargeRequest("a", "m-1", "add", 100, 5, Now), default)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.DuplicateRequest, (await store.ChargeAsync(new McpGuardChargeRequest("a", "m-1", "add", 1_000_000, 0, Now), default)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.DuplicateRequest, (await store.ChargeAsync(Reserve("b", "m-1", 100, Now), default)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(new McpGuardChargeRequest("a", "flat-1", "add", 100, 0, Now), default)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.DuplicateRequest, (await store.ChargeAsync(Reserve("a", "flat-1", 100, Now), default)).Outcome);
        Assert.Equal(2, (await ScaleOutHosts.RowsAsync(ledger.ConnectionString, "a")).Count(r => r.Kind is "Usage" or "Reservation"));
        await ScaleOutHosts.AssertLedgerAsync(ledger.ConnectionString, "a");
    }

    [Fact]
    public async Task A_refund_after_a_capture_refunds_what_was_captured_once()
    {
        await using var ledger = await LedgerAsync(10_000);
        var store = ledger.Store;
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(Reserve("a", "m-1", 2_000, Now), default)).Outcome);
        Assert.Equal(-700, (await store.CaptureAsync("m-1", 700, Now, default))!.AmountMicro);

        Assert.True(await store.RefundAsync("m-1", Now.AddSeconds(1), default));
        Assert.False(await store.RefundAsync("m-1", Now.AddSeconds(2), default));
        Assert.Null(await store.CaptureAsync("m-1", 700, Now, default));

        Assert.Equal([("Reservation", -2_000L, 8_000L), ("Release", 2_000L, 10_000L), ("Capture", -700L, 9_300L), ("Refund", 700L, 10_000L)],
            (await ScaleOutHosts.RowsAsync(ledger.ConnectionString, "a")).Skip(1).Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
        var account = (await store.GetAccountAsync("a", 0, Now, default))!;
        Assert.Equal((10_000L, 0L), (account.BalanceMicro, account.SpentThisMonthMicro));
        await ScaleOutHosts.AssertLedgerAsync(ledger.ConnectionString, "a");
    }

    [Fact]
    public async Task A_reservation_the_free_tier_pays_is_a_free_usage_row_and_holds_nothing()
    {
        await using var ledger = await LedgerAsync(10_000);
        var store = ledger.Store;

        var free = await store.ChargeAsync(Reserve("a", "m-1", 2_000, Now, freeCalls: 1), default);
        Assert.Equal((McpGuardChargeOutcome.Free, 10_000L, 0L), (free.Outcome, free.BalanceMicro, free.SpentThisMonthMicro));
        Assert.Null(await store.CaptureAsync("m-1", 10, Now, default));
        Assert.Empty(await HoldsAsync(ledger.ConnectionString));
        Assert.Equal([("Usage", 0L, "m-1")], (await ScaleOutHosts.RowsAsync(ledger.ConnectionString, "a")).Skip(1).Select(r => (r.Kind, r.Amount, r.RequestId)));
        Assert.Equal([true], await PostgreSqlCluster.QueryAsync<bool>(ledger.ConnectionString, "SELECT free FROM mcpguard.ledger WHERE request_id = 'm-1';"));
    }

    [Fact]
    public async Task Releasing_reservations_releases_only_the_holds_placed_before_the_time_and_says_how_many()
    {
        await using var ledger = await LedgerAsync(100_000);
        var store = ledger.Store;
        await store.TopUpAsync("b", 100_000, "start", Now, default);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(Reserve("a", "old-1", 1_000, Now), default)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(Reserve("b", "old-2", 2_000, Now.AddSeconds(1)), default)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(Reserve("a", "old-captured", 3_000, Now.AddSeconds(2)), default)).Outcome);
        Assert.NotNull(await store.CaptureAsync("old-captured", 5, Now.AddSeconds(3), default));
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(Reserve("a", "new-1", 4_000, Now.AddMinutes(10)), default)).Outcome);

        Assert.Equal(2, await store.ReleaseReservationsAsync(Now.AddMinutes(5), Now.AddMinutes(11), default));
        Assert.Equal(0, await store.ReleaseReservationsAsync(Now.AddMinutes(5), Now.AddMinutes(11), default));

        Assert.Null(await store.CaptureAsync("old-1", 10, Now.AddMinutes(12), default));
        Assert.False(await store.RefundAsync("old-2", Now.AddMinutes(12), default));
        Assert.Equal(-40, (await store.CaptureAsync("new-1", 40, Now.AddMinutes(12), default))!.AmountMicro);
        Assert.Equal([("Release", 1_000L, "old-1")],
            (await ScaleOutHosts.RowsAsync(ledger.ConnectionString, "a")).Where(r => r.RequestId == "old-1" && r.Kind == "Release").Select(r => (r.Kind, r.Amount, r.RequestId)));
        Assert.Equal([("Reservation", -2_000L, 98_000L), ("Release", 2_000L, 100_000L)],
            (await ScaleOutHosts.RowsAsync(ledger.ConnectionString, "b")).Skip(1).Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
        var a = (await store.GetAccountAsync("a", 0, Now, default))!;
        Assert.Equal((100_000L - 5 - 40, 45L), (a.BalanceMicro, a.SpentThisMonthMicro));
        Assert.Equal(100_000, (await store.GetAccountAsync("b", 0, Now, default))!.BalanceMicro);
        await ScaleOutHosts.AssertLedgerAsync(ledger.ConnectionString, "a");
        await ScaleOutHosts.AssertLedgerAsync(ledger.ConnectionString, "b");
    }

    [Fact]
    public async Task A_hold_outlives_its_store_and_a_new_store_releases_it()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using (var first = new Ledger(connectionString))
        {
            await first.Store.TopUpAsync("a", 10_000, "start", Now, default);
            Assert.Equal(McpGuardChargeOutcome.Charged, (await first.Store.ChargeAsync(Reserve("a", "died-1", 6_000, Now), default)).Outcome);
            Assert.Equal(McpGuardChargeOutcome.Charged, (await first.Store.ChargeAsync(Reserve("a", "died-2", 1_000, Now, newRequestId: true), default)).Outcome);
        }

        // The instance died (its store is gone with what it held in memory): a new one finds the holds in the database.
        await using var second = new Ledger(connectionString);
        var held = (await second.Store.GetAccountAsync("a", 0, Now, default))!;
        Assert.Equal((3_000L, 7_000L), (held.BalanceMicro, held.SpentThisMonthMicro));
        Assert.Equal(McpGuardChargeOutcome.OutOfCredit, (await second.Store.ChargeAsync(new McpGuardChargeRequest("a", "after-1", "add", 4_000, 0, Now), default)).Outcome);

        Assert.Equal(2, await second.Store.ReleaseReservationsAsync(Now.AddMinutes(1), Now.AddMinutes(1), default));

        var released = (await second.Store.GetAccountAsync("a", 0, Now, default))!;
        Assert.Equal((10_000L, 0L), (released.BalanceMicro, released.SpentThisMonthMicro));
        Assert.Equal(
            [("Reservation", -6_000L, 4_000L), ("Reservation", -1_000L, 3_000L), ("Release", 6_000L, 9_000L), ("Release", 1_000L, 10_000L)],
            (await ScaleOutHosts.RowsAsync(connectionString, "a")).Skip(1).Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
        Assert.Null(await second.Store.CaptureAsync("died-1", 10, Now.AddMinutes(2), default));
        Assert.Equal(McpGuardChargeOutcome.Charged, (await second.Store.ChargeAsync(new McpGuardChargeRequest("a", "after-2", "add", 4_000, 0, Now), default)).Outcome);
        await ScaleOutHosts.AssertLedgerAsync(connectionString, "a");
    }

    [Fact]
    public async Task The_monthly_cap_counts_holds_and_then_what_was_captured()
    {
        await using var ledger = await LedgerAsync(100_000);
        var store = ledger.Store;
        await store.SetMonthlyCapAsync("a", 1_000, default);

        Assert.Equal((McpGuardChargeOutcome.Charged, 800L), Outcome(await store.ChargeAsync(Reserve("a", "m-1", 800, Now), default)));
        Assert.Equal((McpGuardChargeOutcome.CapReached, 800L), Outcome(await store.ChargeAsync(Reserve("a", "m-2", 300, Now), default)));
        Assert.Equal((McpGuardChargeOutcome.CapReached, 800L), Outcome(await store.ChargeAsync(new McpGuardChargeRequest("a", "f-1", "add", 300, 0, Now), default)));
        Assert.Equal((McpGuardChargeOutcome.Charged, 1_000L), Outcome(await store.ChargeAsync(new McpGuardChargeRequest("a", "f-2", "add", 200, 0, Now), default)));

        Assert.NotNull(await store.CaptureAsync("m-1", 100, Now, default));
        Assert.Equal(300, (await store.GetAccountAsync("a", 0, Now, default))!.SpentThisMonthMicro);
        Assert.True(await store.RefundAsync("f-2", Now, default));
        var account = (await store.GetAccountAsync("a", 0, Now, default))!;
        Assert.Equal((100_000L - 100, 100L), (account.BalanceMicro, account.SpentThisMonthMicro));

        // A refused reservation holds nothing and its id stays free.
        Assert.Equal((McpGuardChargeOutcome.Charged, 1_000L), Outcome(await store.ChargeAsync(Reserve("a", "m-2", 900, Now), default)));
        Assert.Equal((McpGuardChargeOutcome.CapReached, 1_000L), Outcome(await store.ChargeAsync(Reserve("a", "m-3", 1, Now), default)));
        await ScaleOutHosts.AssertLedgerAsync(ledger.ConnectionString, "a");
    }

    [Fact]
    public async Task A_hold_counts_in_the_month_it_was_placed_and_its_capture_next_month_leaves_the_new_month_alone()
    {
        await using var ledger = await LedgerAsync(100_000);
        var store = ledger.Store;
        var march = new DateTimeOffset(2026, 3, 31, 23, 59, 0, TimeSpan.Zero);
        var april = new DateTimeOffset(2026, 4, 1, 0, 1, 0, TimeSpan.Zero);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(Reserve("a", "m-1", 5_000, march), default)).Outcome);
        Assert.Equal(5_000, (await store.GetAccountAsync("a", 0, march, default))!.SpentThisMonthMicro);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(new McpGuardChargeRequest("a", "f-1", "add", 300, 0, april), default)).Outcome);

        Assert.NotNull(await store.CaptureAsync("m-1", 1_000, april, default));

        var account = (await store.GetAccountAsync("a", 0, april, default))!;
        Assert.Equal((100_000L - 1_000 - 300, 300L), (account.BalanceMicro, account.SpentThisMonthMicro));
        await ScaleOutHosts.AssertLedgerAsync(ledger.ConnectionString, "a");
    }

    [Fact]
    public async Task Flat_charges_and_reservations_mixed_on_two_instances_never_overdraw_and_leave_the_balance_of_what_stands()
    {
        // Each caller: a flat charge (refunded or not) or a reservation (captured at a random amount, then refunded or
        // not, or refunded while held, or left held), on one account with a small balance, from two store instances at
        // once, with a sweeper releasing old holds meanwhile.
        var caller = Gen.Select(Gen.Int[0, 5], Gen.Int[0, 1_200], Gen.Int[0, 1_500], Gen.Bool, Gen.Bool)
            .Select((plan, price, used, refund, fresh) => new Caller(plan, price, used, refund, fresh));
        var cases = 0;
        await Gen.Select(caller.Array[150, 300], Gen.Int[1_000, 6_000]).SampleAsync(
            async (callers, balance) =>
            {
                Interlocked.Increment(ref cases);
                await RunConcurrentlyAsync(callers, balance);
            },
            iter: 6,
            threads: 1,
            seed: TestSeeds.Next());
        TestReport.Write($"PostgreSQL reservations under concurrency: {cases} cases on two instances kept the money invariant ({Volatile.Read(ref _released)} holds released by the sweeper).");
    }

    [Fact]
    public async Task An_id_charged_flat_for_one_account_and_reserved_for_another_on_two_instances_at_once_is_charged_once()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var one = new Ledger(connectionString);
        await using var two = new Ledger(connectionString);
        await one.Store.TopUpAsync("a", 1_000_000, "start", Now, default);
        await one.Store.TopUpAsync("b", 1_000_000, "start", Now, default);
        const int Ids = 300;

        using var go = new ManualResetEventSlim();
        var flat = Enumerable.Range(0, Ids).Select(i => Task.Run(async () =>
        {
            go.Wait();
            return await one.Store.ChargeAsync(new McpGuardChargeRequest("a", $"same-{i}", "add", 100, 0, Now), default);
        })).ToList();
        var reserved = Enumerable.Range(0, Ids).Select(i => Task.Run(async () =>
        {
            go.Wait();
            return await two.Store.ChargeAsync(Reserve("b", $"same-{i}", 100, Now), default);
        })).ToList();
        go.Set();
        var flatOutcomes = await Task.WhenAll(flat);
        var reservedOutcomes = await Task.WhenAll(reserved);

        for (var i = 0; i < Ids; i++)
        {
            Assert.Equal(
                [McpGuardChargeOutcome.Charged, McpGuardChargeOutcome.DuplicateRequest],
                new[] { flatOutcomes[i].Outcome, reservedOutcomes[i].Outcome }.Order());
        }

        Assert.Equal(Ids, (await PostgreSqlCluster.QueryAsync<string>(connectionString, "SELECT request_id FROM mcpguard.ledger WHERE kind IN ('Usage', 'Reservation');")).Distinct().Count());
        Assert.Equal(Ids, (await PostgreSqlCluster.QueryAsync<long>(connectionString, "SELECT count(*) FROM mcpguard.ledger WHERE kind IN ('Usage', 'Reservation');")).Single());
        Assert.Equal(
            reservedOutcomes.Count(o => o.Outcome == McpGuardChargeOutcome.Charged),
            (await PostgreSqlCluster.QueryAsync<long>(connectionString, "SELECT count(*) FROM mcpguard.reservations;")).Single());
        await ScaleOutHosts.AssertLedgerAsync(connectionString, "a");
        await ScaleOutHosts.AssertLedgerAsync(connectionString, "b");
    }

    private async Task RunConcurrentlyAsync(Caller[] callers, int initial)
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var one = new Ledger(connectionString);
        await using var two = new Ledger(connectionString);
        await one.Store.TopUpAsync("a", initial, "start", Now, default);
        var stands = new ConcurrentBag<long>();
        var balances = new ConcurrentBag<long>();
        using var go = new ManualResetEventSlim();
        var done = 0;

        async Task CallAsync(int i)
        {
            var callerPlan = callers[i];
            var store = (i % 2 == 0 ? one : two).Store;
            var id = $"c-{i}";
            var placed = Now.AddMilliseconds(i);
            go.Wait();
            if (callerPlan.Plan < 2)
            {
                var charged = await store.ChargeAsync(new McpGuardChargeRequest("a", id, "add", callerPlan.Price, 0, placed, callerPlan.Fresh), default);
                balances.Add(charged.BalanceMicro);
                if (charged.Outcome == McpGuardChargeOutcome.Charged)
                {
                    stands.Add(callerPlan.Refund && await store.RefundAsync(id, placed, default) ? 0 : callerPlan.Price);
                }

                return;
            }

            var reserved = await store.ChargeAsync(Reserve("a", id, callerPlan.Price, placed, newRequestId: callerPlan.Fresh), default);
            balances.Add(reserved.BalanceMicro);
            if (reserved.Outcome != McpGuardChargeOutcome.Charged)
            {
                return;
            }

            switch (callerPlan.Plan)
            {
                case 2 or 3:
                    // Captured (unless the sweeper released it first), then refunded or not.
                    var capture = await store.CaptureAsync(id, callerPlan.Used, placed, default);
                    if (capture is not null)
                    {
                        Assert.Equal(-Math.Min(callerPlan.Used, callerPlan.Price), capture.AmountMicro);
                        balances.Add(capture.BalanceAfterMicro);
                        stands.Add(callerPlan.Refund && await store.RefundAsync(id, placed, default) ? 0 : -capture.AmountMicro);
                    }

                    break;
                case 4:
                    // Refunded while held (released), or already released by the sweeper.
                    await store.RefundAsync(id, placed, default);
                    Assert.Null(await store.CaptureAsync(id, callerPlan.Used, placed, default));
                    break;
                default:
                    // Left held: the sweeper, or the release at the end, gives it back.
                    break;
            }
        }

        var calls = Enumerable.Range(0, callers.Length).Select(i => Task.Run(() => CallAsync(i))).ToList();
        var sweeper = Task.Run(async () =>
        {
            go.Wait();
            for (var n = 0; Volatile.Read(ref done) == 0; n++)
            {
                // Holds placed in the first milliseconds of the run, a few more each time.
                var released = await (n % 2 == 0 ? one : two).Store.ReleaseReservationsAsync(Now.AddMilliseconds(n * 5), Now, default);
                Interlocked.Add(ref _released, released);
                await Task.Delay(5);
            }
        });
        go.Set();
        await Task.WhenAll(calls);
        Volatile.Write(ref done, 1);
        await sweeper;
        await one.Store.ReleaseReservationsAsync(Now.AddDays(1), Now, default);

        Assert.All(balances, b => Assert.True(b >= 0, $"a balance of {b}"));
        var account = (await two.Store.GetAccountAsync("a", 0, Now, default))!;
        Assert.Equal(initial - stands.Sum(), account.BalanceMicro);
        Assert.Equal(stands.Sum(), account.SpentThisMonthMicro);
        Assert.Empty(await PostgreSqlCluster.QueryAsync<string>(connectionString, "SELECT request_id FROM mcpguard.reservations WHERE held;"));
        var rows = await ScaleOutHosts.RowsAsync(connectionString, "a");
        Assert.Equal(account.BalanceMicro, rows.Sum(r => r.Amount));
        Assert.All(rows, r => Assert.True(r.BalanceAfter >= 0, $"row {r.Id} leaves {r.BalanceAfter}"));
        Assert.Equal(rows.Count(r => r.Kind == "Reservation"), rows.Count(r => r.Kind == "Release"));
        await ScaleOutHosts.AssertLedgerAsync(connectionString, "a");
    }

    private static McpGuardChargeRequest Reserve(string account, string requestId, long price, DateTimeOffset now, int freeCalls = 0, bool newRequestId = false) =>
        new(account, requestId, "search", price, freeCalls, now, newRequestId, reserve: true);

    private static (McpGuardChargeOutcome, long) Outcome(McpGuardChargeResult result) => (result.Outcome, result.SpentThisMonthMicro);

    /// <summary>The reservations table: what each holds, and whether it still does.</summary>
    private static async Task<List<(long Amount, bool Held)>> HoldsAsync(string connectionString) =>
        [.. (await PostgreSqlCluster.QueryAsync<string[]>(connectionString, "SELECT ARRAY[amount::text, held::text] FROM mcpguard.reservations ORDER BY request_id;"))
            .Select(v => (long.Parse(v[0], System.Globalization.CultureInfo.InvariantCulture), v[1] == "true"))];

    private async Task<Ledger> LedgerAsync(long balance)
    {
        var ledger = new Ledger(await cluster.CreateDatabaseAsync());
        await ledger.Store.TopUpAsync("a", balance, "start", Now, default);
        return ledger;
    }

    private sealed record Caller(int Plan, int Price, int Used, bool Refund, bool Fresh);

    /// <summary>One instance's ledger store on the database (schema mcpguard).</summary>
    private sealed class Ledger : IAsyncDisposable
    {
        private readonly PostgreSqlDatabase _database;

        public Ledger(string connectionString)
            : this(connectionString, new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(10), NullLogger.Instance))
        {
        }

        private Ledger(string connectionString, PostgreSqlDatabase database)
        {
            ConnectionString = connectionString;
            _database = database;
            Store = new PostgreSqlLedgerStore(database, TimeProvider.System, NullLogger.Instance);
        }

        public string ConnectionString { get; }

        public PostgreSqlLedgerStore Store { get; }

        public async ValueTask DisposeAsync()
        {
            await Store.DisposeAsync();
            await _database.DisposeAsync();
        }
    }
}
