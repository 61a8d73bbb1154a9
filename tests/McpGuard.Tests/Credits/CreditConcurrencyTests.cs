using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Credits;

/// <summary>1,000 parallel priced calls over real HTTP against a balance that covers exactly 100 of them.</summary>
public sealed class CreditConcurrencyTests
{
    private const int Calls = 1000;
    private const int Parallelism = 64;

    [Theory]
    [InlineData(nameof(McpGuardStoreKind.Sqlite))]
    [InlineData(nameof(McpGuardStoreKind.InMemory))]
    public async Task Exactly_the_calls_the_balance_covers_succeed(string storeName)
    {
        var store = Enum.Parse<McpGuardStoreKind>(storeName);
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Store"] = store.ToString(),
            ["McpGuard:Tools:add:Price"] = "10",
            ["McpGuard:Accounts:alice:InitialBalance"] = "1000",
            // Rate limits out of the way: every refusal here must be the ledger's.
            ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "1000000",
            ["McpGuard:RateLimits:Policies:default:Windows:1:Permits"] = "1000000",
            ["McpGuard:RateLimits:Policies:add:Windows:0:Permits"] = "1000000",
        });
        var outcomes = new ConcurrentBag<(string RequestId, HttpStatusCode Status, string? Charge, string? Balance, string Body)>();
        using var gate = new SemaphoreSlim(Parallelism);

        await Task.WhenAll(Enumerable.Range(0, Calls).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                var requestId = $"conc-{i}";
                using var response = await CreditCalls.CallAsync(host, CreditCalls.Add(i), requestId).WaitAsync(TimeSpan.FromSeconds(60));
                outcomes.Add((requestId, response.StatusCode, CreditCalls.Header(response, CreditCalls.ChargeHeader),
                    CreditCalls.Header(response, CreditCalls.BalanceHeader), await response.Content.ReadAsStringAsync()));
            }
            finally
            {
                gate.Release();
            }
        })).WaitAsync(TimeSpan.FromMinutes(3));

        var succeeded = outcomes.Where(o => o.Status == HttpStatusCode.OK).ToList();
        var refused = outcomes.Where(o => o.Status == HttpStatusCode.PaymentRequired).ToList();
        Assert.Equal(Calls, outcomes.Count);
        Assert.Equal(100, succeeded.Count);
        Assert.Equal(900, refused.Count);
        Assert.All(succeeded, o => Assert.Equal("10", o.Charge));
        Assert.All(succeeded, o => Assert.Contains("\"text\":\"5\"", o.Body, StringComparison.Ordinal));
        // Every success saw its own balance: 990, 980, …, 0.
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)(i * 10)), succeeded.Select(o => long.Parse(o.Balance!, System.Globalization.CultureInfo.InvariantCulture)).Order());
        Assert.All(refused, o =>
        {
            Assert.Null(o.Charge);
            using var body = JsonDocument.Parse(o.Body);
            var error = body.RootElement.GetProperty("error");
            Assert.Equal(-32402, error.GetProperty("code").GetInt32());
            Assert.Equal("out_of_credit", error.GetProperty("data").GetProperty("reason").GetString());
            Assert.Equal(o.RequestId, error.GetProperty("data").GetProperty("request_id").GetString());
            Assert.Equal(0, error.GetProperty("data").GetProperty("balance_micro").GetInt64());
            Assert.Equal(10, error.GetProperty("data").GetProperty("price_micro").GetInt64());
        });

        var ledger = host.Services.GetRequiredService<IMcpGuardLedgerStore>();
        var rows = await AllRowsAsync(ledger, "alice");
        var usage = rows.Where(r => r.Kind == McpGuardLedgerEntryKind.Usage).ToList();
        Assert.Equal(100, usage.Count);
        Assert.All(usage, r => Assert.Equal(-10, r.AmountMicro));
        Assert.Equal(succeeded.Select(o => o.RequestId).Order(StringComparer.Ordinal), usage.Select(r => r.RequestId!).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(rows, r => r.Kind == McpGuardLedgerEntryKind.Refund);
        Assert.Equal(0, rows.Sum(r => r.AmountMicro));
        Assert.Equal(0, (await ledger.GetAccountAsync("alice", 0, DateTimeOffset.UtcNow, default))!.BalanceMicro);
        Assert.Equal(Enumerable.Range(0, 101).Select(i => 1000L - (10 * i)), rows.Select(r => r.BalanceAfterMicro));
        if (store == McpGuardStoreKind.Sqlite)
        {
            var path = CreditCalls.LedgerPath(host);
            var file = LedgerFile.Rows(path, "alice");
            Assert.Equal(rows.Select(r => (r.Id, r.AmountMicro, r.RequestId)), file.Select(r => (r.Id, r.Amount, r.RequestId)));
            LedgerFile.AssertBalancesAreRunningSums(file);
        }
    }

    /// <summary>The account's rows, oldest first, paged through the store.</summary>
    private static async Task<List<McpGuardLedgerEntry>> AllRowsAsync(IMcpGuardLedgerStore store, string account)
    {
        var rows = new List<McpGuardLedgerEntry>();
        long? before = null;
        for (var pages = 0; pages < 100; pages++)
        {
            var page = await store.GetLedgerAsync(account, before, 50, default);
            rows.AddRange(page.Entries);
            before = page.NextCursor;
            if (before is null)
            {
                rows.Reverse();
                return rows;
            }
        }

        throw new InvalidOperationException("More than 100 pages of ledger.");
    }
}
