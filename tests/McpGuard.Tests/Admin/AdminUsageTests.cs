using System.Net;
using System.Text.Json.Nodes;
using McpGuard.Telemetry;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using static McpGuard.Tests.Admin.AdminTestKit;

namespace McpGuard.Tests.Admin;

/// <summary>
/// The figures the dashboard draws: <c>GET /usage</c> (from the ledger, checked against calls made here), <c>GET /traffic</c>
/// (this instance's counts) and <c>GET /tools</c>, each answered exactly; a window other than hour or day is a 400.
/// </summary>
public sealed class AdminUsageTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _clock = new(Start);
    private GuardedHost _host = null!;

    public async Task InitializeAsync() => _host = await StartSampleAsync(_clock);

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task Usage_adds_up_the_charges_free_calls_and_refunds_of_the_calls_made_per_bucket_tool_and_account()
    {
        // 12:00: Alice's add (800) and Bob's first free call. 12:07: Alice's crashing fail (100, refunded) and another add (800).
        await CallAsync(DemoKeys.Alice, "add", new { a = 1, b = 2 }, "alice-1");
        await CallAsync(DemoKeys.Bob, "add", new { a = 1, b = 2 }, "bob-1");
        _clock.Advance(TimeSpan.FromMinutes(7));
        await CallAsync(DemoKeys.Alice, "fail", new { kind = "crash" }, "alice-2");
        await CallAsync(DemoKeys.Alice, "add", new { a = 1, b = 2 }, "alice-3");

        // At 12:07 the hour is twelve buckets of five minutes ending with the one holding 12:07: 11:10 to 12:10.
        var buckets = new JsonArray();
        for (var i = 0; i < 12; i++)
        {
            var start = new DateTimeOffset(2026, 5, 9, 11, 10, 0, TimeSpan.Zero).AddMinutes(5 * i);
            buckets.Add(i switch
            {
                10 => Figures(1, 800, free: 1, start: start),
                11 => Figures(2, 900, refunds: 1, refunded: 100, start: start),
                _ => Figures(0, 0, start: start),
            });
        }

        using (var hour = await _host.GetAdminAsync("/admin/usage?window=hour"))
        {
            await AssertJsonAsync(hour, HttpStatusCode.OK, new JsonObject
            {
                ["window"] = "hour",
                ["bucket_seconds"] = 300,
                ["from"] = "2026-05-09T11:10:00Z",
                ["to"] = "2026-05-09T12:10:00Z",
                ["totals"] = Figures(3, 1700, free: 1, refunds: 1, refunded: 100),
                ["buckets"] = buckets,
                ["tools"] = new JsonArray(Figures(2, 1600, free: 1, name: ("tool", "add")), Figures(1, 100, refunds: 1, refunded: 100, name: ("tool", "fail"))),
                ["tools_total"] = 2,
                ["accounts"] = new JsonArray(Figures(3, 1700, refunds: 1, refunded: 100, name: ("account", "alice")), Figures(0, 0, free: 1, name: ("account", "bob"))),
                ["accounts_total"] = 2,
            });
        }

        // The day: 24 buckets of an hour ending with the one holding 12:07; every call is in its last bucket.
        using var day = await _host.GetAdminAsync("/admin/usage?window=day");
        Assert.Equal(HttpStatusCode.OK, day.StatusCode);
        var body = JsonNode.Parse(await day.Content.ReadAsStringAsync())!;
        Assert.Equal("day", body["window"]!.GetValue<string>());
        Assert.Equal("2026-05-08T13:00:00Z", body["from"]!.GetValue<string>());
        Assert.Equal("2026-05-09T13:00:00Z", body["to"]!.GetValue<string>());
        Assert.Equal(3600, body["bucket_seconds"]!.GetValue<int>());
        var dayBuckets = body["buckets"]!.AsArray();
        Assert.Equal(24, dayBuckets.Count);
        Assert.True(JsonNode.DeepEquals(Figures(3, 1700, free: 1, refunds: 1, refunded: 100, start: new DateTimeOffset(2026, 5, 9, 12, 0, 0, TimeSpan.Zero)), dayBuckets[23]), dayBuckets[23]!.ToJsonString());
        Assert.All(dayBuckets.Take(23), b => Assert.Equal(0, b!["charged_calls"]!.GetValue<long>() + b["free_calls"]!.GetValue<long>()));
        Assert.True(JsonNode.DeepEquals(Figures(3, 1700, free: 1, refunds: 1, refunded: 100), body["totals"]), body["totals"]!.ToJsonString());
    }

    [Fact]
    public async Task Usage_leaves_out_rows_older_than_the_window()
    {
        await CallAsync(DemoKeys.Alice, "add", new { a = 1, b = 2 }, "alice-old");
        _clock.Advance(TimeSpan.FromMinutes(65));
        await CallAsync(DemoKeys.Alice, "slow", new { ms = 0 }, "alice-new");

        using var hour = await _host.GetAdminAsync("/admin/usage?window=hour");
        var body = JsonNode.Parse(await hour.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.OK, hour.StatusCode);
        Assert.Equal("2026-05-09T12:10:00Z", body["from"]!.GetValue<string>());
        Assert.True(JsonNode.DeepEquals(Figures(1, 100), body["totals"]), body["totals"]!.ToJsonString());
        Assert.True(JsonNode.DeepEquals(new JsonArray(Figures(1, 100, name: ("tool", "slow"))), body["tools"]), body["tools"]!.ToJsonString());
    }

    [Theory]
    [InlineData("/admin/usage?window=week", "Must be hour or day (got 'week').")]
    [InlineData("/admin/usage?window=Hour", "Must be hour or day (got 'Hour').")]
    [InlineData("/admin/usage?window=hour&window=day", "Must be hour or day, given once (got it 2 times).")]
    [InlineData("/admin/traffic?window=", "Must be hour or day (got '').")]
    [InlineData("/admin/traffic?window=minute", "Must be hour or day (got 'minute').")]
    public async Task A_window_other_than_hour_or_day_is_refused_with_a_400_naming_it(string path, string message)
    {
        using var response = await _host.GetAdminAsync(path);

        await AssertInvalidAsync(response, FieldErrors(("window", [message])));
    }

    [Fact]
    public async Task Traffic_counts_this_instances_requests_per_bucket_reason_tool_and_method()
    {
        // 12:00: two calls of add and a tools/list pass; Carol's echo is refused (suspended).
        await SendCountedAsync(DemoKeys.Alice, """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}""", HttpStatusCode.OK);
        await SendCountedAsync(DemoKeys.Alice, """{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}""", HttpStatusCode.OK);
        await SendCountedAsync(DemoKeys.Alice, """{"jsonrpc":"2.0","id":3,"method":"tools/list"}""", HttpStatusCode.OK);
        await SendCountedAsync(DemoKeys.Carol, """{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}""", HttpStatusCode.Forbidden);
        _clock.Advance(TimeSpan.FromMinutes(7));
        // 12:07: Bob lacks the scope for premium_report; a revoked key is refused; a body that is not JSON names no method.
        await SendCountedAsync(DemoKeys.Bob, """{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"premium_report","arguments":{"topic":"tea"}}}""", HttpStatusCode.Forbidden);
        await SendCountedAsync(DemoKeys.Revoked, """{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}""", HttpStatusCode.Unauthorized);
        await SendCountedAsync(null, "{", HttpStatusCode.BadRequest);

        // The last bucket ends with the current minute (12:07): 11:08 to 12:07 in buckets of five minutes.
        var buckets = new JsonArray();
        for (var i = 0; i < 12; i++)
        {
            var (passed, refused) = i switch { 10 => (3, 1), 11 => (0, 3), _ => (0, 0) };
            buckets.Add(new JsonObject { ["start"] = Time(new DateTimeOffset(2026, 5, 9, 11, 8, 0, TimeSpan.Zero).AddMinutes(5 * i)), ["passed"] = passed, ["refused"] = refused });
        }

        using var response = await _host.GetAdminAsync("/admin/traffic?window=hour");

        await AssertJsonAsync(response, HttpStatusCode.OK, new JsonObject
        {
            ["window"] = "hour",
            ["bucket_seconds"] = 300,
            ["scope"] = "instance",
            ["passed"] = 3,
            ["refused"] = 4,
            ["buckets"] = buckets,
            ["refusals"] = Json("""[{"reason":"insufficient_scope","count":1},{"reason":"invalid_token","count":1},{"reason":"parse_error","count":1},{"reason":"suspended","count":1}]"""),
            ["tools"] = Json("""[{"tool":"add","passed":2,"refused":1},{"tool":"echo","passed":0,"refused":1},{"tool":"premium_report","passed":0,"refused":1}]"""),
            ["methods"] = Json("""[{"method":"_NONE","passed":0,"refused":1},{"method":"tools/call","passed":2,"refused":3},{"method":"tools/list","passed":1,"refused":0}]"""),
        });
    }

    /// <summary>
    /// POSTs one body to the guarded endpoint and waits until the pipeline
    /// has counted it: a request is counted when it ends, which may be just after the client read the answer.
    /// </summary>
    private async Task SendCountedAsync(string? key, string body, HttpStatusCode status)
    {
        var traffic = _host.Services.GetRequiredService<RecentTraffic>();
        long Counted() => traffic.Snapshot(TimeSpan.FromDays(1), TimeSpan.FromDays(1)).Totals.Values.Sum();
        var before = Counted();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");
        if (key is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {key}");
        }

        using var response = await _host.Client.SendAsync(request);
        Assert.Equal(status, response.StatusCode);
        await response.Content.ReadAsStringAsync();
        for (var i = 0; i < 200 && Counted() == before; i++)
        {
            await Task.Delay(25);
        }

        Assert.Equal(before + 1, Counted());
    }

    [Fact]
    public async Task Traffic_over_a_day_is_24_hourly_buckets_and_the_default_window_is_the_hour()
    {
        _host.Services.GetRequiredService<RecentTraffic>().Record("tools/call", "echo", RecentTraffic.Passed);

        using var day = await _host.GetAdminAsync("/admin/traffic?window=day");
        var body = JsonNode.Parse(await day.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.OK, day.StatusCode);
        Assert.Equal(3600, body["bucket_seconds"]!.GetValue<int>());
        var buckets = body["buckets"]!.AsArray();
        Assert.Equal(24, buckets.Count);
        Assert.Equal("2026-05-08T12:01:00Z", buckets[0]!["start"]!.GetValue<string>());
        Assert.True(JsonNode.DeepEquals(Json("""{"start":"2026-05-09T11:01:00Z","passed":1,"refused":0}"""), buckets[23]), buckets[23]!.ToJsonString());

        using var unspecified = await _host.GetAdminAsync("/admin/traffic");
        var hour = JsonNode.Parse(await unspecified.Content.ReadAsStringAsync())!;
        Assert.Equal("hour", hour["window"]!.GetValue<string>());
        Assert.Equal(12, hour["buckets"]!.AsArray().Count);
    }

    [Fact]
    public async Task Tools_lists_each_configured_tool_with_its_price_scopes_and_both_statuses()
    {
        using (var paused = await _host.PostAdminAsync("/admin/tools/add/pause"))
        {
            Assert.Equal(HttpStatusCode.OK, paused.StatusCode);
        }

        using var response = await _host.GetAdminAsync("/admin/tools");

        await AssertJsonAsync(response, HttpStatusCode.OK, Json("""
            {"tools":[
              {"tool":"add","price_micro":800,"scopes":["tools:basic"],"configured_status":"live","status":"paused"},
              {"tool":"echo","price_micro":0,"scopes":["tools:basic"],"configured_status":"live","status":"live"},
              {"tool":"fail","price_micro":100,"scopes":["tools:basic"],"configured_status":"live","status":"live"},
              {"tool":"premium_report","price_micro":5000,"scopes":["tools:premium"],"configured_status":"live","status":"live"},
              {"tool":"search","price_micro":20,"scopes":["tools:basic"],"configured_status":"live","status":"live","per_unit_micro":2},
              {"tool":"slow","price_micro":100,"scopes":["tools:basic"],"configured_status":"live","status":"live"}
            ],"default_price_micro":0}
            """));
    }

    [Fact]
    public async Task The_new_endpoints_need_the_admin_key_like_every_admin_endpoint()
    {
        foreach (var path in new[] { "/admin/usage", "/admin/traffic", "/admin/tools" })
        {
            using var response = await _host.GetAdminAsync(path, key: null);
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "Unauthorized", "The admin API needs the admin key: send 'Authorization: Bearer <admin key>'.");
        }
    }

    [Fact]
    public async Task Usage_is_a_409_with_credits_off_or_with_an_apps_own_ledger_store_that_does_not_add_up_totals()
    {
        await using (var off = await StartSampleAsync(overrides: new Dictionary<string, string?> { ["McpGuard:Credits:Enabled"] = "false" }))
        {
            using var response = await off.GetAdminAsync("/admin/usage");
            await AssertProblemAsync(response, HttpStatusCode.Conflict, "Conflict",
                "Credits are disabled (McpGuard:Credits:Enabled is false): balances, caps and the ledger are not in use. Keys, suspensions and tool statuses work without them.");
            using var traffic = await off.GetAdminAsync("/admin/traffic");
            Assert.Equal(HttpStatusCode.OK, traffic.StatusCode);
        }

        await using var own = await GuardedHost.StartSampleAsync(
            new Dictionary<string, string?> { ["McpGuard:Admin:KeyHash"] = McpGuardApiKey.Hash(AdminKey) },
            builder => builder.ConfigureServices(services => services.AddSingleton<IMcpGuardLedgerStore, LedgerWithoutTotals>()));
        using var refused = await own.GetAdminAsync("/admin/usage?window=day");
        await AssertProblemAsync(refused, HttpStatusCode.Conflict, "Conflict",
            "The ledger store is the app's own (LedgerWithoutTotals): usage figures are added up by McpGuard's own stores only (Sqlite, InMemory, PostgreSql).");
    }

    private async Task CallAsync(string key, string tool, object arguments, string requestId)
    {
        using var response = await _host.CallToolAsync(key, tool, arguments, requestId);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await Sse.ReadSingleMessageAsync(response);
    }

    private static JsonNode Json(string json) => JsonNode.Parse(json)!;

    private static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>One set of usage figures, with the bucket's start or the tool's or account's name first when given.</summary>
    internal static JsonObject Figures(long charged, long chargedMicro, long free = 0, long refunds = 0, long refunded = 0, DateTimeOffset? start = null, (string Key, string Value)? name = null)
    {
        var figures = new JsonObject();
        if (start is { } s)
        {
            figures["start"] = Time(s);
        }

        if (name is { } n)
        {
            figures[n.Key] = n.Value;
        }

        figures["charged_calls"] = charged;
        figures["charged_micro"] = chargedMicro;
        figures["free_calls"] = free;
        figures["refunds"] = refunds;
        figures["refunded_micro"] = refunded;
        figures["free_refunds"] = 0;
        figures["net_micro"] = chargedMicro - refunded;
        return figures;
    }

    /// <summary>An app's own ledger store: it implements the public interface, which holds no way to add up usage.</summary>
    private sealed class LedgerWithoutTotals : IMcpGuardLedgerStore
    {
        public ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccount> seeds, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

        public ValueTask<McpGuardChargeResult> ChargeAsync(McpGuardChargeRequest request, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<bool> RefundAsync(string requestId, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerEntry> TopUpAsync(string account, long amountMicro, string? note, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerEntry> AdjustAsync(string account, long amountMicro, string note, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardAccount?> GetAccountAsync(string account, int freeCallsPerMonth, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult<McpGuardAccount?>(null);

        public ValueTask SetMonthlyCapAsync(string account, long? capMicro, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerPage> GetLedgerAsync(string account, long? before, int limit, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerEntry?> CaptureAsync(string requestId, long amountMicro, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<int> ReleaseReservationsAsync(DateTimeOffset placedBefore, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(0);
    }
}
