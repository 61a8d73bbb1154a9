using CsCheck;
using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Credits;

/// <summary>
/// Metered prices in the ledger, on both built-in stores: a reservation holds the maximum, a capture releases the hold
/// and takes what was used, a refund of a held reservation releases it whole, holds survive a restart and are released
/// when they expire; and, with many parallel callers mixing flat charges and reservations, no balance ever goes below
/// zero and every balance is what its rows add up to.
/// </summary>
public sealed class ReservationTests : IAsyncLifetime
{
    private static readonly DateTimeOffset March10 = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _clock = new(March10);
    private readonly List<StoreUnderTest> _stores = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => StoreUnderTest.DisposeAllAsync(_stores);

    public static TheoryData<string> Stores => new() { nameof(McpGuardStoreKind.InMemory), nameof(McpGuardStoreKind.Sqlite) };

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_capture_of_7_units_at_2_takes_14_and_gives_the_rest_of_the_hold_back(string kindName)
    {
        var store = await OpenAsync(kindName, 1000, cap: 5000);

        ValueAssert.Equal(new McpGuardChargeResult(McpGuardChargeOutcome.Charged, 980, 20, 5000), await ReserveAsync(store, "m1", 20));
        var capture = await store.Engine.CaptureAsync("m1", new ToolMeter(2, 20).Cost(7, 20), _clock.GetUtcNow(), default);

        Assert.NotNull(capture);
        Assert.Equal((McpGuardLedgerEntryKind.Capture, -14L, 986L, "search", "m1"), (capture.Kind, capture.AmountMicro, capture.BalanceAfterMicro, capture.Tool, capture.RequestId));
        Assert.Equal(
            [
                new Row("a", "TopUp", 1000, 1000, null, null, false, "seed"),
                new Row("a", "Reservation", -20, 980, "search", "m1", false, null),
                new Row("a", "Release", 20, 1000, "search", "m1", false, null),
                new Row("a", "Capture", -14, 986, "search", "m1", false, null),
            ],
            await store.RowsAsync("a"));
        var account = (await store.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default))!;
        Assert.Equal((986L, 14L), (account.BalanceMicro, account.SpentThisMonthMicro));

        // Settled once: a second capture finds no hold, a refund gives back the capture, and only once.
        Assert.Null(await store.Engine.CaptureAsync("m1", 20, _clock.GetUtcNow(), default));
        Assert.True(await store.Engine.RefundAsync("m1", _clock.GetUtcNow(), default));
        Assert.False(await store.Engine.RefundAsync("m1", _clock.GetUtcNow(), default));
        Assert.Equal(new Row("a", "Refund", 14, 1000, "search", "m1", false, null), (await store.RowsAsync("a"))[^1]);
        Assert.Equal(0, (await store.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default))!.SpentThisMonthMicro);
        Assert.Empty((await store.Engine.VerifyAsync(default)).Differences);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_capture_never_takes_more_than_the_hold_and_a_refunded_hold_is_released_whole(string kindName)
    {
        var store = await OpenAsync(kindName, 1000);

        await ReserveAsync(store, "over", 50);
        await ReserveAsync(store, "unserved", 70);
        var over = await store.Engine.CaptureAsync("over", 500, _clock.GetUtcNow(), default);
        Assert.True(await store.Engine.RefundAsync("unserved", _clock.GetUtcNow(), default));

        Assert.Equal(-50, over!.AmountMicro);
        Assert.Null(await store.Engine.CaptureAsync("unserved", 10, _clock.GetUtcNow(), default));
        Assert.False(await store.Engine.RefundAsync("unserved", _clock.GetUtcNow(), default));
        Assert.Equal(
            [("Reservation", -50L, 950L), ("Reservation", -70L, 880L), ("Release", 50L, 930L), ("Capture", -50L, 880L), ("Release", 70L, 950L)],
            (await store.RowsAsync("a")).Skip(1).Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
        Assert.Equal(McpGuardChargeOutcome.DuplicateRequest, (await ReserveAsync(store, "unserved", 70)).Outcome);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_hold_counts_against_the_balance_and_the_cap_until_it_is_settled(string kindName)
    {
        var store = await OpenAsync(kindName, 100, cap: 60);

        Assert.Equal(McpGuardChargeOutcome.Charged, (await ReserveAsync(store, "h1", 40)).Outcome);
        // 40 held: a second hold of 40 passes the balance (60 left) but not the cap (40 + 40 > 60).
        ValueAssert.Equal(new McpGuardChargeResult(McpGuardChargeOutcome.CapReached, 60, 40, 60), await ReserveAsync(store, "h2", 40));
        // A flat charge of 30 is refused by the cap too, until the hold is captured at 10.
        Assert.Equal(McpGuardChargeOutcome.CapReached, (await store.ChargeAsync("a", "f1", 30)).Outcome);
        await store.Engine.CaptureAsync("h1", 10, _clock.GetUtcNow(), default);
        ValueAssert.Equal(new McpGuardChargeResult(McpGuardChargeOutcome.Charged, 60, 40, 60), await store.ChargeAsync("a", "f2", 30));
    }

    [Fact]
    public async Task A_free_tier_call_of_a_metered_tool_holds_nothing()
    {
        var store = await OpenAsync(nameof(McpGuardStoreKind.Sqlite), 100);

        var free = await store.Engine.ChargeAsync(new McpGuardChargeRequest("a", "free-1", "search", 20, 1, _clock.GetUtcNow(), reserve: true), default);

        Assert.Equal(McpGuardChargeOutcome.Free, free.Outcome);
        Assert.Null(await store.Engine.CaptureAsync("free-1", 20, _clock.GetUtcNow(), default));
        Assert.Equal(new Row("a", "Usage", 0, 100, "search", "free-1", true, null), (await store.RowsAsync("a"))[^1]);
    }

    [Fact]
    public async Task A_hold_survives_a_restart_and_is_released_once_older_than_asked()
    {
        var path = LedgerFile.NewPath();
        var first = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path);
        await first.Engine.TopUpAsync("a", 1000, "start", _clock.GetUtcNow(), default);
        await ReserveAsync(first, "old", 100);
        _clock.Advance(TimeSpan.FromSeconds(40));
        await ReserveAsync(first, "young", 200);
        await first.DisposeAsync();

        var second = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path);
        _stores.Add(second);
        Assert.Equal(700, (await second.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default))!.BalanceMicro);

        // Holds placed more than 30 s ago go; the younger one stays, and its call can still settle it.
        Assert.Equal(1, await second.Engine.ReleaseReservationsAsync(_clock.GetUtcNow() - TimeSpan.FromSeconds(30), _clock.GetUtcNow(), default));
        Assert.Equal(0, await second.Engine.ReleaseReservationsAsync(_clock.GetUtcNow() - TimeSpan.FromSeconds(30), _clock.GetUtcNow(), default));
        Assert.Equal(-150, (await second.Engine.CaptureAsync("young", 150, _clock.GetUtcNow(), default))!.AmountMicro);
        Assert.Null(await second.Engine.CaptureAsync("old", 100, _clock.GetUtcNow(), default));
        Assert.Equal(
            [("Release", 100L, 800L, "old"), ("Release", 200L, 1000L, "young"), ("Capture", -150L, 850L, "young")],
            (await second.RowsAsync("a")).Skip(3).Select(r => (r.Kind, r.Amount, r.BalanceAfter, r.RequestId)));
        Assert.Empty((await second.Engine.VerifyAsync(default)).Differences);
        Assert.Equal(0, LedgerFile.Scalar(path, "SELECT COUNT(*) FROM ledger_holds;"));
    }

    [Fact]
    public async Task A_hold_from_before_the_checkpoint_is_still_held_after_a_restart()
    {
        var path = LedgerFile.NewPath();
        var first = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path, checkpointEvery: 2);
        await first.Engine.TopUpAsync("a", 1000, "start", _clock.GetUtcNow(), default);
        await ReserveAsync(first, "held", 100);
        for (var i = 0; i < 5; i++)
        {
            await first.ChargeAsync("a", $"flat-{i}", 10);
        }

        await first.DisposeAsync();
        var second = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path, checkpointEvery: 2);
        _stores.Add(second);

        Assert.Equal(-30, (await second.Engine.CaptureAsync("held", 30, _clock.GetUtcNow(), default))!.AmountMicro);
        var account = (await second.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default))!;
        Assert.Equal((920L, 80L), (account.BalanceMicro, account.SpentThisMonthMicro));
        Assert.Empty((await second.Engine.VerifyAsync(default)).Differences);
    }

    [Fact]
    public async Task A_crash_after_a_capture_whose_reservation_came_before_the_checkpoint_restarts_with_the_same_month_spend()
    {
        var path = LedgerFile.NewPath();
        var first = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path, checkpointEvery: 3);
        _stores.Add(first);
        await first.Engine.TopUpAsync("a", 1000, "start", _clock.GetUtcNow(), default);
        await ReserveAsync(first, "held", 20);
        await first.ChargeAsync("a", "flat-1", 10);
        await first.Engine.CaptureAsync("held", 14, _clock.GetUtcNow(), default);
        var live = (await first.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default))!;
        Assert.Equal((976L, 24L), (live.BalanceMicro, live.SpentThisMonthMicro));

        // The files as a kill leaves them: the reservation is before the last checkpoint (the third row), its release and
        // capture after it.
        var copy = LedgerFile.NewPath();
        File.Copy(path, copy);
        File.Copy(path + "-wal", copy + "-wal");
        var second = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, copy, checkpointEvery: 3);
        _stores.Add(second);

        Assert.Equal(2, second.Engine.RowsReadAtStart);
        var restarted = (await second.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default))!;
        Assert.Equal((976L, 24L), (restarted.BalanceMicro, restarted.SpentThisMonthMicro));
        // Its refund gives back the capture, and takes it out of the month's spend.
        Assert.True(await second.Engine.RefundAsync("held", _clock.GetUtcNow(), default));
        Assert.Equal(10L, (await second.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default))!.SpentThisMonthMicro);
        Assert.Empty((await second.Engine.VerifyAsync(default)).Differences);
    }

    [Fact]
    public async Task A_metered_calls_rows_roll_up_whole_and_its_id_is_not_refunded_again_after()
    {
        var path = LedgerFile.NewPath();
        var store = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path, recentCapacity: 1);
        _stores.Add(store);
        await store.Engine.TopUpAsync("a", 1000, "start", _clock.GetUtcNow(), default);
        await ReserveAsync(store, "old", 20);
        await store.Engine.CaptureAsync("old", 14, _clock.GetUtcNow(), default);
        Assert.True(await store.Engine.RefundAsync("old", _clock.GetUtcNow(), default));
        _clock.Advance(TimeSpan.FromDays(40));
        await store.ChargeAsync("a", "new-1", 10);
        await store.ChargeAsync("a", "new-2", 10);

        Assert.Equal(4, await store.Engine.RollUpAsync(_clock.GetUtcNow().AddDays(-30), chunk: 2, default));

        Assert.Equal(["TopUp", "Usage", "Usage"], (await store.RowsAsync("a")).Select(r => r.Kind));
        Assert.False(await store.Engine.RefundAsync("old", _clock.GetUtcNow(), default));
        Assert.Equal(980, (await store.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default))!.BalanceMicro);
        Assert.Empty((await store.Engine.VerifyAsync(default)).Differences);
    }

    /// <summary>
    /// Many callers at once on one account with a small balance, each call a flat charge (refunded or not) or a reservation
    /// (captured at a random amount, or refunded): no result ever shows a balance below zero, and at the end the balance is
    /// the start less what stands (flat charges not refunded, captures), and equals the sum of the rows.
    /// </summary>
    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Parallel_metered_and_flat_calls_never_overdraw(string kindName)
    {
        var cases = 0;
        var seed = TestSeeds.Next();
        await Gen.Int[1, 1_000_000].Select(Gen.Int[1_000, 5_000]).SampleAsync(async sample =>
        {
            var (caseSeed, startBalance) = sample;
            cases++;
            var store = await OpenAsync(kindName, startBalance);
            var random = new Random(caseSeed);
            var plans = Enumerable.Range(0, 400).Select(i => (Id: $"c{cases}-{i}", Reserve: random.Next(2) == 0, Price: random.Next(1, 200), Settle: random.Next(4), Capture: random.Next(0, 250))).ToArray();
            var stands = 0L;
            var lowest = long.MaxValue;
            await Parallel.ForEachAsync(plans, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (plan, _) =>
            {
                var result = await store.Engine.ChargeAsync(new McpGuardChargeRequest("a", plan.Id, plan.Reserve ? "search" : "add", plan.Price, 0, _clock.GetUtcNow(), newRequestId: true, reserve: plan.Reserve), default);
                InterlockedMin(ref lowest, result.BalanceMicro);
                if (result.Outcome != McpGuardChargeOutcome.Charged)
                {
                    return;
                }

                if (plan.Settle == 0)
                {
                    Assert.True(await store.Engine.RefundAsync(plan.Id, _clock.GetUtcNow(), default));
                }
                else if (plan.Reserve)
                {
                    var capture = await store.Engine.CaptureAsync(plan.Id, plan.Capture, _clock.GetUtcNow(), default);
                    Assert.Equal(-Math.Min(plan.Capture, plan.Price), capture!.AmountMicro);
                    InterlockedMin(ref lowest, capture.BalanceAfterMicro);
                    Interlocked.Add(ref stands, Math.Min(plan.Capture, plan.Price));
                }
                else
                {
                    Interlocked.Add(ref stands, plan.Price);
                }
            });

            Assert.True(lowest >= 0, $"a balance of {lowest} was seen");
            var rows = await store.RowsAsync("a");
            Assert.All(rows, r => Assert.True(r.BalanceAfter >= 0, $"row {r} went below zero"));
            Assert.Equal(startBalance - stands, rows.Sum(r => r.Amount));
            Assert.Equal(startBalance - stands, (await store.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default))!.BalanceMicro);
            Assert.Empty((await store.Engine.VerifyAsync(default)).Differences);
        }, seed: seed, iter: 12, threads: 1);
        TestReport.Write($"{nameof(ReservationTests)}.{nameof(Parallel_metered_and_flat_calls_never_overdraw)}({kindName}): {cases} cases of 400 parallel calls, seed {seed} (CsCheck_Seed)");
    }

    private static void InterlockedMin(ref long target, long value)
    {
        var current = Volatile.Read(ref target);
        while (value < current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    private ValueTask<McpGuardChargeResult> ReserveAsync(StoreUnderTest store, string requestId, long max) =>
        store.Engine.ChargeAsync(new McpGuardChargeRequest("a", requestId, "search", max, 0, _clock.GetUtcNow(), reserve: true), default);

    private async Task<StoreUnderTest> OpenAsync(string kindName, long balance, long? cap = null)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = StoreUnderTest.Open(kind, _clock, kind == McpGuardStoreKind.Sqlite ? LedgerFile.NewPath() : null);
        _stores.Add(store);
        Assert.True(await store.Engine.SeedAsync([new McpGuardAccount("a", balance, cap, 0, 0)], _clock.GetUtcNow(), default));
        return store;
    }
}
