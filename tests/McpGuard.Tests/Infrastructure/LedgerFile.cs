using System.Globalization;
using Microsoft.Data.Sqlite;

namespace McpGuard.Tests.Infrastructure;

/// <summary>One row of the ledger table, read straight from the SQLite file.</summary>
internal sealed record LedgerRow(
    long Id,
    string Account,
    string Kind,
    long Amount,
    long BalanceAfter,
    string? Tool,
    string? RequestId,
    bool Free,
    string? Note,
    string CreatedAt);

/// <summary>Reads a ledger file the way an auditor would: a separate, read-only connection, no pooling.</summary>
internal static class LedgerFile
{
    /// <summary>A fresh file in a folder of its own (GuardedHost deletes the per-host files it makes in "mcpguard-tests").</summary>
    public static string NewPath() => Path.Combine(Path.GetTempPath(), "mcpguard-credit-tests", $"credits-{Guid.NewGuid():N}.db");

    /// <summary>Deletes a ledger file and its WAL companions, if any.</summary>
    public static void Delete(string? path)
    {
        if (path is null)
        {
            return;
        }

        foreach (var suffix in new[] { "", "-wal", "-shm" })
        {
            File.Delete(path + suffix);
        }
    }

    public static SqliteConnection OpenReadOnly(string path)
    {
        Assert.True(File.Exists(path), $"No ledger file at {path}.");
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    public static List<LedgerRow> Rows(string path)
    {
        using var connection = OpenReadOnly(path);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, account, kind, amount, balance_after, tool, request_id, free, note, created_at FROM ledger ORDER BY id;";
        using var reader = command.ExecuteReader();
        var rows = new List<LedgerRow>();
        while (reader.Read())
        {
            rows.Add(new LedgerRow(
                reader.GetInt64(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.GetInt64(3),
                reader.GetInt64(4),
                reader.IsDBNull(5) ? null : reader.GetString(5),
                reader.IsDBNull(6) ? null : reader.GetString(6),
                reader.GetInt64(7) != 0,
                reader.IsDBNull(8) ? null : reader.GetString(8),
                reader.GetString(9)));
        }

        return rows;
    }

    public static List<LedgerRow> Rows(string path, string account) => [.. Rows(path).Where(r => r.Account == account)];

    public static long Scalar(string path, string sql)
    {
        using var connection = OpenReadOnly(path);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    public static List<string> Strings(string path, string sql)
    {
        using var connection = OpenReadOnly(path);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        var values = new List<string>();
        while (reader.Read())
        {
            values.Add(reader.GetString(0));
        }

        return values;
    }

    /// <summary>An account's balance: the sum of its rows.</summary>
    public static long Balance(string path, string account) => Rows(path, account).Sum(r => r.Amount);

    /// <summary>An account's balance in the ledger file of a host started by <see cref="GuardedHost"/>.</summary>
    public static long Balance(GuardedHost host, string account) => Balance(CreditCalls.LedgerPath(host), account);

    /// <summary>Every row's balance_after is the running sum of the account's rows up to it.</summary>
    public static void AssertBalancesAreRunningSums(IEnumerable<LedgerRow> rows)
    {
        foreach (var account in rows.GroupBy(r => r.Account))
        {
            long sum = 0;
            foreach (var row in account.OrderBy(r => r.Id))
            {
                sum += row.Amount;
                Assert.True(sum == row.BalanceAfter, $"Row {row.Id} of {row.Account}: balance_after {row.BalanceAfter}, running sum {sum}.");
                Assert.True(sum >= 0, $"Row {row.Id} of {row.Account} takes the balance below zero ({sum}).");
            }
        }
    }
}
