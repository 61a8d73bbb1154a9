using System.Net;
using McpGuard.Tests.Infrastructure;

namespace McpGuard.Tests.ScaleOut.PostgreSql;

/// <summary>The sample app on PostgreSQL: several instances sharing one database, and what a test reads from that database.</summary>
internal static class ScaleOutHosts
{
    public const long AddPrice = 800;

    /// <summary>The sample's configuration on <paramref name="connectionString"/>, with alice's balance and rate limits out of the way.</summary>
    /// <param name="connectionString">The database.</param>
    /// <param name="aliceBalance">Alice's seed balance.</param>
    /// <param name="storeTimeout">
    /// McpGuard:StoreTimeout: generous by default, so that a test that counts outcomes is not thrown off by a charge
    /// that waits longer than usual on a machine busy with the rest of the suite; outage tests pass a short one.
    /// </param>
    public static Dictionary<string, string?> Configuration(string connectionString, long aliceBalance, string storeTimeout = "00:00:10") => new()
    {
        ["McpGuard:StoreTimeout"] = storeTimeout,
        ["McpGuard:Store"] = "PostgreSql",
        ["McpGuard:PostgreSql:ConnectionString"] = connectionString,
        ["McpGuard:Accounts:alice:InitialBalance"] = aliceBalance.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["McpGuard:Accounts:alice:MonthlyCap"] = "1000000000000",
        ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "100000000",
        ["McpGuard:RateLimits:Policies:default:Windows:1:Permits"] = "100000000",
        ["McpGuard:RateLimits:Policies:add:Windows:0:Permits"] = "100000000",
    };

    /// <summary>Command-line arguments for the sample as a process of its own, with the same configuration.</summary>
    public static string[] Arguments(string connectionString, long aliceBalance) =>
        [.. Configuration(connectionString, aliceBalance).Select(p => $"--{p.Key}={p.Value}")];

    public static async Task<GuardedHost[]> StartAsync(string connectionString, long aliceBalance, int count, string storeTimeout = "00:00:10")
    {
        var hosts = new List<GuardedHost>();
        foreach (var _ in Enumerable.Range(0, count))
        {
            hosts.Add(await GuardedHost.StartSampleAsync(Configuration(connectionString, aliceBalance, storeTimeout)));
        }

        return [.. hosts];
    }

    public static async Task DisposeAsync(IEnumerable<GuardedHost> hosts)
    {
        foreach (var host in hosts)
        {
            await host.DisposeAsync();
        }
    }

    /// <summary>A tools/call with JSON-RPC id 1, sent with request id <paramref name="requestId"/>.</summary>
    public static async Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> CallAsync(HttpClient client, string body, string requestId, string apiKey = DemoKeys.Alice, CancellationToken cancellationToken = default)
    {
        using var request = CreditCalls.Post(body, apiKey, requestId);
        var response = await client.SendAsync(request, cancellationToken);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken), response);
    }

    public static bool Added(HttpStatusCode status, string body) => status == HttpStatusCode.OK && body.Contains("\"text\":\"5\"", StringComparison.Ordinal);

    /// <summary>The account's rows, oldest first, read straight from the database.</summary>
    public static async Task<List<PgRow>> RowsAsync(string connectionString, string account)
    {
        await using var connection = new Npgsql.NpgsqlConnection(connectionString + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT id, kind, amount, balance_after, request_id FROM mcpguard.ledger WHERE account = $1 ORDER BY id;", connection);
        command.Parameters.Add(new() { Value = account });
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<PgRow>();
        while (await reader.ReadAsync())
        {
            rows.Add(new PgRow(reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), reader.IsDBNull(4) ? null : reader.GetString(4)));
        }

        return rows;
    }

    public static async Task<long> BalanceAsync(string connectionString, string account) =>
        (await PostgreSqlCluster.QueryAsync<long>(connectionString, $"SELECT balance FROM mcpguard.accounts WHERE id = '{account}'")).Single();

    /// <summary>The money invariant: the balance is the sum of the rows, each row's balance-after is the running sum, one row per request id and kind.</summary>
    public static async Task AssertLedgerAsync(string connectionString, string account)
    {
        // The rows and the balance from one snapshot: an instance may still be settling (a refund of a call its client
        // cancelled when the load stopped), and two separate reads could straddle that commit.
        await using var connection = new Npgsql.NpgsqlConnection(connectionString + ";Pooling=false");
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead);
        var rows = new List<PgRow>();
        await using (var command = new Npgsql.NpgsqlCommand("SELECT id, kind, amount, balance_after, request_id FROM mcpguard.ledger WHERE account = $1 ORDER BY id;", connection, transaction))
        {
            command.Parameters.Add(new() { Value = account });
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows.Add(new PgRow(reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), reader.IsDBNull(4) ? null : reader.GetString(4)));
            }
        }

        long balance;
        await using (var command = new Npgsql.NpgsqlCommand("SELECT balance FROM mcpguard.accounts WHERE id = $1;", connection, transaction))
        {
            command.Parameters.Add(new() { Value = account });
            balance = (long)(await command.ExecuteScalarAsync())!;
        }

        Assert.Equal(rows.Sum(r => r.Amount), balance);
        var running = 0L;
        foreach (var row in rows)
        {
            running += row.Amount;
            Assert.True(running == row.BalanceAfter, $"row {row.Id} ({row.Kind} {row.Amount}) says {row.BalanceAfter}, the running sum is {running}");
        }

        Assert.All(rows.Where(r => r.RequestId is not null).GroupBy(r => (r.RequestId, r.Kind)), g => Assert.Single(g));
    }
}

internal sealed record PgRow(long Id, string Kind, long Amount, long BalanceAfter, string? RequestId);
