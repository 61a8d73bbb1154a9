using System.Net;
using System.Text.Json;
using McpGuard.Tests.Admin;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tests.Interop;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace McpGuard.Tests.Credits;

/// <summary>
/// What an agent sees of prices inside the protocol, on the sample over real HTTP: prices in <c>tools/list</c>, the
/// caller's account in the list's <c>_meta</c>, the charge in every charged result (equal to its ledger row), a spend
/// ceiling per call and per key (<c>price_above_limit</c> in its three renderings, nothing charged or counted), and the
/// metered <c>search</c> tool's reserve-and-capture.
/// </summary>
public sealed class PricingTests
{
    private const string AddPrice = """{"amount_micro":800,"unit":"call"}""";
    private const string SearchPrice = """{"amount_micro":20,"unit":"call","per_unit_micro":2,"max_micro":20}""";

    [Fact]
    public async Task Tools_list_carries_each_priced_tools_price_and_the_callers_account()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await CreditCalls.CallAsync(host, """{"jsonrpc":"2.0","id":1,"method":"tools/list"}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var result = (await Sse.ReadSingleMessageAsync(response)).GetProperty("result");
        var prices = result.GetProperty("tools").EnumerateArray().ToDictionary(
            t => t.GetProperty("name").GetString()!,
            t => t.TryGetProperty("_meta", out var meta) ? meta.GetRawText() : null);
        Assert.Equal(
            new Dictionary<string, string?>
            {
                ["add"] = $$$"""{"mcpguard/price":{{{AddPrice}}}}""",
                ["echo"] = null,
                ["fail"] = """{"mcpguard/price":{"amount_micro":100,"unit":"call"}}""",
                ["premium_report"] = """{"mcpguard/price":{"amount_micro":5000,"unit":"call"}}""",
                ["search"] = $$$"""{"mcpguard/price":{{{SearchPrice}}}}""",
                ["slow"] = """{"mcpguard/price":{"amount_micro":100,"unit":"call"}}""",
            },
            prices);
        Assert.Equal(
            """{"mcpguard/account":{"account":"alice","balance_micro":1000000,"free_calls_left":0,"monthly_cap_micro":2000000,"spent_this_month_micro":0}}""",
            result.GetProperty("_meta").GetRawText());
    }

    [Fact]
    public async Task Bobs_list_shows_his_free_calls_and_no_tool_outside_his_scopes()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await CreditCalls.CallAsync(host, """{"jsonrpc":"2.0","id":1,"method":"tools/list"}""", apiKey: DemoKeys.Bob);

        var result = (await Sse.ReadSingleMessageAsync(response)).GetProperty("result");
        Assert.Equal(["add", "echo", "fail", "search", "slow"], result.GetProperty("tools").EnumerateArray().Select(t => t.GetProperty("name").GetString()).Order());
        Assert.Equal(
            """{"mcpguard/account":{"account":"bob","balance_micro":240,"free_calls_left":3,"max_price_micro":1000}}""",
            result.GetProperty("_meta").GetRawText());
    }

    [Fact]
    public async Task A_charged_result_carries_its_charge_and_it_equals_the_ledger_row()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await CreditCalls.CallAsync(host, CreditCalls.Add(2), "alice-add-1");

        var result = (await Sse.ReadSingleMessageAsync(response)).GetProperty("result");
        Assert.Equal(
            """{"mcpguard/charge":{"charged_micro":800,"balance_micro":999200,"request_id":"alice-add-1"}}""",
            result.GetProperty("_meta").GetRawText());
        var row = Assert.Single(LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice"), r => r.RequestId == "alice-add-1");
        Assert.Equal(("Usage", -800L, 999200L), (row.Kind, row.Amount, row.BalanceAfter));
        Assert.Equal("800", CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal("999200", CreditCalls.Header(response, CreditCalls.BalanceHeader));
    }

    [Fact]
    public async Task A_free_tier_call_says_it_cost_nothing_and_a_free_tool_carries_no_charge()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var free = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "bob-free", DemoKeys.Bob);
        using var echo = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(2, "echo", """{"message":"hi"}"""), "bob-echo", DemoKeys.Bob);

        Assert.Equal(
            """{"mcpguard/charge":{"charged_micro":0,"balance_micro":240,"request_id":"bob-free"}}""",
            (await Sse.ReadSingleMessageAsync(free)).GetProperty("result").GetProperty("_meta").GetRawText());
        Assert.False((await Sse.ReadSingleMessageAsync(echo)).GetProperty("result").TryGetProperty("_meta", out _));
    }

    [Fact]
    public async Task A_metered_call_that_reports_7_units_at_2_is_charged_14_and_releases_the_rest()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(3, "search", """{"query":"berry","limit":7}"""), "alice-search-7");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(
            """{"content":[{"type":"text","text":"bilberry, blackberry, blueberry, cranberry, elderberry, gooseberry, mulberry"}],"_meta":{"mcpguard/charge":{"charged_micro":14,"balance_micro":999986,"request_id":"alice-search-7"}}}""",
            (await Sse.ReadSingleMessageAsync(response)).GetProperty("result").GetRawText());
        Assert.Equal("14", CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal("999986", CreditCalls.Header(response, CreditCalls.BalanceHeader));
        Assert.Equal(
            [("Reservation", -20L, 999980L), ("Release", 20L, 1000000L), ("Capture", -14L, 999986L)],
            LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice").Where(r => r.RequestId == "alice-search-7").Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
    }

    [Fact]
    public async Task A_metered_call_the_server_does_not_serve_releases_its_whole_reservation()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Tools:slow:Price"] = null,
            ["McpGuard:Tools:slow:Price:PerUnitMicro"] = "1",
            ["McpGuard:Tools:slow:Price:MaxMicro"] = "100",
            ["McpGuard:Credits:UpstreamTimeout"] = "00:00:01",
        });

        using var response = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(4, "slow", """{"ms":5000}"""), "alice-slow");

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        Assert.Equal(
            """{"jsonrpc":"2.0","id":4,"error":{"code":-31502,"message":"Upstream timeout: no answer within 1 s; the charge was refunded.","data":{"reason":"upstream_timeout","request_id":"alice-slow","refunded":true,"refunded_micro":100}}}""",
            await response.Content.ReadAsStringAsync());
        Assert.Equal(
            [("Reservation", -100L, 999900L), ("Release", 100L, 1000000L)],
            LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice").Where(r => r.RequestId == "alice-slow").Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
    }

    [Theory]
    [InlineData("JsonRpc", 402, "application/json", """{"jsonrpc":"2.0","id":5,"error":{"code":-31306,"message":"Price above limit: the call costs up to 800 micro-units, above the call\u0027s mcpguard/max_price_micro of 500; nothing was charged.","data":{"reason":"price_above_limit","request_id":"alice-ceiling","price_micro":800,"max_price_micro":500}}}""")]
    [InlineData("ProblemDetails", 402, "application/problem+json", """{"title":"Price above limit: the call costs up to 800 micro-units, above the call's mcpguard/max_price_micro of 500; nothing was charged.","status":402,"detail":"The price (or, metered, the most the call can cost) is above the call's mcpguard/max_price_micro or the key's ceiling; raise the ceiling or pick a cheaper tool.","error_code":"price_above_limit","request_id":"alice-ceiling","retryable":false,"price_micro":800,"max_price_micro":500,"resolve":{"message":"The price (or, metered, the most the call can cost) is above the call's mcpguard/max_price_micro or the key's ceiling; raise the ceiling or pick a cheaper tool.","action":"raise_limit"}}""")]
    [InlineData("ToolResult", 200, "application/json", """{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"**Error code:** price_above_limit\nPrice above limit: the call costs up to 800 micro-units, above the call\u0027s mcpguard/max_price_micro of 500; nothing was charged.\nThe price (or, metered, the most the call can cost) is above the call\u0027s mcpguard/max_price_micro or the key\u0027s ceiling; raise the ceiling or pick a cheaper tool."}],"structuredContent":{"reason":"price_above_limit","request_id":"alice-ceiling","retryable":false,"action":"raise_limit","price_micro":800,"max_price_micro":500},"isError":true}}""")]
    public async Task A_ceiling_below_the_price_refuses_the_call_with_nothing_charged_or_counted(string format, int status, string contentType, string body)
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Errors:Format"] = format });
        var path = CreditCalls.LedgerPath(host);
        var rowsBefore = LedgerFile.Rows(path, "alice").Count;

        using var refused = await CreditCalls.CallAsync(host, WithCeiling(5, "add", """{"a":2,"b":3}""", 500), "alice-ceiling");

        Assert.Equal(status, (int)refused.StatusCode);
        Assert.Equal(contentType, refused.Content.Headers.ContentType?.MediaType);
        // ASP.NET Core's problem details add the request's trace id, which differs on each run.
        Assert.Equal(body, System.Text.RegularExpressions.Regex.Replace(await refused.Content.ReadAsStringAsync(), ",\"traceId\":\"[^\"]*\"", ""));
        Assert.Null(CreditCalls.Header(refused, CreditCalls.ChargeHeader));
        Assert.Equal(rowsBefore, LedgerFile.Rows(path, "alice").Count);

        // Not counted either: add allows 30 a minute, and the next call (under a ceiling it fits) is the first counted.
        using var next = await CreditCalls.CallAsync(host, WithCeiling(6, "add", """{"a":2,"b":3}""", 800), "alice-within");
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.StartsWith("\"add-1m\";r=29;", CreditCalls.Header(next, "RateLimit"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_metered_tools_maximum_is_what_its_ceiling_is_compared_with()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var refused = await CreditCalls.CallAsync(host, WithCeiling(7, "search", """{"query":"a","limit":1}""", 19), "alice-search-ceiling");
        using var fits = await CreditCalls.CallAsync(host, WithCeiling(8, "search", """{"query":"kiwi","limit":1}""", 20), "alice-search-fits");

        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        Assert.Contains("\"price_micro\":20,\"max_price_micro\":19", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(
            """{"mcpguard/charge":{"charged_micro":2,"balance_micro":999998,"request_id":"alice-search-fits"}}""",
            (await Sse.ReadSingleMessageAsync(fits)).GetProperty("result").GetProperty("_meta").GetRawText());
    }

    [Theory]
    [InlineData("\"800\"")]
    [InlineData("-1")]
    [InlineData("8.5")]
    [InlineData("1e3")]
    [InlineData("null")]
    [InlineData("{}")]
    public async Task A_ceiling_that_is_not_a_whole_number_of_micro_units_is_refused_as_invalid(string ceiling)
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var refused = await CreditCalls.CallAsync(host, WithCeiling(9, "add", """{"a":2,"b":3}""", ceiling), "alice-bad-ceiling");

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":9,"error":{"code":-32600,"message":"Invalid Request: params._meta.mcpguard/max_price_micro must be a whole number of micro-units, 0 or more.","data":{"reason":"invalid_request","request_id":"alice-bad-ceiling"}}}""",
            await refused.Content.ReadAsStringAsync());
        Assert.DoesNotContain(LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice"), r => r.RequestId == "alice-bad-ceiling");
    }

    [Fact]
    public async Task A_keys_ceiling_set_through_the_admin_api_refuses_dearer_calls_and_a_call_cannot_raise_it()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        using var created = await host.PostAdminAsync("/admin/keys", """{"account":"alice","scopes":["tools:basic"],"id":"key_capped","max_price_micro":500}""", AdminTestKit.DemoAdminKey);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(500, body.GetProperty("max_price_micro").GetInt64());
        var key = body.GetProperty("key").GetString()!;

        using var listed = await CreditCalls.CallAsync(host, """{"jsonrpc":"2.0","id":1,"method":"tools/list"}""", apiKey: key);
        using var refused = await CreditCalls.CallAsync(host, WithCeiling(2, "add", """{"a":2,"b":3}""", 1000), "capped-add", key);
        using var cheap = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(3, "fail", """{"kind":"argument"}"""), "capped-fail", key);

        Assert.Equal(500, (await Sse.ReadSingleMessageAsync(listed)).GetProperty("result").GetProperty("_meta").GetProperty("mcpguard/account").GetProperty("max_price_micro").GetInt64());
        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":2,"error":{"code":-31306,"message":"Price above limit: the call costs up to 800 micro-units, above the API key\u0027s ceiling of 500; nothing was charged.","data":{"reason":"price_above_limit","request_id":"capped-add","price_micro":800,"max_price_micro":500}}}""",
            await refused.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, cheap.StatusCode);
        Assert.DoesNotContain(LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice"), r => r.RequestId == "capped-add");
    }

    [Fact]
    public async Task The_csharp_sdk_client_reads_prices_and_charges_from_meta()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        await using var client = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = host.McpEndpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = $"Bearer {DemoKeys.Alice}" },
        }));

        var tools = await client.ListToolsAsync();
        var add = await client.CallToolAsync("add", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 });
        var search = await client.CallToolAsync("search", new Dictionary<string, object?> { ["query"] = "berry", ["limit"] = 7 });

        Assert.Equal(AddPrice, tools.Single(t => t.Name == "add").ProtocolTool.Meta!["mcpguard/price"]!.ToJsonString());
        Assert.Equal(SearchPrice, tools.Single(t => t.Name == "search").ProtocolTool.Meta!["mcpguard/price"]!.ToJsonString());
        Assert.Null(tools.Single(t => t.Name == "echo").ProtocolTool.Meta);
        var addCharge = add.Meta!["mcpguard/charge"]!;
        Assert.Equal(800, addCharge["charged_micro"]!.GetValue<long>());
        Assert.Equal(999200, addCharge["balance_micro"]!.GetValue<long>());
        var searchCharge = search.Meta!["mcpguard/charge"]!;
        Assert.Equal((14, 999186), (searchCharge["charged_micro"]!.GetValue<long>(), searchCharge["balance_micro"]!.GetValue<long>()));
        Assert.False(search.Meta.ContainsKey("mcpguard/units"));
        var rows = LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice");
        Assert.Equal(-800, rows.Single(r => r.RequestId == addCharge["request_id"]!.GetValue<string>()).Amount);
    }

    [Fact]
    public async Task The_typescript_sdk_client_reads_prices_and_charges_from_meta()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        var output = await TypeScriptInteropTests.RunScriptAsync("--pricing", host.McpEndpoint.ToString(), DemoKeys.Alice);

        Assert.Equal(
            $$$"""{"add":{{{AddPrice}}},"echo":null,"fail":{"amount_micro":100,"unit":"call"},"premium_report":{"amount_micro":5000,"unit":"call"},"search":{{{SearchPrice}}},"slow":{"amount_micro":100,"unit":"call"}}""",
            JsonSerializer.Serialize(output.GetProperty("prices").EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal).ToDictionary(p => p.Name, p => p.Value)));
        Assert.Equal(
            """{"account":"alice","balance_micro":1000000,"free_calls_left":0,"monthly_cap_micro":2000000,"spent_this_month_micro":0}""",
            output.GetProperty("account").GetRawText());
        var addCharge = output.GetProperty("addCharge");
        Assert.Equal((800, 999200), (addCharge.GetProperty("charged_micro").GetInt64(), addCharge.GetProperty("balance_micro").GetInt64()));
        var searchCharge = output.GetProperty("searchMeta").GetProperty("mcpguard/charge");
        Assert.Equal((14, 999186), (searchCharge.GetProperty("charged_micro").GetInt64(), searchCharge.GetProperty("balance_micro").GetInt64()));
        Assert.Equal(["mcpguard/charge"], output.GetProperty("searchMeta").EnumerateObject().Select(p => p.Name));
        var ceiling = output.GetProperty("ceiling").GetProperty("error");
        Assert.Contains("price_above_limit", ceiling.GetRawText(), StringComparison.Ordinal);
        var rows = LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice");
        Assert.Equal(-14, rows.Single(r => r.RequestId == searchCharge.GetProperty("request_id").GetString() && r.Kind == "Capture").Amount);
    }

    private static string WithCeiling(long id, string tool, string arguments, object ceiling) =>
        $$$"""{"jsonrpc":"2.0","id":{{{id}}},"method":"tools/call","params":{"name":"{{{tool}}}","arguments":{{{arguments}}},"_meta":{"mcpguard/max_price_micro":""" + ceiling + "}}}";
}
