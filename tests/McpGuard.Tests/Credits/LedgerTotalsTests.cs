using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Credits;

/// <summary>
/// <see cref="ILedgerTotals.GetTotalsAsync"/> on the built-in stores (the PostgreSQL one runs the same script in
/// ScaleOut/PostgreSql/LedgerStoreTests): the rows of [start, until) added up per bucket, account, tool, kind and free
/// flag, and nothing outside the window.
/// </summary>
public sealed class LedgerTotalsTests
{
    public static TheoryData<string> Stores => new() { nameof(McpGuardStoreKind.InMemory), nameof(McpGuardStoreKind.Sqlite) };

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Totals_add_up_the_rows_of_the_window_per_bucket_account_tool_kind_and_free_flag(string kind)
    {
        var storeKind = Enum.Parse<McpGuardStoreKind>(kind);
        await using var store = StoreUnderTest.Open(storeKind, new FakeTimeProvider(LedgerTotalsScript.WindowStart), storeKind == McpGuardStoreKind.Sqlite ? LedgerFile.NewPath() : null);

        await LedgerTotalsScript.WriteAsync(store.Engine);

        Assert.Equal(LedgerTotalsScript.Expected, await LedgerTotalsScript.TotalsAsync(store.Engine));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_window_that_ends_before_it_starts_or_a_bucket_of_less_than_a_whole_second_is_refused(string kind)
    {
        var storeKind = Enum.Parse<McpGuardStoreKind>(kind);
        await using var store = StoreUnderTest.Open(storeKind, new FakeTimeProvider(LedgerTotalsScript.WindowStart), storeKind == McpGuardStoreKind.Sqlite ? LedgerFile.NewPath() : null);

        var backwards = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await store.Engine.GetTotalsAsync(LedgerTotalsScript.WindowStart, LedgerTotalsScript.WindowStart, TimeSpan.FromMinutes(5), default));
        Assert.StartsWith("The end of the window must come after its start.", backwards.Message, StringComparison.Ordinal);
        var fraction = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await store.Engine.GetTotalsAsync(LedgerTotalsScript.WindowStart, LedgerTotalsScript.WindowStart.AddHours(1), TimeSpan.FromMilliseconds(1500), default));
        Assert.StartsWith("A bucket is a whole number of seconds, at least one.", fraction.Message, StringComparison.Ordinal);
    }
}

/// <summary>The rows every ledger store is given, and what their window must add up to.</summary>
internal static class LedgerTotalsScript
{
    /// <summary>The window the script asks for: an hour from 12:00, in buckets of five minutes.</summary>
    public static readonly DateTimeOffset WindowStart = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    /// <summary>What the script's window adds up to, in the order <see cref="TotalsAsync"/> sorts it.</summary>
    public static readonly (DateTimeOffset Bucket, string Account, string? Tool, McpGuardLedgerEntryKind Kind, bool Free, long Rows, long Amount)[] Expected =
    [
        (WindowStart, "a", null, McpGuardLedgerEntryKind.TopUp, false, 1, 500),
        (WindowStart, "a", "add", McpGuardLedgerEntryKind.Usage, false, 2, -1600),
        (WindowStart.AddMinutes(5), "a", "fail", McpGuardLedgerEntryKind.Refund, false, 1, 100),
        (WindowStart.AddMinutes(5), "a", "fail", McpGuardLedgerEntryKind.Usage, false, 1, -100),
        (WindowStart.AddMinutes(10), "b", "add", McpGuardLedgerEntryKind.Usage, true, 1, 0),
        (WindowStart.AddMinutes(55), "b", "add", McpGuardLedgerEntryKind.Refund, true, 1, 0),
        (WindowStart.AddMinutes(55), "b", "add", McpGuardLedgerEntryKind.Usage, false, 1, -800),
    ];

    /// <summary>
    /// Sixty charges in the hour before the window (which a store must pass over), then the window's rows, then one at
    /// its end (excluded: the end is not in the window).
    /// </summary>
    public static async Task WriteAsync(IMcpGuardLedgerStore store)
    {
        var before = WindowStart.AddHours(-1);
        await store.TopUpAsync("a", 1_000_000, "start", before, default);
        await store.TopUpAsync("b", 10_000, "start", before, default);
        for (var i = 0; i < 60; i++)
        {
            await ChargeAsync(store, "a", $"old-{i}", "add", 800, 0, before.AddSeconds(59 * i + 30));
        }

        await ChargeAsync(store, "a", "r1", "add", 800, 0, WindowStart);
        await store.TopUpAsync("a", 500, "invoice", WindowStart.AddMinutes(2), default);
        await ChargeAsync(store, "a", "r2", "add", 800, 0, WindowStart.AddSeconds(299));
        await ChargeAsync(store, "a", "r3", "fail", 100, 0, WindowStart.AddMinutes(7));
        Assert.True(await store.RefundAsync("r3", WindowStart.AddMinutes(8), default));
        await ChargeAsync(store, "b", "r4", "add", 800, 1, WindowStart.AddMinutes(11));
        Assert.True(await store.RefundAsync("r4", WindowStart.AddMinutes(56), default));
        await ChargeAsync(store, "b", "r5", "add", 800, 0, WindowStart.AddMinutes(59).AddSeconds(59));
        await ChargeAsync(store, "a", "r6", "add", 800, 0, WindowStart.AddHours(1));
    }

    public static async Task<(DateTimeOffset, string, string?, McpGuardLedgerEntryKind, bool, long, long)[]> TotalsAsync(IMcpGuardLedgerStore store) =>
        [.. (await ((ILedgerTotals)store).GetTotalsAsync(WindowStart, WindowStart.AddHours(1), TimeSpan.FromMinutes(5), default))
            .Select(t => (t.BucketStart, t.Account, t.Tool, t.Kind, t.Free, t.Rows, t.AmountMicro))
            .OrderBy(t => t.BucketStart)
            .ThenBy(t => t.Account, StringComparer.Ordinal)
            .ThenBy(t => t.Tool, StringComparer.Ordinal)
            .ThenBy(t => t.Kind.ToString(), StringComparer.Ordinal)
            .ThenBy(t => t.Free)];

    private static async Task ChargeAsync(IMcpGuardLedgerStore store, string account, string requestId, string tool, long price, int freeCalls, DateTimeOffset now)
    {
        var result = await store.ChargeAsync(new McpGuardChargeRequest(account, requestId, tool, price, freeCalls, now), default);
        Assert.True(result.Outcome is McpGuardChargeOutcome.Charged or McpGuardChargeOutcome.Free, $"{requestId}: {result.Outcome}");
    }
}
