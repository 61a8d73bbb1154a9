using System.Net;
using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Credits;

/// <summary>
/// The credit gate through the sample over real HTTP: free calls, charges and their headers, the 402 bodies
/// (out_of_credit exactly as mcpmeter's plus request_id; cap_reached), duplicate request ids, paused and archived tools.
/// </summary>
public sealed class CreditGateTests
{
    private const string TopUpUrl = "https://billing.example.com/topup";

    [Fact]
    public async Task Bobs_first_three_calls_are_free_and_the_fourth_gets_the_mcpmeter_402()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var path = CreditCalls.LedgerPath(host);

        for (var i = 1; i <= 3; i++)
        {
            using var free = await CreditCalls.CallAsync(host, CreditCalls.Add(i), $"bob-free-{i}", DemoKeys.Bob);
            await CreditCalls.AssertAddedAsync(free, i);
            Assert.Equal("0", CreditCalls.Header(free, CreditCalls.ChargeHeader));
            Assert.Equal("240", CreditCalls.Header(free, CreditCalls.BalanceHeader));
        }

        using var refused = await CreditCalls.CallAsync(host, CreditCalls.Add(4), "bob-4", DemoKeys.Bob);

        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        Assert.Equal(WireAssert.JsonContentType, refused.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", refused.Headers.CacheControl?.ToString());
        Assert.Equal("bob-4", CreditCalls.Header(refused, "X-Request-Id"));
        Assert.Null(CreditCalls.Header(refused, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(refused, CreditCalls.BalanceHeader));
        Assert.Equal(
            """{"jsonrpc":"2.0","id":4,"error":{"code":-32402,"message":"Insufficient credit","data":{"reason":"out_of_credit","request_id":"bob-4","balance_micro":240,"price_micro":800,"topup_url":"https://billing.example.com/topup"}}}""",
            await refused.Content.ReadAsStringAsync());

        var rows = LedgerFile.Rows(path, "bob");
        Assert.Equal(
            [
                ("TopUp", 240L, 240L, (string?)null, (string?)null, false),
                ("Usage", 0L, 240L, "add", "bob-free-1", true),
                ("Usage", 0L, 240L, "add", "bob-free-2", true),
                ("Usage", 0L, 240L, "add", "bob-free-3", true),
            ],
            rows.Select(r => (r.Kind, r.Amount, r.BalanceAfter, r.Tool, r.RequestId, r.Free)));
    }

    [Fact]
    public async Task A_priced_call_without_credentials_gets_401_with_the_challenge_and_no_charge()
    {
        // tools/call is anonymous and an unknown tool needs no scope, so only its price stops it.
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Auth:AnonymousMethods:0"] = "tools/call",
            ["McpGuard:Credits:DefaultPrice"] = "10",
        });

        using var refused = await host.PostMcpAsync(
            CreditCalls.ToolCall(14, "unlisted", "{}"), headers: new Dictionary<string, string> { ["X-Request-Id"] = "anon-priced" }, apiKey: null);

        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal(WireAssert.JsonContentType, refused.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", refused.Headers.CacheControl?.ToString());
        Assert.Equal($"Bearer resource_metadata=\"{AuthResponses.MetadataUrl}\", scope=\"tools:basic tools:premium\"", Assert.Single(refused.Headers.WwwAuthenticate).ToString());
        Assert.Null(CreditCalls.Header(refused, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(refused, CreditCalls.BalanceHeader));
        Assert.Equal(
            """{"jsonrpc":"2.0","id":14,"error":{"code":-31101,"message":"Authentication required: this call has a price.","data":{"reason":"unauthorized","request_id":"anon-priced"}}}""",
            await refused.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_402_without_a_client_request_id_carries_the_generated_one()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Accounts:bob:FreeCallsPerMonth"] = "0" });

        using var refused = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(9, "add", """{"a":1,"b":1}"""), apiKey: DemoKeys.Bob);

        var requestId = WireAssert.RequestId(refused);
        WireAssert.IsGeneratedRequestId(requestId);
        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        Assert.Equal(
            $$$$"""{"jsonrpc":"2.0","id":9,"error":{"code":-32402,"message":"Insufficient credit","data":{"reason":"out_of_credit","request_id":"{{{{requestId}}}}","balance_micro":240,"price_micro":800,"topup_url":"{{{{TopUpUrl}}}}"}}}""",
            await refused.Content.ReadAsStringAsync());
        Assert.Equal(["TopUp"], LedgerFile.Rows(CreditCalls.LedgerPath(host), "bob").Select(r => r.Kind));
    }

    [Fact]
    public async Task Without_a_top_up_url_the_402_leaves_it_out()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Credits:TopUpUrl"] = null,
            ["McpGuard:Accounts:bob:FreeCallsPerMonth"] = "0",
        });

        using var refused = await CreditCalls.CallAsync(host, CreditCalls.Add(3), "no-url", DemoKeys.Bob);

        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":3,"error":{"code":-32402,"message":"Insufficient credit","data":{"reason":"out_of_credit","request_id":"no-url","balance_micro":240,"price_micro":800}}}""",
            await refused.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Alices_add_is_charged_and_says_so_in_its_headers()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var path = CreditCalls.LedgerPath(host);

        using var first = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "alice-1");
        using var second = await CreditCalls.CallAsync(host, CreditCalls.Add(2), "alice-2");

        await CreditCalls.AssertAddedAsync(first, 1);
        Assert.Equal("800", CreditCalls.Header(first, CreditCalls.ChargeHeader));
        Assert.Equal("999200", CreditCalls.Header(first, CreditCalls.BalanceHeader));
        await CreditCalls.AssertAddedAsync(second, 2);
        Assert.Equal("800", CreditCalls.Header(second, CreditCalls.ChargeHeader));
        Assert.Equal("998400", CreditCalls.Header(second, CreditCalls.BalanceHeader));
        Assert.Equal(
            [
                ("TopUp", 1_000_000L, 1_000_000L, (string?)null, (string?)null, "seed"),
                ("Usage", -800L, 999_200L, "add", "alice-1", (string?)null),
                ("Usage", -800L, 998_400L, "add", "alice-2", (string?)null),
            ],
            LedgerFile.Rows(path, "alice").Select(r => (r.Kind, r.Amount, r.BalanceAfter, r.Tool, r.RequestId, r.Note)));
    }

    [Fact]
    public async Task A_free_tool_has_no_charge_headers_and_no_ledger_row_and_its_request_id_can_repeat()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var path = CreditCalls.LedgerPath(host);

        using var echo = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""), "echo-1");
        using var again = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(2, "echo", """{"message":"hi"}"""), "echo-1");
        using var list = await CreditCalls.CallAsync(host, """{"jsonrpc":"2.0","id":3,"method":"tools/list"}""", "list-1");

        foreach (var response in new[] { echo, again, list })
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
            Assert.Null(CreditCalls.Header(response, CreditCalls.BalanceHeader));
        }

        var message = await Sse.ReadSingleMessageAsync(echo);
        Assert.Equal("hi", message.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(["seed"], LedgerFile.Rows(path, "alice").Select(r => r.Note));
        Assert.Equal(0, LedgerFile.Scalar(path, "SELECT COUNT(*) FROM ledger WHERE request_id IS NOT NULL;"));
    }

    [Fact]
    public async Task The_cap_refuses_with_402_cap_reached_and_says_when_it_resets()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 5, 17, 8, 30, 0, TimeSpan.Zero));
        await using var host = await GuardedHost.StartSampleAsync(
            new Dictionary<string, string?> { ["McpGuard:Accounts:alice:MonthlyCap"] = "1000" },
            builder => builder.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock)));
        var path = CreditCalls.LedgerPath(host);

        using var first = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "cap-1");
        using var second = await CreditCalls.CallAsync(host, CreditCalls.Add(2), "cap-2");

        await CreditCalls.AssertAddedAsync(first, 1);
        Assert.Equal(HttpStatusCode.PaymentRequired, second.StatusCode);
        Assert.Equal("no-store", second.Headers.CacheControl?.ToString());
        Assert.Null(CreditCalls.Header(second, CreditCalls.ChargeHeader));
        Assert.Equal(
            """{"jsonrpc":"2.0","id":2,"error":{"code":-31302,"message":"Monthly spending cap reached","data":{"reason":"cap_reached","request_id":"cap-2","cap_micro":1000,"spent_micro":800,"price_micro":800,"resets_at":"2026-06-01T00:00:00Z"}}}""",
            await second.Content.ReadAsStringAsync());
        Assert.Equal(["seed", "cap-1"], LedgerFile.Rows(path, "alice").Select(r => r.RequestId ?? r.Note));
    }

    [Fact]
    public async Task A_cap_reached_in_december_resets_on_the_first_of_january()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 31, 23, 59, 59, TimeSpan.Zero));
        await using var host = await GuardedHost.StartSampleAsync(
            new Dictionary<string, string?> { ["McpGuard:Accounts:alice:MonthlyCap"] = "500" },
            builder => builder.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock)));

        using var refused = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "dec-1");

        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31302,"message":"Monthly spending cap reached","data":{"reason":"cap_reached","request_id":"dec-1","cap_micro":500,"spent_micro":0,"price_micro":800,"resets_at":"2027-01-01T00:00:00Z"}}}""",
            await refused.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_repeated_request_id_is_refused_with_409_and_charged_once()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var path = CreditCalls.LedgerPath(host);

        using var first = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "dup-1");
        using var second = await CreditCalls.CallAsync(host, CreditCalls.Add(2), "dup-1");
        using var premium = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(3, "premium_report", """{"topic":"x"}"""), "dup-1");

        await CreditCalls.AssertAddedAsync(first, 1);
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        Assert.Equal(WireAssert.JsonContentType, second.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", second.Headers.CacheControl?.ToString());
        Assert.Equal("dup-1", CreditCalls.Header(second, "X-Request-Id"));
        Assert.Null(CreditCalls.Header(second, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(second, CreditCalls.BalanceHeader));
        // The writer escapes the apostrophes (\u0027); compare as JSON.
        WireAssert.JsonEquals(
            """{"jsonrpc":"2.0","id":2,"error":{"code":-31303,"message":"Request id 'dup-1' was already charged.","data":{"reason":"duplicate_request","request_id":"dup-1"}}}""",
            await second.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Conflict, premium.StatusCode);

        var rows = LedgerFile.Rows(path, "alice");
        var usage = Assert.Single(rows, r => r.RequestId == "dup-1");
        Assert.Equal(("Usage", -800L, 999_200L, "add"), (usage.Kind, usage.Amount, usage.BalanceAfter, usage.Tool));
        Assert.Equal(999_200, LedgerFile.Balance(path, "alice"));
    }

    [Fact]
    public async Task Another_accounts_request_id_is_refused_without_touching_either_balance()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var path = CreditCalls.LedgerPath(host);

        using var alice = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "shared-1");
        using var bob = await CreditCalls.CallAsync(host, CreditCalls.Add(2), "shared-1", DemoKeys.Bob);

        await CreditCalls.AssertAddedAsync(alice, 1);
        Assert.Equal(HttpStatusCode.Conflict, bob.StatusCode);
        Assert.Equal(["TopUp"], LedgerFile.Rows(path, "bob").Select(r => r.Kind));
        Assert.Equal(999_200, LedgerFile.Balance(path, "alice"));
    }

    [Theory]
    [InlineData("Paused", HttpStatusCode.ServiceUnavailable, -31401, "tool_paused", "Tool paused: 'add' is paused by its publisher.")]
    [InlineData("Archived", HttpStatusCode.Gone, -31402, "tool_archived", "Tool archived: 'add' is no longer offered.")]
    public async Task A_paused_or_archived_tool_is_refused_and_costs_nothing(string status, HttpStatusCode code, int rpcCode, string reason, string message)
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Tools:add:Status"] = status });
        var path = CreditCalls.LedgerPath(host);

        using var alice = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "status-alice");
        using var bob = await CreditCalls.CallAsync(host, CreditCalls.Add(2), "status-bob", DemoKeys.Bob);
        using var echo = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(3, "echo", """{"message":"still here"}"""));

        Assert.Equal(code, alice.StatusCode);
        Assert.Equal("no-store", alice.Headers.CacheControl?.ToString());
        Assert.Null(CreditCalls.Header(alice, CreditCalls.ChargeHeader));
        Assert.False(alice.Headers.Contains("Retry-After"));
        WireAssert.JsonEquals(
            $$$$"""{"jsonrpc":"2.0","id":1,"error":{"code":{{{{rpcCode}}}},"message":"{{{{message}}}}","data":{"reason":"{{{{reason}}}}","request_id":"status-alice","tool":"add"}}}""",
            await alice.Content.ReadAsStringAsync());
        Assert.Equal(code, bob.StatusCode);
        Assert.Equal(HttpStatusCode.OK, echo.StatusCode);

        // Neither a charge nor a free call was used.
        Assert.Equal(["TopUp"], LedgerFile.Rows(path, "alice").Select(r => r.Kind));
        Assert.Equal(["TopUp"], LedgerFile.Rows(path, "bob").Select(r => r.Kind));
        using var afterwards = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(4, "premium_report", """{"topic":"x"}"""), "premium-ok");
        Assert.Equal("5000", CreditCalls.Header(afterwards, CreditCalls.ChargeHeader));
    }

    [Fact]
    public async Task A_status_set_in_the_store_overrides_the_configured_one()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Tools:add:Status"] = "Archived" });
        var store = host.Services.GetRequiredService<IMcpGuardToolStatusStore>();

        await store.SetStatusAsync("add", McpGuardToolStatus.Live, default);
        await store.SetStatusAsync("echo", McpGuardToolStatus.Paused, default);
        using var add = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "override-1");
        using var echo = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(2, "echo", """{"message":"x"}"""), "override-2");
        await store.SetStatusAsync("add", null, default);
        using var restored = await CreditCalls.CallAsync(host, CreditCalls.Add(3), "override-3");

        await CreditCalls.AssertAddedAsync(add, 1);
        Assert.Equal("800", CreditCalls.Header(add, CreditCalls.ChargeHeader));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, echo.StatusCode);
        Assert.Equal(HttpStatusCode.Gone, restored.StatusCode);
    }
}
