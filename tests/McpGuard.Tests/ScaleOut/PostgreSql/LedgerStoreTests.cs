using System.Diagnostics;
using McpGuard.Credits;
using McpGuard.PostgreSql;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace McpGuard.Tests.ScaleOut.PostgreSql;

/// <summary>
/// The PostgreSQL ledger store on its own: a charge whose caller stopped waiting cannot commit much later (the batch
/// carrying it is bounded by <c>McpGuard:StoreTimeout</c> on the server, statement_timeout, so McpGuard's 60 s watch for
/// late charges covers it), and one operation the server refuses does not fail the others batched with it.
/// </summary>
public sealed class LedgerStoreTests(PostgreSqlCluster cluster) : IClassFixture<PostgreSqlCluster>
{
    private static readonly DateTimeOffset Now = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_charge_held_up_by_a_lock_is_rolled_back_by_the_server_within_the_store_timeout()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var database = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromMilliseconds(500), NullLogger.Instance);
        await using var store = new PostgreSqlLedgerStore(database, TimeProvider.System, NullLogger.Instance);
        await store.TopUpAsync("a", 10_000, "start", Now, default);

        // Another session holds alice's row for 2 s: the batch waits for it.
        await using var blocker = new NpgsqlConnection(connectionString + ";Pooling=false");
        await blocker.OpenAsync();
        await using var transaction = await blocker.BeginTransactionAsync();
        await using (var hold = new NpgsqlCommand("SELECT 1 FROM mcpguard.accounts WHERE id = 'a' FOR UPDATE;", blocker, transaction))
        {
            await hold.ExecuteNonQueryAsync();
        }

        using var caller = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var watch = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            await store.ChargeAsync(new McpGuardChargeRequest("a", "late-1", "add", 800, 0, Now), caller.Token));
        // The caller's own 200 ms token ended its wait, well before the lock's 2 s. The bound (it was 450 ms) leaves room for a
        // loaded machine: a full run once measured more than that.
        Assert.True(watch.Elapsed < TimeSpan.FromMilliseconds(1_000), $"the caller waited {watch.ElapsedMilliseconds} ms");

        await Task.Delay(TimeSpan.FromSeconds(2));
        await transaction.CommitAsync();

        // The server gave up on the batch at 500 ms: nothing was charged, and the ledger works again at once.
        Assert.Empty(await PostgreSqlCluster.QueryAsync<string>(connectionString, "SELECT request_id FROM mcpguard.ledger WHERE kind = 'Usage';"));
        Assert.False(await store.RefundAsync("late-1", Now, default));
        var next = await store.ChargeAsync(new McpGuardChargeRequest("a", "next-1", "add", 800, 0, Now), default);
        Assert.Equal((McpGuardChargeOutcome.Charged, 9_200L), (next.Outcome, next.BalanceMicro));
    }

    [Fact]
    public async Task Totals_are_grouped_by_postgresql_over_the_window_through_an_index_on_the_rows_time()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var database = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(5), NullLogger.Instance);
        await using var store = new PostgreSqlLedgerStore(database, TimeProvider.System, NullLogger.Instance);

        await McpGuard.Tests.Credits.LedgerTotalsScript.WriteAsync(store);

        Assert.Equal(McpGuard.Tests.Credits.LedgerTotalsScript.Expected, await McpGuard.Tests.Credits.LedgerTotalsScript.TotalsAsync(store));
        // The index is built after the migrations, concurrently and in the background: valid once that build has ended.
        await database.IndexesBuilt.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(["ledger_created_at USING brin (created_at) valid"], await PostgreSqlCluster.QueryAsync<string>(connectionString, """
            SELECT c.relname || ' USING ' || am.amname || ' (created_at) ' || CASE WHEN i.indisvalid THEN 'valid' ELSE 'invalid' END
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'mcpguard' AND pg_get_indexdef(i.indexrelid) LIKE '%(created_at)%';
            """));
        Assert.Equal(McpGuard.Tests.Credits.LedgerTotalsScript.Expected, await McpGuard.Tests.Credits.LedgerTotalsScript.TotalsAsync(store));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () =>
            await ((ILedgerTotals)store).GetTotalsAsync(McpGuard.Tests.Credits.LedgerTotalsScript.WindowStart, McpGuard.Tests.Credits.LedgerTotalsScript.WindowStart, TimeSpan.FromMinutes(5), default));
    }

    [Fact]
    public async Task An_invalid_index_left_by_a_failed_build_is_dropped_and_built_again()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using (var first = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(5), NullLogger.Instance))
        {
            await first.EnsureMigratedAsync(default);
            await first.IndexesBuilt.WaitAsync(TimeSpan.FromSeconds(30));
        }

        // What a CONCURRENTLY build that failed half-way leaves behind: the index, marked invalid.
        await PostgreSqlCluster.QueryAsync<int>(connectionString,
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'mcpguard.ledger_created_at'::regclass RETURNING 1;");
        await using var database = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(5), NullLogger.Instance);
        await database.EnsureMigratedAsync(default);
        await database.IndexesBuilt.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal([true], await PostgreSqlCluster.QueryAsync<bool>(connectionString,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'mcpguard.ledger_created_at'::regclass;"));
    }

    [Fact]
    public async Task A_tool_name_with_NUL_is_charged_normally_and_an_id_with_NUL_is_refused_alone()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var database = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(5), NullLogger.Instance);
        await using var store = new PostgreSqlLedgerStore(database, TimeProvider.System, NullLogger.Instance, writers: 1);
        await store.TopUpAsync("a", 100_000, "start", Now, default);

        // A NUL in a tool name: PostgreSQL text cannot hold it, so it is stored as U+FFFD (the column is informational).
        var charges = Enumerable.Range(0, 40)
            .Select(i => store.ChargeAsync(new McpGuardChargeRequest("a", $"iso-{i}", i == 20 ? "bad\0tool" : "add", 100, 0, Now), default).AsTask())
            .ToList();
        var outcomes = await Task.WhenAll(charges);

        Assert.All(outcomes, o => Assert.Equal(McpGuardChargeOutcome.Charged, o.Outcome));
        Assert.Equal(0, store.Splits);
        Assert.Equal(["bad\uFFFDtool"], await PostgreSqlCluster.QueryAsync<string>(connectionString, "SELECT tool FROM mcpguard.ledger WHERE request_id = 'iso-20';"));
        Assert.Equal(100_000 - (40 * 100), (await store.GetAccountAsync("a", 0, Now, default))!.BalanceMicro);

        // An account or request id with NUL is refused before it is queued.
        await Assert.ThrowsAsync<ArgumentException>(async () => await store.ChargeAsync(new McpGuardChargeRequest("a\0b", "nul-1", "add", 100, 0, Now), default));
        await Assert.ThrowsAsync<ArgumentException>(async () => await store.ChargeAsync(new McpGuardChargeRequest("a", "nul\0-2", "add", 100, 0, Now), default));
        await Assert.ThrowsAsync<ArgumentException>(async () => await store.RefundAsync("nul\0-2", Now, default));
    }

    [Fact]
    public async Task A_refused_batch_is_split_and_an_operation_whose_caller_gave_up_meanwhile_is_not_applied()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var database = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(10), NullLogger.Instance);
        await using var store = new PostgreSqlLedgerStore(database, TimeProvider.System, NullLogger.Instance, writers: 1);
        await store.TopUpAsync("a", 100_000, "start", Now, default);
        await store.TopUpAsync("gate", 100_000, "start", Now, default);
        // The server refuses the row of 'poison', 1.5 s into the batch.
        // The trigger is DDL on the ledger: after the background index build, which it would otherwise meet as a deadlock.
        await database.IndexesBuilt;
        await InstallFaultAsync(connectionString, "NEW.request_id = 'poison'", "PERFORM pg_sleep(1.5); RAISE EXCEPTION 'poisoned' USING ERRCODE = 'P0001';");

        Task<McpGuardChargeResult> poison, gaveUp, kept;
        using var giveUp = new CancellationTokenSource();
        await using (var gate = await HoldAsync(connectionString, "gate"))
        {
            // The only writer waits on the held row with a batch of its own, so the next three are taken together.
            var first = store.ChargeAsync(new McpGuardChargeRequest("gate", "gate-1", "add", 100, 0, Now), default).AsTask();
            await Task.Delay(300);
            poison = store.ChargeAsync(new McpGuardChargeRequest("a", "poison", "add", 100, 0, Now), default).AsTask();
            gaveUp = store.ChargeAsync(new McpGuardChargeRequest("a", "gave-up", "add", 100, 0, Now), giveUp.Token).AsTask();
            kept = store.ChargeAsync(new McpGuardChargeRequest("a", "kept", "add", 100, 0, Now), default).AsTask();
            await Task.Delay(200);
            await gate.CommitAsync();
            Assert.Equal(McpGuardChargeOutcome.Charged, (await first).Outcome);
        }

        // Its caller gives up while the batch is in the server (taken, then refused at 1.5 s).
        await Task.Delay(500);
        await giveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => gaveUp);

        Assert.Equal("P0001", (await Assert.ThrowsAsync<PostgresException>(() => poison)).SqlState);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await kept).Outcome);
        Assert.Equal(1, store.Splits);
        Assert.Equal(["kept"], await PostgreSqlCluster.QueryAsync<string>(connectionString, "SELECT request_id FROM mcpguard.ledger WHERE account = 'a' AND kind = 'Usage';"));
        Assert.Equal(100_000 - 100, (await store.GetAccountAsync("a", 0, Now, default))!.BalanceMicro);
    }

    [Fact]
    public async Task A_batch_rolled_back_by_a_deadlock_is_applied_again_and_no_caller_sees_the_deadlock()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var database = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(10), NullLogger.Instance);
        await using var store = new PostgreSqlLedgerStore(database, TimeProvider.System, NullLogger.Instance, writers: 1);
        await store.TopUpAsync("a", 100_000, "start", Now, default);
        await store.TopUpAsync("gate", 100_000, "start", Now, default);
        // The first row of a 'victim' id the server is asked to write fails as a deadlock victim does (40P01), once.
        await PostgreSqlCluster.QueryAsync<int>(connectionString, "CREATE SEQUENCE mcpguard.fault_once; SELECT 1;");
        // The trigger is DDL on the ledger: after the background index build, which it would otherwise meet as a deadlock.
        await database.IndexesBuilt;
        await InstallFaultAsync(connectionString, "NEW.request_id LIKE 'victim%' AND nextval('mcpguard.fault_once') = 1", "RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';");

        List<Task<McpGuardChargeResult>> charges;
        await using (var gate = await HoldAsync(connectionString, "gate"))
        {
            var first = store.ChargeAsync(new McpGuardChargeRequest("gate", "gate-1", "add", 100, 0, Now), default).AsTask();
            await Task.Delay(300);
            charges = [.. Enumerable.Range(0, 10).Select(i => store.ChargeAsync(new McpGuardChargeRequest("a", i == 5 ? "victim-1" : $"c-{i}", "add", 100, 0, Now), default).AsTask())];
            await Task.Delay(200);
            await gate.CommitAsync();
            await first;
        }

        Assert.All(await Task.WhenAll(charges), c => Assert.Equal(McpGuardChargeOutcome.Charged, c.Outcome));
        Assert.Equal(1, store.Splits);

        // A batch of one is tried once more.
        await PostgreSqlCluster.QueryAsync<long>(connectionString, "SELECT setval('mcpguard.fault_once', 1, false);");
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(new McpGuardChargeRequest("a", "victim-2", "add", 100, 0, Now), default)).Outcome);
        Assert.Equal(100_000 - (11 * 100), (await store.GetAccountAsync("a", 0, Now, default))!.BalanceMicro);
    }

    [Fact]
    public async Task A_refund_of_one_attempt_refunds_only_the_charge_of_that_id_account_and_time()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var database = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(5), NullLogger.Instance);
        await using var store = new PostgreSqlLedgerStore(database, TimeProvider.System, NullLogger.Instance);
        IAttemptRefunds attempts = store;
        await store.TopUpAsync("alice", 10_000, "start", Now, default);
        await store.TopUpAsync("bob", 10_000, "start", Now, default);

        // Charged at a time finer than PostgreSQL keeps (100 ns ticks): stored, and compared, to the microsecond.
        var t1 = Now.AddTicks(1_234_567);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(new McpGuardChargeRequest("alice", "x", "add", 800, 0, t1), default)).Outcome);
        Assert.Equal([t1.UtcDateTime.AddTicks(-7)], await PostgreSqlCluster.QueryAsync<DateTime>(connectionString, "SELECT created_at FROM mcpguard.ledger WHERE request_id = 'x';"));

        Assert.False(await attempts.RefundAttemptAsync("x", "alice", t1.AddSeconds(1), Now.AddMinutes(1), default));
        Assert.False(await attempts.RefundAttemptAsync("x", "alice", t1.AddTicks(10), Now.AddMinutes(1), default));
        Assert.False(await attempts.RefundAttemptAsync("x", "bob", t1, Now.AddMinutes(1), default));
        Assert.False(await attempts.RefundAttemptAsync("never", "alice", t1, Now.AddMinutes(1), default));
        Assert.Empty(await PostgreSqlCluster.QueryAsync<string>(connectionString, "SELECT request_id FROM mcpguard.ledger WHERE kind = 'Refund';"));
        Assert.Equal(9_200, (await store.GetAccountAsync("alice", 0, Now, default))!.BalanceMicro);

        Assert.True(await attempts.RefundAttemptAsync("x", "alice", t1, Now.AddMinutes(1), default));
        Assert.False(await attempts.RefundAttemptAsync("x", "alice", t1, Now.AddMinutes(2), default));
        Assert.False(await store.RefundAsync("x", Now.AddMinutes(2), default));
        Assert.Equal(["x"], await PostgreSqlCluster.QueryAsync<string>(connectionString, "SELECT request_id FROM mcpguard.ledger WHERE kind = 'Refund';"));
        var alice = (await store.GetAccountAsync("alice", 0, Now, default))!;
        Assert.Equal((10_000L, 0L), (alice.BalanceMicro, alice.SpentThisMonthMicro));
        Assert.Equal(10_000, (await store.GetAccountAsync("bob", 0, Now, default))!.BalanceMicro);
    }

    [Fact]
    public async Task A_seed_deferred_while_PostgreSQL_is_down_is_applied_though_accounts_were_made_meanwhile_and_the_ledger_waits_for_it()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var database = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(2), NullLogger.Instance);
        await using var store = new PostgreSqlLedgerStore(database, TimeProvider.System, NullLogger.Instance);
        // Another instance, with no seeds of its own, already migrated.
        await using var otherDatabase = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(2), NullLogger.Instance);
        await using var other = new PostgreSqlLedgerStore(otherDatabase, TimeProvider.System, NullLogger.Instance);
        Assert.Null(await other.GetAccountAsync("bob", 0, Now, default));

        await cluster.StopAsync();
        try
        {
            Assert.False(await store.SeedAsync([new("alice", 5_000, 9_000, 0, 0)], Now, default));

            // Until the seed is written, this instance's ledger refuses every operation (priced calls answer 503).
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await store.ChargeAsync(new McpGuardChargeRequest("alice", "early", "add", 100, 0, Now), default));
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await store.RefundAsync("early", Now, default));
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await store.TopUpAsync("alice", 100, null, Now, default));
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await store.AdjustAsync("alice", 100, "fix", Now, default));
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await store.SetMonthlyCapAsync("alice", 100, default));
            await Assert.ThrowsAsync<InvalidOperationException>(async () => await store.GetAccountAsync("alice", 0, Now, default));
        }
        finally
        {
            await cluster.StartAsync();
        }

        // The other instance makes an account before this one's seed is tried again.
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await other.TopUpAsync("bob", 700, "other", Now, default);
                break;
            }
            catch (Exception) when (watch.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(20);
            }
        }

        McpGuardAccount? alice;
        while (true)
        {
            try
            {
                alice = await store.GetAccountAsync("alice", 0, Now, default);
                break;
            }
            catch (InvalidOperationException) when (watch.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(50);
            }
        }

        Assert.Equal((5_000L, (long?)9_000), (alice!.BalanceMicro, alice.MonthlyCapMicro));
        Assert.Equal(700, (await store.GetAccountAsync("bob", 0, Now, default))!.BalanceMicro);
        Assert.Equal(McpGuardChargeOutcome.Charged, (await store.ChargeAsync(new McpGuardChargeRequest("alice", "later", "add", 100, 0, Now), default)).Outcome);
        // Seeded once: a start after it (this instance again, or another) leaves it alone.
        Assert.False(await other.SeedAsync([new("alice", 5_000, 9_000, 0, 0)], Now, default));
        Assert.Equal([5_000L], await PostgreSqlCluster.QueryAsync<long>(connectionString, "SELECT amount FROM mcpguard.ledger WHERE note = 'seed';"));
    }

    [Fact]
    public async Task A_ledger_seeded_before_the_seed_marker_existed_counts_as_seeded()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var database = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(5), NullLogger.Instance);

        // A database at schema version 1 with an account in it.
        await PostgreSqlCluster.QueryAsync<int>(connectionString, """
            CREATE SCHEMA mcpguard;
            CREATE TABLE mcpguard.schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL);
            """ + database.Sql(PostgreSqlSchema.Migrations[0]) + """

            INSERT INTO mcpguard.schema_version (version, applied_by) VALUES (1, 'test');
            INSERT INTO mcpguard.accounts (id, balance, created_at) VALUES ('carol', 300, now());
            INSERT INTO mcpguard.ledger (account, kind, amount, balance_after, created_at, note) VALUES ('carol', 'TopUp', 300, 300, now(), 'seed');
            SELECT 1;
            """);

        await using var store = new PostgreSqlLedgerStore(database, TimeProvider.System, NullLogger.Instance);
        Assert.False(await store.SeedAsync([new("alice", 5_000, null, 0, 0)], Now, default));
        Assert.Null(await store.GetAccountAsync("alice", 0, Now, default));
        Assert.Equal(Enumerable.Range(1, PostgreSqlSchema.Migrations.Length), await PostgreSqlCluster.QueryAsync<int>(connectionString, "SELECT version FROM mcpguard.schema_version ORDER BY version;"));

        // An empty one is seeded once.
        var empty = await cluster.CreateDatabaseAsync();
        await using var emptyDatabase = new PostgreSqlDatabase(empty, "mcpguard", TimeSpan.FromSeconds(5), NullLogger.Instance);
        await using var emptyStore = new PostgreSqlLedgerStore(emptyDatabase, TimeProvider.System, NullLogger.Instance);
        Assert.True(await emptyStore.SeedAsync([new("alice", 5_000, null, 0, 0)], Now, default));
        Assert.False(await emptyStore.SeedAsync([new("alice", 5_000, null, 0, 0)], Now, default));
        Assert.Equal(5_000, (await emptyStore.GetAccountAsync("alice", 0, Now, default))!.BalanceMicro);
    }

    [Fact]
    public void Only_failures_that_break_connections_clear_the_pool()
    {
        Assert.False(PostgreSqlDatabase.IsBroken(new OperationCanceledException()));
        Assert.False(PostgreSqlDatabase.IsBroken(new TimeoutException()));
        Assert.False(PostgreSqlDatabase.IsBroken(new NpgsqlException("Exception while reading from stream", new TimeoutException())));
        Assert.False(PostgreSqlDatabase.IsBroken(new PostgresException("deadlock detected", "ERROR", "ERROR", "40P01")));
        Assert.False(PostgreSqlDatabase.IsBroken(new PostgresException("canceling statement due to statement timeout", "ERROR", "ERROR", "57014")));
        Assert.False(PostgreSqlDatabase.IsBroken(new InvalidOperationException()));
        Assert.True(PostgreSqlDatabase.IsBroken(new NpgsqlException("Exception while reading from stream", new IOException())));
        Assert.True(PostgreSqlDatabase.IsBroken(new NpgsqlException("Failed to connect", new System.Net.Sockets.SocketException())));
        Assert.True(PostgreSqlDatabase.IsBroken(new IOException()));
        Assert.True(PostgreSqlDatabase.IsBroken(new PostgresException("terminating connection due to administrator command", "FATAL", "FATAL", "57P01")));
        Assert.True(PostgreSqlDatabase.IsBroken(new PostgresException("the database system is starting up", "FATAL", "FATAL", "57P03")));
        Assert.True(PostgreSqlDatabase.IsBroken(new PostgresException("connection failure", "FATAL", "FATAL", "08006")));
    }

    /// <summary>A trigger on the ledger that runs <paramref name="action"/> for each row written where <paramref name="when"/> holds.</summary>
    private static Task InstallFaultAsync(string connectionString, string when, string action) =>
        PostgreSqlCluster.QueryAsync<int>(connectionString, $$"""
            CREATE FUNCTION mcpguard.fault() RETURNS trigger LANGUAGE plpgsql AS $f$
            BEGIN
                IF {{when}} THEN {{action}} END IF;
                RETURN NEW;
            END $f$;
            CREATE TRIGGER fault BEFORE INSERT ON mcpguard.ledger FOR EACH ROW EXECUTE FUNCTION mcpguard.fault();
            SELECT 1;
            """);

    /// <summary>Another session's transaction holding <paramref name="account"/>'s row (FOR UPDATE) until it commits.</summary>
    private static async Task<Holder> HoldAsync(string connectionString, string account)
    {
        var connection = new NpgsqlConnection(connectionString + ";Pooling=false");
        await connection.OpenAsync();
        var transaction = await connection.BeginTransactionAsync();
        await using var hold = new NpgsqlCommand($"SELECT 1 FROM mcpguard.accounts WHERE id = '{account}' FOR UPDATE;", connection, transaction);
        await hold.ExecuteNonQueryAsync();
        return new Holder(connection, transaction);
    }

    private sealed class Holder(NpgsqlConnection connection, NpgsqlTransaction transaction) : IAsyncDisposable
    {
        public Task CommitAsync() => transaction.CommitAsync();

        public async ValueTask DisposeAsync()
        {
            await transaction.DisposeAsync();
            await connection.DisposeAsync();
        }
    }
}
