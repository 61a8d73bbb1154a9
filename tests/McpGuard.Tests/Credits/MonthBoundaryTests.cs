using System.Net;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Credits;

/// <summary>Free calls and the monthly cap reset at 00:00 UTC on the 1st, through the sample and in the ledger itself.</summary>
public sealed class MonthBoundaryTests
{
    private static readonly DateTimeOffset LastSecondOfJanuary = new(2026, 1, 31, 23, 59, 59, TimeSpan.Zero);

    [Fact]
    public async Task Free_calls_come_back_on_the_first_of_the_month()
    {
        var clock = new FakeTimeProvider(LastSecondOfJanuary);
        await using var host = await GuardedHost.StartSampleAsync(
            new Dictionary<string, string?> { ["McpGuard:Accounts:bob:InitialBalance"] = "10000" },
            builder => builder.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock)));

        var january = new List<(string?, string?)>();
        for (var i = 1; i <= 4; i++)
        {
            using var response = await CreditCalls.CallAsync(host, CreditCalls.Add(i), $"jan-{i}", DemoKeys.Bob);
            await CreditCalls.AssertAddedAsync(response, i);
            january.Add((CreditCalls.Header(response, CreditCalls.ChargeHeader), CreditCalls.Header(response, CreditCalls.BalanceHeader)));
        }

        clock.Advance(TimeSpan.FromSeconds(1)); // 2026-02-01T00:00:00Z
        var february = new List<(string?, string?)>();
        for (var i = 1; i <= 4; i++)
        {
            using var response = await CreditCalls.CallAsync(host, CreditCalls.Add(10 + i), $"feb-{i}", DemoKeys.Bob);
            await CreditCalls.AssertAddedAsync(response, 10 + i);
            february.Add((CreditCalls.Header(response, CreditCalls.ChargeHeader), CreditCalls.Header(response, CreditCalls.BalanceHeader)));
        }

        Assert.Equal([("0", "10000"), ("0", "10000"), ("0", "10000"), ("800", "9200")], january);
        Assert.Equal([("0", "9200"), ("0", "9200"), ("0", "9200"), ("800", "8400")], february);
        Assert.Equal(
            [
                ("jan-1", 0L, true, "2026-01-31T23:59:59.0000000Z"),
                ("jan-2", 0L, true, "2026-01-31T23:59:59.0000000Z"),
                ("jan-3", 0L, true, "2026-01-31T23:59:59.0000000Z"),
                ("jan-4", -800L, false, "2026-01-31T23:59:59.0000000Z"),
                ("feb-1", 0L, true, "2026-02-01T00:00:00.0000000Z"),
                ("feb-2", 0L, true, "2026-02-01T00:00:00.0000000Z"),
                ("feb-3", 0L, true, "2026-02-01T00:00:00.0000000Z"),
                ("feb-4", -800L, false, "2026-02-01T00:00:00.0000000Z"),
            ],
            LedgerFile.Rows(CreditCalls.LedgerPath(host), "bob").Where(r => r.Kind == "Usage").Select(r => (r.RequestId!, r.Amount, r.Free, r.CreatedAt)));
    }

    [Fact]
    public async Task A_cap_reached_in_january_allows_calls_again_on_the_first_of_february()
    {
        var clock = new FakeTimeProvider(LastSecondOfJanuary);
        await using var host = await GuardedHost.StartSampleAsync(
            new Dictionary<string, string?> { ["McpGuard:Accounts:alice:MonthlyCap"] = "1600" },
            builder => builder.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock)));

        using var first = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "cap-jan-1");
        using var second = await CreditCalls.CallAsync(host, CreditCalls.Add(2), "cap-jan-2");
        using var refused = await CreditCalls.CallAsync(host, CreditCalls.Add(3), "cap-jan-3");
        clock.Advance(TimeSpan.FromSeconds(1));
        using var february = await CreditCalls.CallAsync(host, CreditCalls.Add(4), "cap-feb-1");

        await CreditCalls.AssertAddedAsync(first, 1);
        await CreditCalls.AssertAddedAsync(second, 2);
        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":3,"error":{"code":-31302,"message":"Monthly spending cap reached","data":{"reason":"cap_reached","request_id":"cap-jan-3","cap_micro":1600,"spent_micro":1600,"price_micro":800,"resets_at":"2026-02-01T00:00:00Z"}}}""",
            await refused.Content.ReadAsStringAsync());
        await CreditCalls.AssertAddedAsync(february, 4);
        Assert.Equal("800", CreditCalls.Header(february, CreditCalls.ChargeHeader));
        Assert.Equal("997600", CreditCalls.Header(february, CreditCalls.BalanceHeader));
    }

    [Fact]
    public async Task The_month_is_the_utc_month_whatever_the_offset_of_the_clock()
    {
        // 00:30 on Feb 1 at +01:00 is still January 31 in UTC.
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 2, 1, 0, 30, 0, TimeSpan.FromHours(1)));
        await using var store = StoreUnderTest.Open(McpGuardStoreKind.InMemory, clock, null);
        await store.Engine.SeedAsync([new McpGuardAccount("a", 5000, 1000, 0, 0)], clock.GetUtcNow(), default);
        var local = new DateTimeOffset(2026, 2, 1, 0, 30, 0, TimeSpan.FromHours(1));

        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync("a", "r1", 600, now: local)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.CapReached, (await store.ChargeAsync("a", "r2", 600, now: local.AddMinutes(29))).Outcome);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync("a", "r3", 300, now: local.AddMinutes(30))).Outcome);
        ValueAssert.Equal(new McpGuardAccount("a", 4100, 1000, 300, 0), await store.Engine.GetAccountAsync("a", 0, local.AddMinutes(30), default));
    }

    [Theory]
    [InlineData(nameof(McpGuardStoreKind.InMemory))]
    [InlineData(nameof(McpGuardStoreKind.Sqlite))]
    public async Task A_new_month_reads_as_fresh_before_any_call_in_it(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var clock = new FakeTimeProvider(LastSecondOfJanuary);
        await using var store = StoreUnderTest.Open(kind, clock, kind == McpGuardStoreKind.Sqlite ? LedgerFile.NewPath() : null);
        await store.Engine.SeedAsync([new McpGuardAccount("a", 5000, 4000, 0, 0)], clock.GetUtcNow(), default);
        await store.ChargeAsync("a", "jan-free", 700, freeCalls: 1);
        await store.ChargeAsync("a", "jan-paid", 700, freeCalls: 1);

        ValueAssert.Equal(new McpGuardAccount("a", 4300, 4000, 700, 0), await store.Engine.GetAccountAsync("a", 1, clock.GetUtcNow(), default));
        clock.Advance(TimeSpan.FromSeconds(1));
        ValueAssert.Equal(new McpGuardAccount("a", 4300, 4000, 0, 1), await store.Engine.GetAccountAsync("a", 1, clock.GetUtcNow(), default));
    }

    [Theory]
    [InlineData(nameof(McpGuardStoreKind.InMemory))]
    [InlineData(nameof(McpGuardStoreKind.Sqlite))]
    public async Task Refunding_a_january_charge_in_february_restores_the_balance_but_not_februarys_spend_or_free_calls(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var clock = new FakeTimeProvider(LastSecondOfJanuary);
        await using var store = StoreUnderTest.Open(kind, clock, kind == McpGuardStoreKind.Sqlite ? LedgerFile.NewPath() : null);
        await store.Engine.SeedAsync([new McpGuardAccount("a", 5000, 1000, 0, 0)], clock.GetUtcNow(), default);
        Assert.Equal(McpGuardChargeOutcome.Free, (await store.ChargeAsync("a", "jan-free", 800, freeCalls: 1)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync("a", "jan-paid", 800, freeCalls: 1)).Outcome);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(McpGuardChargeOutcome.Free, (await store.ChargeAsync("a", "feb-free", 800, freeCalls: 1)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync("a", "feb-paid", 800, freeCalls: 1)).Outcome);

        Assert.True(await store.Engine.RefundAsync("jan-paid", clock.GetUtcNow(), default));
        Assert.True(await store.Engine.RefundAsync("jan-free", clock.GetUtcNow(), default));

        // February still spent 800 of its 1000 cap and used its free call.
        ValueAssert.Equal(new McpGuardAccount("a", 4200, 1000, 800, 0), await store.Engine.GetAccountAsync("a", 1, clock.GetUtcNow(), default));
        Assert.Equal(McpGuardChargeOutcome.CapReached, (await store.ChargeAsync("a", "feb-more", 800, freeCalls: 1)).Outcome);
    }

    [Fact]
    public async Task Reopening_the_ledger_in_a_new_month_starts_the_month_fresh()
    {
        var path = LedgerFile.NewPath();
        var clock = new FakeTimeProvider(LastSecondOfJanuary);
        await using (var january = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, clock, path))
        {
            await january.Engine.SeedAsync([new McpGuardAccount("a", 5000, 1000, 0, 0)], clock.GetUtcNow(), default);
            await january.ChargeAsync("a", "jan-free", 800, freeCalls: 1);
            await january.ChargeAsync("a", "jan-paid", 800, freeCalls: 1);
        }

        await using (var sameMonth = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, clock, path))
        {
            ValueAssert.Equal(new McpGuardAccount("a", 4200, 1000, 800, 0), await sameMonth.Engine.GetAccountAsync("a", 1, clock.GetUtcNow(), default));
            Assert.Equal(McpGuardChargeOutcome.CapReached, (await sameMonth.ChargeAsync("a", "jan-more", 800, freeCalls: 1)).Outcome);
        }

        clock.Advance(TimeSpan.FromSeconds(1));
        await using var february = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, clock, path);
        ValueAssert.Equal(new McpGuardAccount("a", 4200, 1000, 0, 1), await february.Engine.GetAccountAsync("a", 1, clock.GetUtcNow(), default));
        Assert.Equal(McpGuardChargeOutcome.Free, (await february.ChargeAsync("a", "feb-free", 800, freeCalls: 1)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await february.ChargeAsync("a", "feb-paid", 800, freeCalls: 1)).Outcome);
    }
}
