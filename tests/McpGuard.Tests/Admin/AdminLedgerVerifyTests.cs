using System.Net;
using McpGuard.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using static McpGuard.Tests.Admin.AdminTestKit;

namespace McpGuard.Tests.Admin;

/// <summary>
/// <c>GET /admin/ledger/verify</c> on the sample: the money invariant for every account, a planted difference found and
/// logged, and the endpoint refused with credits off. Old rows rolled up at start keep the invariant.
/// </summary>
public sealed class AdminLedgerVerifyTests
{
    [Fact]
    public async Task Verify_answers_every_account_checked_and_no_difference()
    {
        await using var host = await StartSampleAsync();
        using (var call = await CreditCalls.CallAsync(host, CreditCalls.Add(1)))
        {
            Assert.Equal(HttpStatusCode.OK, call.StatusCode);
        }

        using var response = await host.GetAdminAsync("/admin/ledger/verify");

        await AssertJsonAsync(response, HttpStatusCode.OK, Json("""{"accounts_checked":3,"rows_checked":3,"as_of_entry_id":3,"differences":[]}"""));
        Assert.DoesNotContain(host.Logs.Entries, e => e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task Verify_finds_a_row_changed_behind_the_ledgers_back_and_logs_it()
    {
        await using var host = await StartSampleAsync();
        using (var call = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "planted-1"))
        {
            Assert.Equal(HttpStatusCode.OK, call.StatusCode);
        }

        using (var connection = new SqliteConnection($"Data Source={CreditCalls.LedgerPath(host)};Pooling=False"))
        {
            connection.Open();
            McpGuard.Storage.SqliteDatabase.Execute(connection, "UPDATE ledger SET amount = -8 WHERE request_id = 'planted-1';");
        }

        using var response = await host.GetAdminAsync("/admin/ledger/verify");

        await AssertJsonAsync(response, HttpStatusCode.OK, Json("""
            {"accounts_checked":3,"rows_checked":3,"as_of_entry_id":3,"differences":[
              {"account":"alice","balance_micro":999200,"ledger_micro":999992,"difference_micro":-792,"top_ups_micro":1000000,
               "usage_micro":-8,"refunds_micro":0,"adjustments_micro":0,"last_balance_after_micro":999200}]}
            """));
        var logged = Assert.Single(host.Logs.Entries, e => e.Level >= LogLevel.Warning);
        Assert.Equal(new EventId(7009, "LedgerDifferences"), logged.EventId);
        Assert.Equal(LogLevel.Error, logged.Level);
        Assert.Equal("Admin (admin key) verified the ledger: 1 of 3 accounts have a balance that is not what their rows add up to (as of row 3).", logged.Message);
    }

    [Fact]
    public async Task Verify_is_refused_with_credits_off()
    {
        await using var host = await StartSampleAsync(overrides: new Dictionary<string, string?> { ["McpGuard:Credits:Enabled"] = "false" });

        using var response = await host.GetAdminAsync("/admin/ledger/verify");

        await AssertProblemAsync(response, HttpStatusCode.Conflict, "Conflict",
            "Credits are disabled (McpGuard:Credits:Enabled is false): balances, caps and the ledger are not in use. Keys, suspensions and tool statuses work without them.");
    }

    [Fact]
    public async Task With_a_retention_the_sample_rolls_old_rows_into_daily_totals_at_start_and_the_money_still_adds_up()
    {
        // A ledger written 40 days before the sample starts with RetentionDays=30.
        var clock = new FakeTimeProvider(Start.AddDays(-40));
        var path = LedgerFile.NewPath();
        try
        {
            await using (var old = StoreUnderTestFor(path, clock))
            {
                await old.Engine.SeedAsync([new McpGuardAccount("alice", 1_000_000, null, 0, 0), new McpGuardAccount("bob", 240, null, 0, 0)], clock.GetUtcNow(), default);
                await old.ChargeAsync("alice", "old-1", 800, tool: "add");
                await old.ChargeAsync("alice", "old-2", 800, tool: "add");
                Assert.True(await old.Engine.RefundAsync("old-2", clock.GetUtcNow(), default));
            }

            clock.SetUtcNow(Start);
            await using var host = await StartSampleAsync(clock, new Dictionary<string, string?>
            {
                ["McpGuard:SqlitePath"] = path,
                ["McpGuard:Credits:RetentionDays"] = "30",
            });

            var rolled = await WaitForAsync(host, 6201);
            Assert.Equal(LogLevel.Information, rolled.Level);
            Assert.Equal("Rolled 3 ledger rows written before 2026-04-09T12:00:00.0000000Z (retention 30 days) into daily totals.", rolled.Message);
            Assert.Equal(["TopUp", "TopUp"], LedgerFile.Rows(path).Select(r => r.Kind));
            using var verify = await host.GetAdminAsync("/admin/ledger/verify");
            await AssertJsonAsync(verify, HttpStatusCode.OK, Json("""{"accounts_checked":2,"rows_checked":5,"as_of_entry_id":5,"differences":[]}"""));
            using var account = await host.GetAdminAsync("/admin/accounts/alice");
            await AssertJsonAsync(account, HttpStatusCode.OK, Account("alice", 999_200, null, 0, 0));
        }
        finally
        {
            LedgerFile.Delete(path);
        }
    }

    private static System.Text.Json.Nodes.JsonNode Json(string text) => System.Text.Json.Nodes.JsonNode.Parse(text)!;

    private static McpGuard.Tests.Credits.StoreUnderTest StoreUnderTestFor(string path, TimeProvider clock) =>
        McpGuard.Tests.Credits.StoreUnderTest.Open(McpGuard.McpGuardStoreKind.Sqlite, clock, path);

    private static async Task<LogEntry> WaitForAsync(GuardedHost host, int eventId)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (waited.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (host.Logs.Entries.FirstOrDefault(e => e.EventId.Id == eventId) is { } entry)
            {
                return entry;
            }

            await Task.Delay(20);
        }

        throw new Xunit.Sdk.XunitException($"Event {eventId} was not logged within 10 s.");
    }
}
