using System.Net;
using System.Text;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace McpGuard.Tests.Proxy;

/// <summary>
/// Prices and charges through <c>MapMcpGuardProxy()</c>, in front of an upstream of the test's own: lists carry each priced
/// item's price and the caller's account (prompts and resources only when their method is priced), and a priced call's
/// answer carries its charge, a metered one charged the units the upstream reported, which the client never sees.
/// </summary>
public sealed class ProxyPricingTests
{
    private const string Account = """{"account":"alice","balance_micro":1000000,"free_calls_left":0}""";

    private static readonly Dictionary<string, string?> Metered = new()
    {
        ["McpGuard:Tools:meter:Price:PerUnitMicro"] = "2",
        ["McpGuard:Tools:meter:Price:MaxMicro"] = "20",
    };

    [Fact]
    public async Task A_tool_list_shows_the_price_of_each_priced_tool_the_caller_may_see_and_its_account()
    {
        // The upstream's own price on the free echo is taken out: only McpGuard says what a call costs.
        const string List =
            """{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"add","inputSchema":{}},{"name":"echo","inputSchema":{},"_meta":{"x":1,"mcpguard/price":{"amount_micro":1,"unit":"call"}}},{"name":"premium_report","inputSchema":{}},{"name":"meter","inputSchema":{}}],"nextCursor":"c"}}""";
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("event: message\ndata: " + List + "\n\n");
        });
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url, Metered);

        using var alice = await guard.PostMcpAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""");
        using var bob = await guard.PostMcpAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""", apiKey: DemoKeys.Bob);

        Assert.Equal(
            "event: message\ndata: "
            + """{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"add","inputSchema":{},"_meta":{"mcpguard/price":{"amount_micro":800,"unit":"call"}}},{"name":"echo","inputSchema":{},"_meta":{"x":1}},{"name":"premium_report","inputSchema":{},"_meta":{"mcpguard/price":{"amount_micro":5000,"unit":"call"}}},{"name":"meter","inputSchema":{},"_meta":{"mcpguard/price":{"amount_micro":20,"unit":"call","per_unit_micro":2,"max_micro":20}}}],"nextCursor":"c","_meta":{"mcpguard/account":"""
            + Account + "}}}\n\n",
            await alice.Content.ReadAsStringAsync());
        Assert.Equal(
            "event: message\ndata: "
            + """{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"add","inputSchema":{},"_meta":{"mcpguard/price":{"amount_micro":800,"unit":"call"}}},{"name":"echo","inputSchema":{},"_meta":{"x":1}},{"name":"meter","inputSchema":{},"_meta":{"mcpguard/price":{"amount_micro":20,"unit":"call","per_unit_micro":2,"max_micro":20}}}],"nextCursor":"c","_meta":{"mcpguard/account":{"account":"bob","balance_micro":240,"free_calls_left":0}}}}"""
            + "\n\n",
            await bob.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("prompts/list", "prompts", "prompts/get")]
    [InlineData("resources/list", "resources", "resources/read")]
    [InlineData("resources/templates/list", "resourceTemplates", "resources/read")]
    public async Task Prompt_and_resource_lists_are_priced_only_when_their_method_is(string method, string items, string itemMethod)
    {
        var body = $$"""{ "jsonrpc": "2.0", "id": 1, "result": { "{{items}}": [ { "name": "a" }, { "name": "b", "_meta": { "x": 1 } } ], "_meta": { "y": 2 } } }""";
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = Encoding.UTF8.GetByteCount(body);
            await context.Response.WriteAsync(body);
        });
        await using var free = await ProxyTests.StartProxyAsync(upstream.Url);
        await using var priced = await ProxyTests.StartProxyAsync(upstream.Url, new Dictionary<string, string?> { [$"McpGuard:Methods:{itemMethod}:Price"] = "50" });
        var request = $$"""{"jsonrpc":"2.0","id":1,"method":"{{method}}"}""";

        using var unchanged = await free.PostMcpAsync(request);
        using var rewritten = await priced.PostMcpAsync(request);

        // Not priced: the upstream's bytes, as they came.
        Assert.Equal(HttpStatusCode.OK, unchanged.StatusCode);
        Assert.Equal(body, await unchanged.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, rewritten.StatusCode);
        var text = await rewritten.Content.ReadAsStringAsync();
        Assert.Equal(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"" + items
            + "\":" + """[{"name":"a","_meta":{"mcpguard/price":{"amount_micro":50,"unit":"call"}}},{"name":"b","_meta":{"x":1,"mcpguard/price":{"amount_micro":50,"unit":"call"}}}],"_meta":{"y":2,"mcpguard/account":"""
            + Account + "}}}",
            text);
        Assert.Equal(Encoding.UTF8.GetByteCount(text), rewritten.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task A_priced_list_the_proxy_cannot_read_is_not_passed_on()
    {
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"jsonrpc":"2.0","id":1,"result":{"prompts":{"name":"a"}}}""");
        });
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url, new Dictionary<string, string?> { ["McpGuard:Methods:prompts/get:Price"] = "50" });

        using var response = await guard.PostMcpAsync("""{"jsonrpc":"2.0","id":1,"method":"prompts/list"}""", headers: new Dictionary<string, string> { ["X-Request-Id"] = "req-prompts" });

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31501,"message":"Upstream error: the prompts/list answer of the MCP server could not be read, so it was not passed on.","data":{"reason":"upstream_error","request_id":"req-prompts"}}}""",
            await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("application/json", 7, 14)]
    [InlineData("text/event-stream", 7, 14)]
    [InlineData("text/event-stream", 100, 20)]
    [InlineData("application/json", null, 20)]
    public async Task A_metered_call_is_charged_the_units_the_upstream_reported_and_the_client_never_sees_them(string contentType, int? units, long charged)
    {
        const string Progress = "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"p\",\"progress\":1}}\n\n";
        const string After = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"after\"}}\n\n";
        var reported = units is { } n ? $$""","_meta":{"mcpguard/units":{{n}}}""" : string.Empty;
        var answer = """{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"done"}]""" + reported + "}}";
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.ContentType = contentType;
            if (contentType == "application/json")
            {
                context.Response.ContentLength = Encoding.UTF8.GetByteCount(answer);
                await context.Response.WriteAsync(answer);
                return;
            }

            await context.Response.WriteAsync(Progress);
            await context.Response.Body.FlushAsync();
            await context.Response.WriteAsync("event: message\nid: 2\ndata: " + answer + "\n\n" + After);
        });
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url, Metered);
        var requestId = $"req-meter-{(contentType == "application/json" ? "json" : "sse")}-{units}";

        using var response = await CreditCalls.CallAsync(guard, CreditCalls.ToolCall(1, "meter", "{}"), requestId);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var balance = DemoKeys.AliceBalance - charged;
        var result = $$"""{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"done"}],"_meta":{"mcpguard/charge":{"charged_micro":{{charged}},"balance_micro":{{balance}},"request_id":"{{requestId}}""" + "\"}}}}";
        // The event stream's other events pass as they came (their ids taken out, as for every POST stream).
        Assert.Equal(
            contentType == "application/json" ? result : Progress.Replace("id: 1\n", string.Empty, StringComparison.Ordinal) + "event: message\ndata: " + result + "\n\n" + After,
            await response.Content.ReadAsStringAsync());
        if (contentType == "application/json")
        {
            // Captured before the response started: the headers say what it cost.
            Assert.Equal(charged.ToString(System.Globalization.CultureInfo.InvariantCulture), CreditCalls.Header(response, CreditCalls.ChargeHeader));
            Assert.Equal(balance.ToString(System.Globalization.CultureInfo.InvariantCulture), CreditCalls.Header(response, CreditCalls.BalanceHeader));
        }
        else
        {
            // The response starts with the progress event, usually before the answer is captured: then no charge headers,
            // and the result's _meta says what the call cost. (When the proxy reads both events at once, the capture comes
            // first and the headers say it.) Never the hold, or anything but the capture.
            Assert.Contains((CreditCalls.Header(response, CreditCalls.ChargeHeader), CreditCalls.Header(response, CreditCalls.BalanceHeader)),
                new[] { ((string?)null, (string?)null), (charged.ToString(System.Globalization.CultureInfo.InvariantCulture), balance.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
        }
        Assert.Equal(
            [("Reservation", -20L, DemoKeys.AliceBalance - 20), ("Release", 20L, DemoKeys.AliceBalance), ("Capture", -charged, balance)],
            LedgerFile.Rows(CreditCalls.LedgerPath(guard), "alice").Where(r => r.RequestId == requestId).Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
    }
}
