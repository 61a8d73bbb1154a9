using System.Diagnostics;
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
        Assert.True(watch.Elapsed < TimeSpan.FromMilliseconds(450), $"the caller waited {watch.ElapsedMilliseconds} ms");

        await Task.Delay(TimeSpan.FromSeconds(2));
        await transaction.CommitAsync();

        // The server gave up on the batch at 500 ms: nothing was charged, and the ledger works again at once.
        Assert.Empty(await PostgreSqlCluster.QueryAsync<string>(connectionString, "SELECT request_id FROM mcpguard.ledger WHERE kind = 'Usage';"));
        Assert.False(await store.RefundAsync("late-1", Now, default));
        var next = await store.ChargeAsync(new McpGuardChargeRequest("a", "next-1", "add", 800, 0, Now), default);
        Assert.Equal((McpGuardChargeOutcome.Charged, 9_200L), (next.Outcome, next.BalanceMicro));
    }

    [Fact]
    public async Task One_charge_the_server_refuses_does_not_fail_the_charges_batched_with_it()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        await using var database = new PostgreSqlDatabase(connectionString, "mcpguard", TimeSpan.FromSeconds(5), NullLogger.Instance);
        await using var store = new PostgreSqlLedgerStore(database, TimeProvider.System, NullLogger.Instance, writers: 1);
        await store.TopUpAsync("a", 100_000, "start", Now, default);

        // A NUL in a tool name: PostgreSQL text cannot hold it.
        var charges = Enumerable.Range(0, 40)
            .Select(i => store.ChargeAsync(new McpGuardChargeRequest("a", $"iso-{i}", i == 20 ? "bad\0tool" : "add", 100, 0, Now), default).AsTask())
            .ToList();
        var outcomes = await Task.WhenAll(charges.Select(async c => { try { return (await c).Outcome.ToString(); } catch (PostgresException ex) { return ex.SqlState; } }));

        Assert.Equal(39, outcomes.Count(o => o == nameof(McpGuardChargeOutcome.Charged)));
        Assert.Equal("22021", outcomes[20]);
        Assert.Equal(100_000 - (39 * 100), (await store.GetAccountAsync("a", 0, Now, default))!.BalanceMicro);
        // They were queued together, so they went in one batch: refused whole, then applied one by one.
        Assert.Equal(1, store.Splits);
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
}
