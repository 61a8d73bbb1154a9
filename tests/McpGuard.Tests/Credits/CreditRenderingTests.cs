using System.Net;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Credits;

/// <summary>
/// The credit errors (402 out_of_credit, 402 cap_reached, 402 price_above_limit, 410 tool_archived, 503 tool_paused, 504 upstream_timeout)
/// in each rendering: a JSON-RPC error, RFC 9457 problem details, and an in-band tool result.
/// </summary>
public sealed class CreditRenderingTests
{
    private static readonly DateTimeOffset May17 = new(2026, 5, 17, 8, 30, 0, TimeSpan.Zero);

    /// <summary>What each case provokes and what a client must see, whatever the rendering.</summary>
    private static readonly Dictionary<string, Case> Cases = new()
    {
        ["out_of_credit"] = new(
            new() { ["McpGuard:Accounts:bob:FreeCallsPerMonth"] = "0" },
            DemoKeys.Bob, CreditCalls.Add(7),
            402, -32402, "Insufficient credit", "Top up the account, then retry.", "top_up", false,
            new JsonObject { ["balance_micro"] = 240, ["price_micro"] = 800, ["topup_url"] = "https://billing.example.com/topup" }),
        ["cap_reached"] = new(
            new() { ["McpGuard:Accounts:alice:MonthlyCap"] = "500" },
            DemoKeys.Alice, CreditCalls.Add(7),
            402, -31302, "Monthly spending cap reached", "Raise the monthly cap or wait for it to reset on the 1st (UTC).", "raise_cap", false,
            new JsonObject { ["cap_micro"] = 500, ["spent_micro"] = 0, ["price_micro"] = 800, ["resets_at"] = "2026-06-01T00:00:00Z" }),
        ["tool_archived"] = new(
            new() { ["McpGuard:Tools:add:Status"] = "Archived" },
            DemoKeys.Alice, CreditCalls.Add(7),
            410, -31402, "Tool archived: 'add' is no longer offered.", "This tool is no longer offered; pick another.", "do_not_retry", false,
            new JsonObject { ["tool"] = "add" }),
        ["tool_paused"] = new(
            new() { ["McpGuard:Tools:add:Status"] = "Paused" },
            DemoKeys.Alice, CreditCalls.Add(7),
            503, -31401, "Tool paused: 'add' is paused by its publisher.", "The publisher paused this tool; retry later or pick another.", "retry_later", true,
            new JsonObject { ["tool"] = "add" }),
        ["upstream_timeout"] = new(
            // A 200 ms upstream timeout on the test's clock against a tool that would wait 30 s of real time.
            new() { ["McpGuard:Credits:UpstreamTimeout"] = "00:00:00.2" },
            DemoKeys.Alice, CreditCalls.ToolCall(7, "slow", """{"ms":30000}"""),
            504, -31502, "Upstream timeout: no answer within 0.2 s; the charge was refunded.", "The server did not answer in time; any charge was refunded. Retry.", "retry", true,
            new JsonObject { ["refunded"] = true, ["refunded_micro"] = 100 }),
        ["price_above_limit"] = new(
            [],
            DemoKeys.Alice, """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3},"_meta":{"mcpguard/max_price_micro":799}}}""",
            402, -31306, "Price above limit: the call costs up to 800 micro-units, above the call's mcpguard/max_price_micro of 799; nothing was charged.",
            "The price (or, metered, the most the call can cost) is above the call's mcpguard/max_price_micro or the key's ceiling; raise the ceiling or pick a cheaper tool.", "raise_limit", false,
            new JsonObject { ["price_micro"] = 800, ["max_price_micro"] = 799 }),
    };

    public static TheoryData<string> Reasons => [.. Cases.Keys];

    [Theory]
    [MemberData(nameof(Reasons))]
    public async Task Json_rpc(string reason)
    {
        var c = Cases[reason];
        var clock = new FakeTimeProvider(May17);
        await using var host = await StartAsync(c, "JsonRpc", clock);

        using var response = await SendAsync(host, clock, reason, $"{reason}-rpc");

        await WireAssert.JsonRpcErrorAsync(response, (HttpStatusCode)c.Status, c.Code, c.Message, reason, id: 7L, extraData: c.Data);
        Assert.Equal($"{reason}-rpc", WireAssert.RequestId(response));
        AssertNoChargeHeaders(response);
        AssertNothingCharged(host, reason);
    }

    [Theory]
    [MemberData(nameof(Reasons))]
    public async Task Problem_details(string reason)
    {
        var c = Cases[reason];
        var clock = new FakeTimeProvider(May17);
        await using var host = await StartAsync(c, "ProblemDetails", clock);

        using var response = await SendAsync(host, clock, reason, $"{reason}-problem");

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(c.Status == (int)response.StatusCode, $"Expected {c.Status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        var problem = JsonNode.Parse(body)!.AsObject();
        Assert.True(problem.Remove("traceId"), body);
        var expected = new JsonObject();
        if (ProblemTypes.TryGetValue(c.Status, out var type))
        {
            expected["type"] = type;
        }

        expected["title"] = c.Message;
        expected["status"] = c.Status;
        expected["detail"] = c.Suggestion;
        expected["error_code"] = reason;
        expected["request_id"] = $"{reason}-problem";
        expected["retryable"] = c.Retryable;
        foreach (var (key, value) in c.Data)
        {
            expected[key] = value?.DeepClone();
        }

        expected["resolve"] = new JsonObject { ["message"] = c.Suggestion, ["action"] = c.Action };
        WireAssert.JsonEquals(expected.ToJsonString(), problem.ToJsonString());
        AssertNoChargeHeaders(response);
        AssertNothingCharged(host, reason);
    }

    [Theory]
    [MemberData(nameof(Reasons))]
    public async Task Tool_result(string reason)
    {
        var c = Cases[reason];
        var clock = new FakeTimeProvider(May17);
        await using var host = await StartAsync(c, "ToolResult", clock);

        using var response = await SendAsync(host, clock, reason, $"{reason}-tool");

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected 200, got {(int)response.StatusCode}: {body}");
        Assert.Equal(WireAssert.JsonContentType, response.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        var structured = new JsonObject
        {
            ["reason"] = reason,
            ["request_id"] = $"{reason}-tool",
            ["retryable"] = c.Retryable,
            ["action"] = c.Action,
        };
        foreach (var (key, value) in c.Data)
        {
            structured[key] = value?.DeepClone();
        }

        var expected = new JsonObject
        {
            ["jsonrpc"] = "2.0",
            ["id"] = 7,
            ["result"] = new JsonObject
            {
                ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = $"**Error code:** {reason}\n{c.Message}\n{c.Suggestion}" }),
                ["structuredContent"] = structured,
                ["isError"] = true,
            },
        };
        WireAssert.JsonEquals(expected.ToJsonString(), body);
        AssertNoChargeHeaders(response);
        AssertNothingCharged(host, reason);
    }

    /// <summary>The <c>type</c> ASP.NET Core's problem details writer fills in for a status, when it knows one.</summary>
    private static readonly Dictionary<int, string> ProblemTypes = new()
    {
        [410] = "https://tools.ietf.org/html/rfc9110#section-15.5.11",
        [503] = "https://tools.ietf.org/html/rfc9110#section-15.6.4",
        [504] = "https://tools.ietf.org/html/rfc9110#section-15.6.5",
    };

    private static void AssertNoChargeHeaders(HttpResponseMessage response)
    {
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(response, CreditCalls.BalanceHeader));
    }

    /// <summary>Refusals write no row; a timeout writes a usage row and its refund.</summary>
    private static void AssertNothingCharged(GuardedHost host, string reason)
    {
        var rows = LedgerFile.Rows(CreditCalls.LedgerPath(host)).Where(r => r.RequestId is not null).ToList();
        if (reason == "upstream_timeout")
        {
            Assert.Equal([("Usage", -100L), ("Refund", 100L)], rows.Select(r => (r.Kind, r.Amount)));
            Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(host, "alice"));
        }
        else
        {
            Assert.Empty(rows);
        }
    }

    /// <summary>
    /// Sends the case's call. The clock stands still, so for the timeout the test moves it on, a tenth of the
    /// upstream timeout at a time, until the guard gives up (the tool itself waits 30 s of real time).
    /// </summary>
    private static async Task<HttpResponseMessage> SendAsync(GuardedHost host, FakeTimeProvider clock, string reason, string requestId)
    {
        var c = Cases[reason];
        var send = CreditCalls.CallAsync(host, c.Body, requestId, c.ApiKey);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (reason == "upstream_timeout" && !send.IsCompleted && waited.Elapsed < TimeSpan.FromSeconds(20))
        {
            clock.Advance(TimeSpan.FromMilliseconds(20));
            await Task.WhenAny(send, Task.Delay(10));
        }

        return await send.WaitAsync(TimeSpan.FromSeconds(20));
    }

    private static Task<GuardedHost> StartAsync(Case c, string format, FakeTimeProvider clock)
    {
        var configuration = new Dictionary<string, string?>(c.Configuration) { ["McpGuard:Errors:Format"] = format };
        return GuardedHost.StartSampleAsync(configuration, builder => builder.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock)));
    }

    private sealed record Case(
        Dictionary<string, string?> Configuration,
        string ApiKey,
        string Body,
        int Status,
        int Code,
        string Message,
        string Suggestion,
        string Action,
        bool Retryable,
        JsonObject Data);
}
