using Microsoft.AspNetCore.Http;
using System.Text.Json;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using McpGuard.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Credits;

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

/// <summary>Building and sending <c>tools/call</c> requests, and reading the charge headers.</summary>
internal static class CreditCalls
{
    public const string ChargeHeader = "McpGuard-Charge-Micro";
    public const string BalanceHeader = "McpGuard-Balance-Micro";

    public static string ToolCall(long id, string tool, string arguments) =>
        $$$"""{"jsonrpc":"2.0","id":{{{id}}},"method":"tools/call","params":{"name":"{{{tool}}}","arguments":{{{arguments}}}}}""";

    public static string Add(long id) => ToolCall(id, "add", """{"a":2,"b":3}""");

    public static Task<HttpResponseMessage> CallAsync(GuardedHost host, string body, string? requestId = null, string apiKey = DemoKeys.Alice) =>
        host.PostMcpAsync(body, headers: requestId is null ? null : new Dictionary<string, string> { ["X-Request-Id"] = requestId }, apiKey: apiKey);

    /// <summary>Sends a request to <paramref name="client"/> as a Streamable HTTP client would.</summary>
    public static HttpRequestMessage Post(string body, string apiKey, string? requestId = null, string path = "/mcp")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
        request.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");
        request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {apiKey}");
        if (requestId is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Request-Id", requestId);
        }

        return request;
    }

    /// <summary>A JSON-RPC result answering the request with id <paramref name="id"/>, as an SSE event.</summary>
    public static string ResultEvent(long id, string result = "{}") =>
        $$$"""event: message{{{"\n"}}}data: {"jsonrpc":"2.0","id":{{{id}}},"result":{{{result}}}}{{{"\n\n"}}}""";

    /// <summary>
    /// An endpoint that serves every request: it answers with an empty JSON-RPC result for the request's own id, as
    /// <c>application/json</c> (what a server that ran the call writes).
    /// </summary>
    public static async Task AnswerWithResult(HttpContext context)
    {
        using var request = await JsonDocument.ParseAsync(context.Request.Body);
        context.Response.ContentType = "application/json";
        var id = request.RootElement.GetProperty("id").GetRawText();
        await context.Response.WriteAsync("{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"result\":{}}");
    }

    /// <summary>The single value of a response header, or null when the response has none.</summary>
    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? Assert.Single(values) : null;

    /// <summary>The ledger file of a host started by <see cref="GuardedHost"/>.</summary>
    public static string LedgerPath(GuardedHost host) =>
        host.Services.GetRequiredService<IConfiguration>()["McpGuard:SqlitePath"]
        ?? throw new InvalidOperationException("The host has no McpGuard:SqlitePath.");

    /// <summary>Asserts a successful <c>add</c> answer: HTTP 200 and the result 5.</summary>
    public static async Task AssertAddedAsync(HttpResponseMessage response, long id)
    {
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, $"Expected 200, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        var message = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal(id, message.GetProperty("id").GetInt64());
        var result = message.GetProperty("result");
        Assert.False(result.TryGetProperty("isError", out var isError) && isError.GetBoolean(), message.GetRawText());
        Assert.Equal("5", Assert.Single(result.GetProperty("content").EnumerateArray().ToList()).GetProperty("text").GetString());
    }
}
