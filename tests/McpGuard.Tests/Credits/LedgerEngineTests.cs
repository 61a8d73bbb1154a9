using System.Security.Cryptography;
using System.Text;
using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Credits;

/// <summary>
/// The ledger's rules (free tier, then balance, then cap; at most one charge and one refund per request id;
/// never below zero; balance = sum of rows) on both built-in stores, and what the SQLite file holds and rebuilds.
/// </summary>
public sealed class LedgerEngineTests : IAsyncLifetime
{
    private static readonly DateTimeOffset March10 = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _clock = new(March10);
    private readonly List<StoreUnderTest> _stores = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => StoreUnderTest.DisposeAllAsync(_stores);

    public static TheoryData<string> Stores => new() { nameof(McpGuardStoreKind.InMemory), nameof(McpGuardStoreKind.Sqlite) };

    // ---- charging: free tier, then balance, then cap ----

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task The_free_tier_pays_first_then_the_balance_then_the_cap_decides(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind, Seed("a", 1000, cap: 1500));

        ValueAssert.Equal(Result(McpGuardChargeOutcome.Free, 1000, 0, 1500), await store.ChargeAsync("a", "r1", 400, freeCalls: 2));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.Free, 1000, 0, 1500), await store.ChargeAsync("a", "r2", 400, freeCalls: 2));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.Charged, 600, 400, 1500), await store.ChargeAsync("a", "r3", 400, freeCalls: 2));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.Charged, 200, 800, 1500), await store.ChargeAsync("a", "r4", 400, freeCalls: 2));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.OutOfCredit, 200, 800, 1500), await store.ChargeAsync("a", "r5", 400, freeCalls: 2));
        await store.Engine.TopUpAsync("a", 1000, "invoice 7", _clock.GetUtcNow(), default);
        ValueAssert.Equal(Result(McpGuardChargeOutcome.Charged, 800, 1200, 1500), await store.ChargeAsync("a", "r6", 400, freeCalls: 2));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.CapReached, 800, 1200, 1500), await store.ChargeAsync("a", "r7", 400, freeCalls: 2));
        // Exactly reaching the cap is allowed.
        ValueAssert.Equal(Result(McpGuardChargeOutcome.Charged, 500, 1500, 1500), await store.ChargeAsync("a", "r8", 300, freeCalls: 2));

        Assert.Equal(
            [
                new Row("a", "TopUp", 1000, 1000, null, null, false, "seed"),
                new Row("a", "Usage", 0, 1000, "add", "r1", true, null),
                new Row("a", "Usage", 0, 1000, "add", "r2", true, null),
                new Row("a", "Usage", -400, 600, "add", "r3", false, null),
                new Row("a", "Usage", -400, 200, "add", "r4", false, null),
                new Row("a", "TopUp", 1000, 1200, null, null, false, "invoice 7"),
                new Row("a", "Usage", -400, 800, "add", "r6", false, null),
                new Row("a", "Usage", -300, 500, "add", "r8", false, null),
            ],
            await store.RowsAsync("a"));
        ValueAssert.Equal(new McpGuardAccount("a", 500, 1500, 1500, 0), await store.Engine.GetAccountAsync("a", 2, _clock.GetUtcNow(), default));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Out_of_credit_is_decided_before_the_cap_and_a_free_call_needs_neither(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind, Seed("poor", 100, cap: 0), Seed("capped", 1000, cap: 0), Seed("free", 0, cap: 0));

        ValueAssert.Equal(Result(McpGuardChargeOutcome.OutOfCredit, 100, 0, 0), await store.ChargeAsync("poor", "p1", 200));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.CapReached, 1000, 0, 0), await store.ChargeAsync("capped", "c1", 200));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.Free, 0, 0, 0), await store.ChargeAsync("free", "f1", 200, freeCalls: 1));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.OutOfCredit, 0, 0, 0), await store.ChargeAsync("free", "f2", 200, freeCalls: 1));

        // Refusals write nothing.
        Assert.Equal([new Row("poor", "TopUp", 100, 100, null, null, false, "seed")], await store.RowsAsync("poor"));
        Assert.Equal([new Row("capped", "TopUp", 1000, 1000, null, null, false, "seed")], await store.RowsAsync("capped"));
        Assert.Equal([new Row("free", "Usage", 0, 0, "add", "f1", true, null)], await store.RowsAsync("free"));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task An_account_the_store_has_never_seen_starts_at_zero(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind);

        Assert.Null(await store.Engine.GetAccountAsync("nobody", 3, _clock.GetUtcNow(), default));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.OutOfCredit, 0, 0, null), await store.ChargeAsync("nobody", "n1", 1));
        ValueAssert.Equal(new McpGuardAccount("nobody", 0, null, 0, 3), await store.Engine.GetAccountAsync("nobody", 3, _clock.GetUtcNow(), default));
        Assert.Empty(await store.RowsAsync("nobody"));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_negative_price_is_refused(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind, Seed("a", 1000));

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.ChargeAsync("a", "neg", -1).AsTask());

        Assert.Equal([new Row("a", "TopUp", 1000, 1000, null, null, false, "seed")], await store.RowsAsync("a"));
    }

    // ---- idempotency ----

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_request_id_is_charged_at_most_once(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind, Seed("a", 1000));

        ValueAssert.Equal(Result(McpGuardChargeOutcome.Charged, 600, 400, null), await store.ChargeAsync("a", "dup", 400));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.DuplicateRequest, 600, 400, null), await store.ChargeAsync("a", "dup", 400));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.DuplicateRequest, 600, 400, null), await store.ChargeAsync("a", "dup", 10, tool: "echo"));
        Assert.True(await store.Engine.RefundAsync("dup", _clock.GetUtcNow(), default));
        // A refunded request id stays spent: a retry needs a new id.
        ValueAssert.Equal(Result(McpGuardChargeOutcome.DuplicateRequest, 1000, 0, null), await store.ChargeAsync("a", "dup", 400));

        Assert.Equal(
            [
                new Row("a", "TopUp", 1000, 1000, null, null, false, "seed"),
                new Row("a", "Usage", -400, 600, "add", "dup", false, null),
                new Row("a", "Refund", 400, 1000, "add", "dup", false, null),
            ],
            await store.RowsAsync("a"));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_refused_request_id_is_not_spent(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind, Seed("a", 100));

        Assert.Equal(McpGuardChargeOutcome.OutOfCredit, (await store.ChargeAsync("a", "retry-me", 400)).Outcome);
        await store.Engine.TopUpAsync("a", 1000, null, _clock.GetUtcNow(), default);
        ValueAssert.Equal(Result(McpGuardChargeOutcome.Charged, 700, 400, null), await store.ChargeAsync("a", "retry-me", 400));

        Assert.Single(await store.RowsAsync("a"), r => r.RequestId == "retry-me");
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_refund_gives_the_charge_back_exactly_once(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind, Seed("a", 1000, cap: 5000));
        await store.ChargeAsync("a", "r1", 400);
        await store.ChargeAsync("a", "r2", 100);

        Assert.True(await store.Engine.RefundAsync("r1", _clock.GetUtcNow(), default));
        Assert.False(await store.Engine.RefundAsync("r1", _clock.GetUtcNow(), default));
        Assert.False(await store.Engine.RefundAsync("never-charged", _clock.GetUtcNow(), default));

        Assert.Equal(
            [
                new Row("a", "TopUp", 1000, 1000, null, null, false, "seed"),
                new Row("a", "Usage", -400, 600, "add", "r1", false, null),
                new Row("a", "Usage", -100, 500, "add", "r2", false, null),
                new Row("a", "Refund", 400, 900, "add", "r1", false, null),
            ],
            await store.RowsAsync("a"));
        // The refund comes off this month's spend too.
        ValueAssert.Equal(new McpGuardAccount("a", 900, 5000, 100, 0), await store.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Refunding_a_free_call_gives_the_free_call_back(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind, Seed("a", 1000));
        Assert.Equal(McpGuardChargeOutcome.Free, (await store.ChargeAsync("a", "f1", 400, freeCalls: 1)).Outcome);
        Assert.Equal(0, (await store.Engine.GetAccountAsync("a", 1, _clock.GetUtcNow(), default))!.FreeCallsLeft);

        Assert.True(await store.Engine.RefundAsync("f1", _clock.GetUtcNow(), default));

        ValueAssert.Equal(new McpGuardAccount("a", 1000, null, 0, 1), await store.Engine.GetAccountAsync("a", 1, _clock.GetUtcNow(), default));
        Assert.Equal(McpGuardChargeOutcome.Free, (await store.ChargeAsync("a", "f2", 400, freeCalls: 1)).Outcome);
        Assert.Equal(
            [
                new Row("a", "TopUp", 1000, 1000, null, null, false, "seed"),
                new Row("a", "Usage", 0, 1000, "add", "f1", true, null),
                new Row("a", "Refund", 0, 1000, "add", "f1", true, null),
                new Row("a", "Usage", 0, 1000, "add", "f2", true, null),
            ],
            await store.RowsAsync("a"));
    }

    // ---- top-ups and adjustments ----

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Top_ups_and_adjustments_move_the_balance_but_never_below_zero(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind);
        var now = _clock.GetUtcNow();

        var topUp = await store.Engine.TopUpAsync("a", 500, "invoice 7", now, default);
        var adjustment = await store.Engine.AdjustAsync("a", -200, "duplicate top-up reversed", now, default);
        var below = await Assert.ThrowsAsync<InvalidOperationException>(() => store.Engine.AdjustAsync("a", -301, "too much", now, default).AsTask());
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.Engine.TopUpAsync("a", 0, null, now, default).AsTask());
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.Engine.TopUpAsync("a", -5, null, now, default).AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => store.Engine.AdjustAsync("a", 10, " ", now, default).AsTask());
        var exact = await store.Engine.AdjustAsync("a", -300, "write-off", now, default);

        ValueAssert.Equal(new McpGuardLedgerEntry(topUp.Id, "a", McpGuardLedgerEntryKind.TopUp, 500, 500, null, null, now, false, "invoice 7"), topUp);
        ValueAssert.Equal(new McpGuardLedgerEntry(topUp.Id + 1, "a", McpGuardLedgerEntryKind.Adjustment, -200, 300, null, null, now, false, "duplicate top-up reversed"), adjustment);
        Assert.Equal("An adjustment of -301 would take account 'a' below zero (balance 300).", below.Message);
        ValueAssert.Equal(new McpGuardLedgerEntry(topUp.Id + 2, "a", McpGuardLedgerEntryKind.Adjustment, -300, 0, null, null, now, false, "write-off"), exact);
        Assert.Equal(
            [
                new Row("a", "TopUp", 500, 500, null, null, false, "invoice 7"),
                new Row("a", "Adjustment", -200, 300, null, null, false, "duplicate top-up reversed"),
                new Row("a", "Adjustment", -300, 0, null, null, false, "write-off"),
            ],
            await store.RowsAsync("a"));
        Assert.Equal(0, (await store.Engine.GetAccountAsync("a", 0, now, default))!.BalanceMicro);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Every_balance_always_equals_the_sum_of_its_rows(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        string[] accounts = ["a", "b", "c"];
        var store = await OpenAsync(kind, Seed("a", 5000, cap: 8000), Seed("b", 300), Seed("c", 0));
        var random = new Random(20260310);
        var charged = new List<string>();

        for (var step = 0; step < 300; step++)
        {
            var account = accounts[random.Next(accounts.Length)];
            var now = _clock.GetUtcNow();
            switch (random.Next(6))
            {
                case 0 or 1 or 2:
                    var id = $"s{step}";
                    var result = await store.ChargeAsync(account, id, random.Next(1, 700), freeCalls: account == "b" ? 5 : 0);
                    if (result.Outcome is McpGuardChargeOutcome.Charged or McpGuardChargeOutcome.Free)
                    {
                        charged.Add(id);
                    }

                    break;
                case 3 when charged.Count > 0:
                    await store.Engine.RefundAsync(charged[random.Next(charged.Count)], now, default);
                    break;
                case 4:
                    await store.Engine.TopUpAsync(account, random.Next(1, 900), null, now, default);
                    break;
                default:
                    var balance = (await store.Engine.GetAccountAsync(account, 0, now, default))?.BalanceMicro ?? 0;
                    var amount = random.Next(-600, 600);
                    if (balance + amount >= 0)
                    {
                        await store.Engine.AdjustAsync(account, amount, "correction", now, default);
                    }
                    else
                    {
                        await Assert.ThrowsAsync<InvalidOperationException>(() => store.Engine.AdjustAsync(account, amount, "correction", now, default).AsTask());
                    }

                    break;
            }

            var rows = await store.RowsAsync(account);
            Assert.Equal(rows.Sum(r => r.Amount), (await store.Engine.GetAccountAsync(account, 0, now, default))?.BalanceMicro ?? 0);
            Assert.Equal(rows.Count == 0 ? 0 : rows[^1].BalanceAfter, rows.Sum(r => r.Amount));
        }

        Assert.True(charged.Count > 50, $"only {charged.Count} charges went through");
        foreach (var account in accounts)
        {
            var rows = await store.RowsAsync(account);
            long sum = 0;
            foreach (var row in rows)
            {
                sum += row.Amount;
                Assert.Equal(sum, row.BalanceAfter);
                Assert.True(sum >= 0);
            }

            // At most one usage and one refund per request id.
            Assert.All(rows.Where(r => r.RequestId is not null).GroupBy(r => (r.RequestId, r.Kind)), g => Assert.Single(g));
        }
    }

    // ---- seeding ----

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Seeds_apply_once_to_an_empty_store(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind);
        var now = _clock.GetUtcNow();

        Assert.True(await store.Engine.SeedAsync([Seed("a", 1000, cap: 5000), new McpGuardAccount("b", 0, null, 0, 0)], now, default));
        Assert.False(await store.Engine.SeedAsync([Seed("a", 7777), Seed("z", 10)], now, default));

        Assert.Equal([new Row("a", "TopUp", 1000, 1000, null, null, false, "seed")], await store.RowsAsync("a"));
        Assert.Empty(await store.RowsAsync("b"));
        Assert.Empty(await store.RowsAsync("z"));
        ValueAssert.Equal(new McpGuardAccount("a", 1000, 5000, 0, 0), await store.Engine.GetAccountAsync("a", 0, now, default));
        ValueAssert.Equal(new McpGuardAccount("b", 0, null, 0, 0), await store.Engine.GetAccountAsync("b", 0, now, default));
        Assert.Null(await store.Engine.GetAccountAsync("z", 0, now, default));
    }

    [Fact]
    public async Task A_store_that_has_accounts_is_not_seeded_again_after_a_restart()
    {
        var path = LedgerFile.NewPath();
        await using (var first = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path))
        {
            Assert.True(await first.Engine.SeedAsync([Seed("a", 1000)], _clock.GetUtcNow(), default));
            await first.ChargeAsync("a", "r1", 100);
        }

        await using var second = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path);
        Assert.False(await second.Engine.SeedAsync([Seed("a", 1000)], _clock.GetUtcNow(), default));

        Assert.Equal(
            [
                new Row("a", "TopUp", 1000, 1000, null, null, false, "seed"),
                new Row("a", "Usage", -100, 900, "add", "r1", false, null),
            ],
            await second.RowsAsync("a"));
    }

    // ---- pages ----

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task The_ledger_pages_newest_first(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind, Seed("a", 1000), Seed("b", 50));
        for (var i = 1; i <= 4; i++)
        {
            await store.ChargeAsync("a", $"p{i}", 10 * i);
        }

        var first = await store.Engine.GetLedgerAsync("a", null, 2, default);
        var second = await store.Engine.GetLedgerAsync("a", first.NextCursor, 2, default);
        var third = await store.Engine.GetLedgerAsync("a", second.NextCursor, 2, default);

        Assert.Equal(["p4", "p3"], first.Entries.Select(e => e.RequestId));
        Assert.Equal(["p2", "p1"], second.Entries.Select(e => e.RequestId));
        Assert.Equal([McpGuardLedgerEntryKind.TopUp], third.Entries.Select(e => e.Kind));
        Assert.Equal(first.Entries[^1].Id, first.NextCursor);
        Assert.Equal(second.Entries[^1].Id, second.NextCursor);
        Assert.Null(third.NextCursor);
        Assert.Equal([1000L - 100, 1000L - 60], first.Entries.Select(e => e.BalanceAfterMicro));
    }

    // ---- the SQLite file ----

    [Fact]
    public async Task A_charge_is_in_the_file_when_the_call_returns()
    {
        var store = await OpenAsync(McpGuardStoreKind.Sqlite, Seed("a", 1000));

        await store.ChargeAsync("a", "durable-1", 250);
        var rows = LedgerFile.Rows(store.Path!);
        await store.Engine.RefundAsync("durable-1", _clock.GetUtcNow(), default);
        var afterRefund = LedgerFile.Rows(store.Path!);

        Assert.Equal(
            [
                new LedgerRow(1, "a", "TopUp", 1000, 1000, null, null, false, "seed", "2026-03-10T12:00:00.0000000Z"),
                new LedgerRow(2, "a", "Usage", -250, 750, "add", "durable-1", false, null, "2026-03-10T12:00:00.0000000Z"),
            ],
            rows);
        Assert.Equal(new LedgerRow(3, "a", "Refund", 250, 1000, "add", "durable-1", false, null, "2026-03-10T12:00:00.0000000Z"), afterRefund[^1]);
        Assert.Equal(3, afterRefund.Count);
    }

    [Fact]
    public async Task Rows_keep_non_ascii_text_long_notes_and_every_tick_of_the_time()
    {
        var store = await OpenAsync(McpGuardStoreKind.Sqlite);
        var note = "Überweisung ✓ " + new string('n', 600); // more than the insert encodes on the stack
        var at = March10.AddTicks(1_234_567).ToOffset(TimeSpan.FromHours(2));

        await store.Engine.TopUpAsync("kunde-ä", 5, note, at, default);
        await store.Engine.TopUpAsync("kunde-ä", 7, null, March10, default);

        Assert.Equal(
            [
                new LedgerRow(1, "kunde-ä", "TopUp", 5, 5, null, null, false, note, "2026-03-10T12:00:00.1234567Z"),
                new LedgerRow(2, "kunde-ä", "TopUp", 7, 12, null, null, false, null, "2026-03-10T12:00:00.0000000Z"),
            ],
            LedgerFile.Rows(store.Path!));
    }

    [Fact]
    public async Task The_schema_is_created_on_first_open()
    {
        var store = await OpenAsync(McpGuardStoreKind.Sqlite);

        Assert.Equal(4, LedgerFile.Scalar(store.Path!, "PRAGMA user_version;"));
        Assert.Equal(["wal"], LedgerFile.Strings(store.Path!, "PRAGMA journal_mode;"));
        Assert.Equal(
            ["account_status", "accounts", "api_keys", "ledger", "ledger_checkpoint", "ledger_daily", "ledger_holds", "tool_status"],
            LedgerFile.Strings(store.Path!, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name;"));
        Assert.Equal(
            ["ledger_by_account", "ledger_by_request"],
            LedgerFile.Strings(store.Path!, "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name;"));
        Assert.Empty(LedgerFile.Rows(store.Path!));
    }

    [Fact]
    public async Task Opening_and_closing_ledger_files_many_times_at_once_never_fails()
    {
        // Opening reads the file back while the writer loop starts up. They used to share one SqliteConnection (not
        // thread-safe), which now and then corrupted its command list and threw NullReferenceException on Dispose.
        // The race is narrow: this stresses open/reopen/close and the state rebuilt each time, but caught it only
        // rarely; the full suite (which opens hundreds of ledgers under load) showed it about once in six runs.
        var paths = Enumerable.Range(0, 16).Select(_ => LedgerFile.NewPath()).ToList();
        try
        {
            await Task.WhenAll(paths.Select(path => Task.Run(async () =>
            {
                await using (var seeded = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path))
                {
                    await seeded.Engine.SeedAsync([Seed("a", 1000)], _clock.GetUtcNow(), default);
                }

                for (var i = 1; i <= 40; i++)
                {
                    await using var store = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, _clock, path);
                    Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync("a", $"r{i}", 1)).Outcome);
                }
            }))).WaitAsync(TimeSpan.FromMinutes(2));

            Assert.All(paths, path => Assert.Equal(1000 - 40, LedgerFile.Balance(path, "a")));
        }
        finally
        {
            paths.ForEach(LedgerFile.Delete);
        }
    }

    [Fact]
    public void A_newer_schema_is_refused_with_a_clear_message_and_left_alone()
    {
        var path = LedgerFile.NewPath();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using (var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString()))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE future (x INTEGER); PRAGMA user_version = 5;";
            command.ExecuteNonQuery();
        }

        var ex = Assert.Throws<InvalidOperationException>(() => new SqliteJournal(new McpGuard.Storage.SqliteDatabase(path)));

        Assert.Equal($"The McpGuard database '{path}' has schema version 5; this McpGuard knows up to 4. Use a newer McpGuard.", ex.Message);
        Assert.Equal(5, LedgerFile.Scalar(path, "PRAGMA user_version;"));
        Assert.Equal(["future"], LedgerFile.Strings(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name;"));
    }

    [Fact]
    public async Task Reopening_the_file_rebuilds_balances_spend_free_calls_and_refunds()
    {
        var path = LedgerFile.NewPath();
        var february20 = new DateTimeOffset(2026, 2, 20, 9, 0, 0, TimeSpan.Zero);
        var clock = new FakeTimeProvider(february20);
        long lastId;
        await using (var first = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, clock, path))
        {
            await first.Engine.SeedAsync([Seed("a", 10_000, cap: 50_000), Seed("b", 500)], clock.GetUtcNow(), default);
            Assert.Equal(McpGuardChargeOutcome.Charged, (await first.ChargeAsync("a", "feb-1", 1000, now: clock.GetUtcNow())).Outcome);
            Assert.Equal(McpGuardChargeOutcome.Free, (await first.ChargeAsync("a", "feb-free", 1000, freeCalls: 2, now: clock.GetUtcNow())).Outcome);

            clock.Advance(TimeSpan.FromDays(18)); // 2026-03-10
            var now = clock.GetUtcNow();
            Assert.Equal(McpGuardChargeOutcome.Free, (await first.ChargeAsync("a", "mar-free", 700, freeCalls: 2, now: now)).Outcome);
            Assert.Equal(McpGuardChargeOutcome.Free, (await first.ChargeAsync("a", "mar-free-refunded", 700, freeCalls: 2, now: now)).Outcome);
            Assert.True(await first.Engine.RefundAsync("mar-free-refunded", now, default));
            Assert.Equal(McpGuardChargeOutcome.Charged, (await first.ChargeAsync("a", "mar-1", 700, now: now)).Outcome);
            Assert.Equal(McpGuardChargeOutcome.Charged, (await first.ChargeAsync("a", "mar-2", 300, now: now)).Outcome);
            Assert.True(await first.Engine.RefundAsync("mar-2", now, default));

            await first.Engine.SetMonthlyCapAsync("b", 900, default);
            lastId = LedgerFile.Rows(path).Max(r => r.Id);
        }

        await using var second = StoreUnderTest.Open(McpGuardStoreKind.Sqlite, clock, path);
        var at = clock.GetUtcNow();

        // Balance: 10000 - 1000 (Feb) - 700 (Mar); March spend 700 (mar-2 refunded); one March free call used (the other refunded).
        ValueAssert.Equal(new McpGuardAccount("a", 8300, 50_000, 700, 1), await second.Engine.GetAccountAsync("a", 2, at, default));
        ValueAssert.Equal(new McpGuardAccount("b", 500, 900, 0, 0), await second.Engine.GetAccountAsync("b", 0, at, default));

        // Refunded flags and spent request ids survive.
        Assert.False(await second.Engine.RefundAsync("mar-2", at, default));
        Assert.False(await second.Engine.RefundAsync("mar-free-refunded", at, default));
        Assert.Equal(McpGuardChargeOutcome.DuplicateRequest, (await second.ChargeAsync("a", "mar-1", 700, now: at)).Outcome);
        Assert.Equal(McpGuardChargeOutcome.DuplicateRequest, (await second.ChargeAsync("a", "feb-1", 700, now: at)).Outcome);
        // One free call left this month, then the balance pays; row ids continue after the last one.
        ValueAssert.Equal(Result(McpGuardChargeOutcome.Free, 8300, 700, 50_000), await second.ChargeAsync("a", "after-1", 700, freeCalls: 2, now: at));
        ValueAssert.Equal(Result(McpGuardChargeOutcome.Charged, 7600, 1400, 50_000), await second.ChargeAsync("a", "after-2", 700, freeCalls: 2, now: at));
        // A February charge is still refundable; it does not change March's spend.
        Assert.True(await second.Engine.RefundAsync("feb-1", at, default));
        ValueAssert.Equal(new McpGuardAccount("a", 8600, 50_000, 1400, 0), await second.Engine.GetAccountAsync("a", 2, at, default));

        var rows = LedgerFile.Rows(path);
        Assert.Equal([lastId + 1, lastId + 2, lastId + 3], rows.Where(r => r.Id > lastId).Select(r => r.Id));
        Assert.Equal(["after-1", "after-2", "feb-1"], rows.Where(r => r.Id > lastId).Select(r => r.RequestId));
        LedgerFile.AssertBalancesAreRunningSums(rows);
        Assert.Equal(8600, LedgerFile.Balance(path, "a"));
    }

    // ---- concurrency ----

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Concurrent_charges_never_spend_a_balance_twice(string kindName)
    {
        var kind = Enum.Parse<McpGuardStoreKind>(kindName);
        var store = await OpenAsync(kind, Seed("a", 1000));

        var results = await Task.WhenAll(Enumerable.Range(0, 1000).Select(i => Task.Run(() => store.ChargeAsync("a", $"c{i}", 10).AsTask())));

        Assert.Equal(100, results.Count(r => r.Outcome == McpGuardChargeOutcome.Charged));
        Assert.Equal(900, results.Count(r => r.Outcome == McpGuardChargeOutcome.OutOfCredit));
        var rows = await store.RowsAsync("a");
        Assert.Equal(100, rows.Count(r => r.Kind == "Usage"));
        Assert.Equal(0, rows.Sum(r => r.Amount));
        Assert.Equal(0, (await store.Engine.GetAccountAsync("a", 0, _clock.GetUtcNow(), default))!.BalanceMicro);
        Assert.Equal(Enumerable.Range(0, 101).Select(i => 1000L - (10 * i)), rows.Select(r => r.BalanceAfter));
    }

    // ---- helpers ----

    private static McpGuardAccount Seed(string account, long balance, long? cap = null) => new(account, balance, cap, 0, 0);

    private static McpGuardChargeResult Result(McpGuardChargeOutcome outcome, long balance, long spent, long? cap) => new(outcome, balance, spent, cap);

    private async Task<StoreUnderTest> OpenAsync(McpGuardStoreKind kind, params McpGuardAccount[] seeds)
    {
        var store = StoreUnderTest.Open(kind, _clock, kind == McpGuardStoreKind.Sqlite ? LedgerFile.NewPath() : null);
        _stores.Add(store);
        if (seeds.Length > 0)
        {
            Assert.True(await store.Engine.SeedAsync(seeds, _clock.GetUtcNow(), default));
        }

        return store;
    }
}

/// <summary>A ledger row without its id and time, the same for both stores.</summary>
internal sealed record Row(string Account, string Kind, long Amount, long BalanceAfter, string? Tool, string? RequestId, bool Free, string? Note);

/// <summary>A <see cref="LedgerEngine"/> over one of the built-in journals; rows come from the file itself for SQLite.</summary>
internal sealed class StoreUnderTest : IAsyncDisposable
{
    private readonly TimeProvider _clock;
    private bool _disposed;

    private StoreUnderTest(LedgerEngine engine, LedgerJournal journal, TimeProvider clock, string? path)
    {
        Engine = engine;
        Journal = journal;
        _clock = clock;
        Path = path;
    }

    public LedgerEngine Engine { get; }

    public LedgerJournal Journal { get; }

    public string? Path { get; }

    /// <summary>Disposes the stores a test opened and deletes their files.</summary>
    public static async Task DisposeAllAsync(IEnumerable<StoreUnderTest> stores)
    {
        foreach (var store in stores)
        {
            await store.DisposeAsync();
            LedgerFile.Delete(store.Path);
        }
    }

    public static StoreUnderTest Open(
        McpGuardStoreKind kind, TimeProvider clock, string? path, int recentCapacity = LedgerEngine.DefaultRecentCapacity, int checkpointEvery = SqliteJournal.DefaultCheckpointEvery)
    {
        LedgerJournal journal = kind == McpGuardStoreKind.Sqlite
            ? new SqliteJournal(new McpGuard.Storage.SqliteDatabase(path!), checkpointEvery: checkpointEvery)
            : new InMemoryJournal();
        return new StoreUnderTest(new LedgerEngine(journal, clock, NullLogger.Instance, recentCapacity), journal, clock, path);
    }

    /// <summary>A charge as the credit gate makes it; <paramref name="newId"/>: an id McpGuard made (the client sent none).</summary>
    public ValueTask<McpGuardChargeResult> ChargeAsync(string account, string requestId, long price, int freeCalls = 0, string tool = "add", DateTimeOffset? now = null, bool newId = false) =>
        Engine.ChargeAsync(new McpGuardChargeRequest(account, requestId, tool, price, freeCalls, now ?? _clock.GetUtcNow(), newId), default);

    /// <summary>The account's rows, oldest first: read from the file for SQLite, paged through the store for in-memory.</summary>
    public async Task<List<Row>> RowsAsync(string account)
    {
        if (Path is not null)
        {
            return [.. LedgerFile.Rows(Path, account).Select(r => new Row(r.Account, r.Kind, r.Amount, r.BalanceAfter, r.Tool, r.RequestId, r.Free, r.Note))];
        }

        var entries = new List<McpGuardLedgerEntry>();
        long? before = null;
        do
        {
            var page = await Engine.GetLedgerAsync(account, before, 50, default);
            entries.AddRange(page.Entries);
            before = page.NextCursor;
        }
        while (before is not null);

        entries.Reverse();
        return [.. entries.Select(e => new Row(e.Account, e.Kind.ToString(), e.AmountMicro, e.BalanceAfterMicro, e.Tool, e.RequestId, e.Free, e.Note))];
    }

    public async ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            await Engine.DisposeAsync();
        }
    }
}
