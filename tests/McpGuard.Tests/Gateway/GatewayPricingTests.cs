using System.Text.Json;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace McpGuard.Tests.Gateway;

/// <summary>
/// What a buyer reads through mcpguard-gateway in front of <c>@modelcontextprotocol/server-everything</c> (Node.js): each
/// priced tool's (prompt's, resource's) price in the lists' <c>_meta</c>, its own account in the list result's
/// <c>_meta</c>, and in a priced call's result the charge the ledger recorded for it.
/// </summary>
[Collection(nameof(GatewayEverythingTests))]
public sealed class GatewayPricingTests
{
    private const string PromptPrice = """{"amount_micro":50,"unit":"call"}""";
    private const string ResourcePrice = """{"amount_micro":70,"unit":"call"}""";

    /// <summary>The gateway tests' settings with prompts/get and resources/read priced too.</summary>
    private static string Settings() =>
        GatewayEverythingTests.AppSettings().Replace(
            "\"Credits\"", "\"Methods\": { \"prompts/get\": { \"Price\": 50 }, \"resources/read\": { \"Price\": 70 } },\n    \"Credits\"", StringComparison.Ordinal);

    [Fact]
    public async Task Every_list_shows_the_price_of_exactly_the_priced_items_and_the_callers_own_account()
    {
        await using var upstream = await EverythingServer.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(Settings(), "--upstream", upstream.Url.ToString());
        var alice = await RawSession.OpenAsync(gateway, DemoKeys.Alice);
        var bob = await RawSession.OpenAsync(gateway, DemoKeys.Bob);

        var aliceTools = await ListAsync(alice, DemoKeys.Alice, "tools/list");
        var bobTools = await ListAsync(bob, DemoKeys.Bob, "tools/list");

        Assert.Equal(
            [
                ("get-sum", """{"amount_micro":500,"unit":"call"}"""),
                ("get-tiny-image", """{"amount_micro":300,"unit":"call"}"""),
                ("trigger-long-running-operation", """{"amount_micro":100,"unit":"call"}"""),
            ],
            Prices(aliceTools, "tools").Where(p => p.Price is not null).OrderBy(p => p.Name, StringComparer.Ordinal));
        Assert.Contains(Prices(aliceTools, "tools"), p => p is { Name: "echo", Price: null });
        Assert.Equal(12, Prices(aliceTools, "tools").Count);
        Assert.Equal(
            [("get-sum", """{"amount_micro":500,"unit":"call"}"""), ("trigger-long-running-operation", """{"amount_micro":100,"unit":"call"}""")],
            Prices(bobTools, "tools").Where(p => p.Price is not null).OrderBy(p => p.Name, StringComparer.Ordinal));
        Assert.Equal("""{"account":"alice","balance_micro":1000000,"free_calls_left":0}""", Account(aliceTools));
        Assert.Equal("""{"account":"bob","balance_micro":240,"free_calls_left":0}""", Account(bobTools));

        // prompts/get and resources/read are priced: their lists carry each item's price, and the account.
        foreach (var (method, items, price) in new[]
        {
            ("prompts/list", "prompts", PromptPrice),
            ("resources/list", "resources", ResourcePrice),
            ("resources/templates/list", "resourceTemplates", ResourcePrice),
        })
        {
            var list = await ListAsync(alice, DemoKeys.Alice, method);
            var prices = Prices(list, items);
            Assert.NotEmpty(prices);
            Assert.All(prices, p => Assert.Equal(price, p.Price));
            Assert.Equal("""{"account":"alice","balance_micro":1000000,"free_calls_left":0}""", Account(list));
        }

        // The rest of each list is the upstream's own.
        Assert.Contains(Prices(await ListAsync(alice, DemoKeys.Alice, "prompts/list"), "prompts"), p => p.Name == "simple-prompt");
    }

    [Fact]
    public async Task A_priced_calls_result_carries_the_charge_the_ledger_recorded_and_progress_still_streams()
    {
        await using var upstream = await EverythingServer.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(GatewayEverythingTests.AppSettings(), "--upstream", upstream.Url.ToString());
        var ledger = gateway.Services.GetRequiredService<IMcpGuardLedgerStore>();
        var alice = await RawSession.OpenAsync(gateway, DemoKeys.Alice);

        using var sum = await alice.PostAsync(CreditCalls.ToolCall(2, "get-sum", """{"a":2,"b":3}"""), DemoKeys.Alice, "req-sum");
        var result = (await Sse.ReadSingleMessageAsync(sum)).GetProperty("result");
        using var free = await alice.PostAsync(CreditCalls.ToolCall(3, "echo", """{"message":"hi"}"""), DemoKeys.Alice, "req-echo");
        var freeResult = (await Sse.ReadSingleMessageAsync(free)).GetProperty("result");

        var entries = (await ledger.GetLedgerAsync("alice", before: null, limit: 100, CancellationToken.None)).Entries;
        var usage = Assert.Single(entries, e => e.RequestId == "req-sum");
        Assert.Equal((McpGuardLedgerEntryKind.Usage, -500L, 999_500L), (usage.Kind, usage.AmountMicro, usage.BalanceAfterMicro));
        Assert.Equal(
            $$"""{"charged_micro":{{-usage.AmountMicro}},"balance_micro":{{usage.BalanceAfterMicro}},"request_id":"req-sum"}""",
            result.GetProperty("_meta").GetProperty("mcpguard/charge").GetRawText());
        Assert.Equal("The sum of 2 and 3 is 5.", result.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("500", CreditCalls.Header(sum, CreditCalls.ChargeHeader));

        // A free call's result is the upstream's own.
        Assert.False(freeResult.TryGetProperty("_meta", out _), freeResult.GetRawText());
        Assert.DoesNotContain(entries, e => e.RequestId == "req-echo");

        // Through the C# client, with progress: the steps still arrive as they happen, and the result has its charge.
        await using var client = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = gateway.McpEndpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = $"Bearer {DemoKeys.Alice}" },
        }));
        var progress = new List<TimeSpan>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var slow = await client.CallToolAsync(
            "trigger-long-running-operation",
            new Dictionary<string, object?> { ["duration"] = 3, ["steps"] = 3 },
            new Progress(_ => { lock (progress) { progress.Add(clock.Elapsed); } }));
        var finished = clock.Elapsed;

        var charge = slow.Meta!["mcpguard/charge"]!;
        var slowUsage = Assert.Single(
            (await ledger.GetLedgerAsync("alice", before: null, limit: 100, CancellationToken.None)).Entries,
            e => e.RequestId == charge["request_id"]!.GetValue<string>());
        Assert.Equal((-100L, 999_400L), (slowUsage.AmountMicro, slowUsage.BalanceAfterMicro));
        Assert.Equal((100L, 999_400L), (charge["charged_micro"]!.GetValue<long>(), charge["balance_micro"]!.GetValue<long>()));
        lock (progress)
        {
            Assert.NotEmpty(progress);
            Assert.True(finished - progress.Min() >= TimeSpan.FromMilliseconds(1500), $"first progress at {progress.Min()}, result at {finished}");
        }
    }

    private static async Task<JsonElement> ListAsync(RawSession session, string key, string method)
    {
        using var response = await session.PostAsync($$"""{"jsonrpc":"2.0","id":7,"method":"{{method}}"}""", key, requestId: null);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        return (await Sse.ReadSingleMessageAsync(response)).GetProperty("result");
    }

    /// <summary>Each listed item's name (for a resource, its URI) and its <c>mcpguard/price</c> as JSON text (null when none).</summary>
    private static List<(string Name, string? Price)> Prices(JsonElement result, string items) =>
        [.. result.GetProperty(items).EnumerateArray().Select(item => (
            (item.TryGetProperty("name", out var name) ? name : item.TryGetProperty("uri", out var uri) ? uri : item.GetProperty("uriTemplate")).GetString()!,
            item.TryGetProperty("_meta", out var meta) && meta.TryGetProperty("mcpguard/price", out var price) ? price.GetRawText() : null))];

    private static string Account(JsonElement result) => result.GetProperty("_meta").GetProperty("mcpguard/account").GetRawText();

    private sealed class Progress(Action<ProgressNotificationValue> report) : IProgress<ProgressNotificationValue>
    {
        public void Report(ProgressNotificationValue value) => report(value);
    }
}
