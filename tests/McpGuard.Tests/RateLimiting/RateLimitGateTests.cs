using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.RateLimiting;

/// <summary>
/// The rate-limit gate over real HTTP, on a clock the test controls: the sample's policies (120/min and
/// 10,000/day per account, add 30/min per tool, premium_report 5/min), who shares a budget with whom,
/// what counts, and the exact 429, <c>Retry-After</c>, <c>RateLimit-Policy</c> and <c>RateLimit</c> a client sees.
/// </summary>
public sealed class RateLimitGateTests
{
    /// <summary>10:00:30 UTC: 30 s to the next minute, 50,370 s to midnight.</summary>
    private static readonly DateTimeOffset HalfPastTen = new(2026, 11, 21, 10, 0, 30, TimeSpan.Zero);

    // ---- The 429 ----

    [Fact]
    public async Task Bob_gets_30_add_calls_a_minute_and_the_31st_is_429_with_retry_after_to_the_next_minute()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock);

        for (var id = 1; id <= 29; id++)
        {
            using var passed = await RateLimitWire.AddAsync(host, DemoKeys.Bob, id);
            await AuthResponses.AssertToolTextAsync(passed, "3", id);
        }

        using (var thirtieth = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 30))
        {
            await AuthResponses.AssertToolTextAsync(thirtieth, "3", 30);
            RateLimitWire.AssertHeaders(thirtieth, RateLimitWire.AddPolicy, "\"add-1m\";r=0;t=30, \"default-1m\";r=90;t=30, \"default-1d\";r=9970;t=50370");
            Assert.False(thirtieth.Headers.Contains("Retry-After"));
        }

        using var refused = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 31);

        var requestId = await RateLimitWire.AssertRateLimitedAsync(refused, 31, 30, "add-1m",
            RateLimitWire.AddPolicy, "\"add-1m\";r=0;t=30, \"default-1m\";r=90;t=30, \"default-1d\";r=9970;t=50370");
        var logged = Assert.Single(host.Logs.Entries, e => e.EventId.Id == 5001);
        Assert.Equal(LogLevel.Information, logged.Level);
        Assert.Equal("McpGuard.RateLimiting.RateLimitGate", logged.Category);
        Assert.Equal($"Rate limit add-1m reached for account:bob; request {requestId} refused, retry after 30 s.", logged.Message);
    }

    [Fact]
    public async Task Retry_after_rounds_up_to_1_at_hh_mm_59_9_and_the_next_minute_lets_calls_through_again()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock);
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "add", 30);

        clock.Advance(new TimeSpan(0, 0, 0, 29, 900)); // 10:00:59.9
        using (var refused = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 31))
        {
            await RateLimitWire.AssertRateLimitedAsync(refused, 31, 1, "add-1m",
                RateLimitWire.AddPolicy, "\"add-1m\";r=0;t=1, \"default-1m\";r=90;t=1, \"default-1d\";r=9970;t=50341");
        }

        clock.Advance(TimeSpan.FromMilliseconds(100)); // 10:01:00
        using var passed = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 32);

        await AuthResponses.AssertToolTextAsync(passed, "3", 32);
        RateLimitWire.AssertHeaders(passed, RateLimitWire.AddPolicy, "\"add-1m\";r=29;t=60, \"default-1m\";r=119;t=60, \"default-1d\";r=9969;t=50340");
    }

    [Fact]
    public async Task A_refused_call_never_reaches_the_endpoint_and_spends_no_permit_of_any_window()
    {
        await using var app = await CountingApp.StartAsync(new FakeTimeProvider(HalfPastTen), new Dictionary<string, string?>
        {
            ["Guard:RateLimits:DefaultPolicy"] = "default",
            ["Guard:RateLimits:Policies:default:Windows:0:Permits"] = "5",
            ["Guard:RateLimits:Policies:default:Windows:0:Window"] = "00:01:00",
            ["Guard:RateLimits:Policies:default:Windows:1:Permits"] = "100",
            ["Guard:RateLimits:Policies:default:Windows:1:Window"] = "1.00:00:00",
            ["Guard:RateLimits:Policies:add:Windows:0:Permits"] = "2",
            ["Guard:RateLimits:Policies:add:Windows:0:Window"] = "00:01:00",
            ["Guard:Tools:add:RateLimitPolicy"] = "add",
        });
        const string Policy = "\"add-1m\";q=2;w=60, \"default-1m\";q=5;w=60, \"default-1d\";q=100;w=86400";

        for (var id = 1; id <= 2; id++)
        {
            using var passed = await app.CallAsync("add", id);
            Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        }

        Assert.Equal(2, app.Calls);
        for (var id = 3; id <= 5; id++)
        {
            using var refused = await app.CallAsync("add", id);
            await RateLimitWire.AssertRateLimitedAsync(refused, id, 30, "add-1m", Policy, "\"add-1m\";r=0;t=30, \"default-1m\";r=3;t=30, \"default-1d\";r=98;t=50370");
        }

        Assert.Equal(2, app.Calls);
        using var echo = await app.CallAsync("echo", 6);
        Assert.Equal(HttpStatusCode.OK, echo.StatusCode);
        Assert.Equal(3, app.Calls);
        RateLimitWire.AssertHeaders(echo, "\"default-1m\";q=5;w=60, \"default-1d\";q=100;w=86400", "\"default-1m\";r=2;t=30, \"default-1d\";r=97;t=50370");
    }

    [Fact]
    public async Task A_call_refused_by_the_default_policy_spends_nothing_of_its_tools_policy()
    {
        // Alice spends the default 120/min on echo; premium_report (5/min) is then refused by default-1m, and must not
        // lose its own permits for calls it never got to make.
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock);
        await RateLimitWire.SpendAsync(host, DemoKeys.Alice, "echo", 119);
        using (var report = await host.PostMcpAsync(AuthResponses.PremiumReport(id: 120)))
        {
            Assert.Equal(HttpStatusCode.OK, report.StatusCode);
            RateLimitWire.AssertHeaders(report, RateLimitWire.PremiumPolicy, "\"premium-1m\";r=4;t=30, \"default-1m\";r=0;t=30, \"default-1d\";r=9880;t=50370");
        }

        for (var id = 121; id <= 123; id++)
        {
            using var refused = await host.PostMcpAsync(AuthResponses.PremiumReport(id: id));
            await RateLimitWire.AssertRateLimitedAsync(refused, id, 30, "default-1m",
                RateLimitWire.PremiumPolicy, "\"premium-1m\";r=4;t=30, \"default-1m\";r=0;t=30, \"default-1d\";r=9880;t=50370");
        }

        clock.Advance(TimeSpan.FromSeconds(30));
        using var next = await host.PostMcpAsync(AuthResponses.PremiumReport(id: 124));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        RateLimitWire.AssertHeaders(next, RateLimitWire.PremiumPolicy, "\"premium-1m\";r=4;t=60, \"default-1m\";r=119;t=60, \"default-1d\";r=9879;t=50340");
    }

    // ---- Whose budget ----

    [Fact]
    public async Task Bob_exhausting_add_can_still_call_echo_which_spends_only_the_default_policy()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock);
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "add", 30);

        using var echo = await host.PostMcpAsync(AuthResponses.Echo("still here", id: 31), apiKey: DemoKeys.Bob);

        await AuthResponses.AssertToolTextAsync(echo, "still here", 31);
        RateLimitWire.AssertHeaders(echo, RateLimitWire.DefaultPolicy, "\"default-1m\";r=89;t=30, \"default-1d\";r=9969;t=50370");
    }

    [Fact]
    public async Task Premium_report_allows_5_a_minute_per_account_across_the_accounts_keys()
    {
        var secondKey = "mcpg_test_alice_second";
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock, RateLimitWire.SecondKey("alice", secondKey, "tools:basic", "tools:premium"));

        for (var id = 1; id <= 5; id++)
        {
            using var passed = await host.PostMcpAsync(AuthResponses.PremiumReport(id), apiKey: id % 2 == 0 ? secondKey : DemoKeys.Alice);
            await AuthResponses.AssertToolTextAsync(passed, "Premium report on tea: demand is steady, risks are known, and the outlook is fair.", id);
        }

        foreach (var (key, id) in new[] { (DemoKeys.Alice, 6), (secondKey, 7) })
        {
            using var refused = await host.PostMcpAsync(AuthResponses.PremiumReport(id), apiKey: key);
            await RateLimitWire.AssertRateLimitedAsync(refused, id, 30, "premium-1m",
                RateLimitWire.PremiumPolicy, "\"premium-1m\";r=0;t=30, \"default-1m\";r=115;t=30, \"default-1d\";r=9995;t=50370");
        }
    }

    [Fact]
    public async Task The_default_policys_120_a_minute_spans_every_tool()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock);
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "add", 20);
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "echo", 100);

        using var echo = await host.PostMcpAsync(AuthResponses.Echo(id: 121), apiKey: DemoKeys.Bob);
        using var add = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 122);

        await RateLimitWire.AssertRateLimitedAsync(echo, 121, 30, "default-1m",
            RateLimitWire.DefaultPolicy, "\"default-1m\";r=0;t=30, \"default-1d\";r=9880;t=50370");
        await RateLimitWire.AssertRateLimitedAsync(add, 122, 30, "default-1m",
            RateLimitWire.AddPolicy, "\"add-1m\";r=10;t=30, \"default-1m\";r=0;t=30, \"default-1d\";r=9880;t=50370");
    }

    [Fact]
    public async Task A_per_day_window_refuses_until_midnight_utc()
    {
        // 10,000 a day is too many to spend in a test: the same policy with 3 a day.
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 21, 23, 59, 30, TimeSpan.Zero));
        await using var host = await RateLimitWire.StartSampleAsync(clock, new Dictionary<string, string?>
        {
            ["McpGuard:RateLimits:Policies:default:Windows:1:Permits"] = "3",
        });
        const string Policy = "\"default-1m\";q=120;w=60, \"default-1d\";q=3;w=86400";
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "echo", 3);

        using (var refused = await host.PostMcpAsync(AuthResponses.Echo(id: 4), apiKey: DemoKeys.Bob))
        {
            await RateLimitWire.AssertRateLimitedAsync(refused, 4, 30, "default-1d", Policy, "\"default-1m\";r=117;t=30, \"default-1d\";r=0;t=30");
        }

        clock.Advance(TimeSpan.FromSeconds(29));
        using (var refused = await host.PostMcpAsync(AuthResponses.Echo(id: 5), apiKey: DemoKeys.Bob))
        {
            await RateLimitWire.AssertRateLimitedAsync(refused, 5, 1, "default-1d", Policy, "\"default-1m\";r=117;t=1, \"default-1d\";r=0;t=1");
        }

        clock.Advance(TimeSpan.FromSeconds(1)); // 2026-11-22T00:00:00Z
        using var passed = await host.PostMcpAsync(AuthResponses.Echo("new day", id: 6), apiKey: DemoKeys.Bob);

        await AuthResponses.AssertToolTextAsync(passed, "new day", 6);
        RateLimitWire.AssertHeaders(passed, Policy, "\"default-1m\";r=119;t=60, \"default-1d\";r=2;t=86400");
    }

    [Fact]
    public async Task When_several_windows_are_full_retry_after_names_the_one_that_frees_last()
    {
        // 3 a minute and 3 a day: after three calls at 10:00:30 both are full; the minute frees in 30 s, the day at midnight.
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock, new Dictionary<string, string?>
        {
            ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "3",
            ["McpGuard:RateLimits:Policies:default:Windows:1:Permits"] = "3",
        });
        const string Policy = "\"default-1m\";q=3;w=60, \"default-1d\";q=3;w=86400";
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "echo", 3);

        using var refused = await host.PostMcpAsync(AuthResponses.Echo(id: 4), apiKey: DemoKeys.Bob);

        await RateLimitWire.AssertRateLimitedAsync(refused, 4, 50370, "default-1d", Policy, "\"default-1m\";r=0;t=30, \"default-1d\";r=0;t=50370");
    }

    [Fact]
    public async Task Two_accounts_do_not_affect_each_other()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock);
        await RateLimitWire.SpendAsync(host, DemoKeys.Alice, "add", 30);

        using var bob = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 31);
        using var alice = await RateLimitWire.AddAsync(host, DemoKeys.Alice, 32);

        await AuthResponses.AssertToolTextAsync(bob, "3", 31);
        RateLimitWire.AssertHeaders(bob, RateLimitWire.AddPolicy, "\"add-1m\";r=29;t=30, \"default-1m\";r=119;t=30, \"default-1d\";r=9999;t=50370");
        await RateLimitWire.AssertRateLimitedAsync(alice, 32, 30, "add-1m",
            RateLimitWire.AddPolicy, "\"add-1m\";r=0;t=30, \"default-1m\";r=90;t=30, \"default-1d\";r=9970;t=50370");
    }

    [Theory]
    [InlineData("Key")]
    [InlineData("Account")]
    public async Task Partitioned_by_key_each_key_of_an_account_has_its_own_budget_and_by_account_they_share_one(string partitionBy)
    {
        var secondKey = "mcpg_test_bob_second";
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock, new Dictionary<string, string?>(RateLimitWire.SecondKey("bob", secondKey, "tools:basic"))
        {
            ["McpGuard:RateLimits:PartitionBy"] = partitionBy,
        });
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "add", 30);

        using var second = await RateLimitWire.AddAsync(host, secondKey, 31);

        if (partitionBy == "Key")
        {
            await AuthResponses.AssertToolTextAsync(second, "3", 31);
            RateLimitWire.AssertHeaders(second, RateLimitWire.AddPolicy, "\"add-1m\";r=29;t=30, \"default-1m\";r=119;t=30, \"default-1d\";r=9999;t=50370");
        }
        else
        {
            await RateLimitWire.AssertRateLimitedAsync(second, 31, 30, "add-1m",
                RateLimitWire.AddPolicy, "\"add-1m\";r=0;t=30, \"default-1m\";r=90;t=30, \"default-1d\";r=9970;t=50370");
        }

        using var first = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 32);
        await RateLimitWire.AssertRateLimitedAsync(first, 32, 30, "add-1m",
            RateLimitWire.AddPolicy, "\"add-1m\";r=0;t=30, \"default-1m\";r=90;t=30, \"default-1d\";r=9970;t=50370");
    }

    // ---- What counts ----

    [Fact]
    public async Task Methods_that_do_not_count_never_spend_a_permit_but_carry_the_headers()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock, new Dictionary<string, string?>
        {
            ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "1",
        });
        const string Policy = "\"default-1m\";q=1;w=60, \"default-1d\";q=10000;w=86400";
        const string Fresh = "\"default-1m\";r=1;t=30, \"default-1d\";r=10000;t=50370";
        const string Spent = "\"default-1m\";r=0;t=30, \"default-1d\";r=9999;t=50370";

        await AssertNotCountedAsync(Fresh);
        using (var echo = await host.PostMcpAsync(AuthResponses.Echo(id: 2), apiKey: DemoKeys.Bob))
        {
            await AuthResponses.AssertToolTextAsync(echo, "hello", 2);
            RateLimitWire.AssertHeaders(echo, Policy, Spent);
        }

        // With the minute spent, they still pass.
        await AssertNotCountedAsync(Spent);
        using var refused = await host.PostMcpAsync(AuthResponses.Echo(id: 3), apiKey: DemoKeys.Bob);
        await RateLimitWire.AssertRateLimitedAsync(refused, 3, 30, "default-1m", Policy, Spent);

        async Task AssertNotCountedAsync(string state)
        {
            using (var list = await host.PostMcpAsync(AuthResponses.Request("tools/list", id: 7), apiKey: DemoKeys.Bob))
            {
                Assert.Equal(HttpStatusCode.OK, list.StatusCode);
                var message = await Sse.ReadSingleMessageAsync(list);
                Assert.Equal(["add", "echo", "fail", "search", "slow"], message.GetProperty("result").GetProperty("tools").EnumerateArray().Select(t => t.GetProperty("name").GetString()).Order());
                RateLimitWire.AssertHeaders(list, Policy, state);
            }

            using (var ping = await host.PostMcpAsync("""{"jsonrpc":"2.0","id":8,"method":"ping"}""", apiKey: DemoKeys.Bob))
            {
                Assert.Equal(HttpStatusCode.OK, ping.StatusCode);
                WireAssert.JsonEquals("""{"jsonrpc":"2.0","id":8,"result":{}}""", (await Sse.ReadSingleMessageAsync(ping)).GetRawText());
                RateLimitWire.AssertHeaders(ping, Policy, state);
            }

            using (var notification = await host.PostMcpAsync("""{"jsonrpc":"2.0","method":"notifications/initialized"}""", apiKey: DemoKeys.Bob))
            {
                Assert.Equal(HttpStatusCode.Accepted, notification.StatusCode);
                Assert.Empty(await notification.Content.ReadAsByteArrayAsync());
                RateLimitWire.AssertHeaders(notification, Policy, state);
            }

            // A notification named like a counted method is still a notification: it never counts.
            using (var callNotification = await host.PostMcpAsync("""{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}""", apiKey: DemoKeys.Bob))
            {
                Assert.Equal(HttpStatusCode.Accepted, callNotification.StatusCode);
                RateLimitWire.AssertHeaders(callNotification, Policy, state);
            }
        }
    }

    [Fact]
    public async Task Counted_methods_can_be_configured()
    {
        // The sample lists tools/call, resources/read and prompts/get; replacing the first makes tools/list count instead of tools/call.
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock, new Dictionary<string, string?>
        {
            ["McpGuard:RateLimits:CountedMethods:0"] = "tools/list",
            ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "2",
        });
        const string Policy = "\"default-1m\";q=2;w=60, \"default-1d\";q=10000;w=86400";

        for (var id = 1; id <= 3; id++)
        {
            using var add = await RateLimitWire.AddAsync(host, DemoKeys.Bob, id);
            await AuthResponses.AssertToolTextAsync(add, "3", id);
            // tools/call no longer counts, so neither does add's own policy: only the default policy's headers.
            RateLimitWire.AssertHeaders(add, Policy, "\"default-1m\";r=2;t=30, \"default-1d\";r=10000;t=50370");
        }

        for (var id = 4; id <= 5; id++)
        {
            using var list = await host.PostMcpAsync(AuthResponses.Request("tools/list", id), apiKey: DemoKeys.Bob);
            Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        }

        using var refused = await host.PostMcpAsync(AuthResponses.Request("tools/list", 6), apiKey: DemoKeys.Bob);
        await RateLimitWire.AssertRateLimitedAsync(refused, 6, 30, "default-1m", Policy, "\"default-1m\";r=0;t=30, \"default-1d\";r=9998;t=50370");
    }

    // ---- Callers without credentials ----

    [Fact]
    public async Task Anonymous_callers_share_their_remote_addresss_budget_and_a_spoofed_x_forwarded_for_does_not_change_it()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock, new Dictionary<string, string?>
        {
            ["McpGuard:Auth:AnonymousMethods:0"] = "tools/call",
            ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "2",
        });
        const string Policy = "\"default-1m\";q=2;w=60, \"default-1d\";q=10000;w=86400";

        // Anonymous callers may only call what needs no scope (every sample tool needs one), so they call a tool
        // the guard has no policy for: it passes the guard, counts, and the server answers that it does not know it.
        static string Unlisted(int id) => "{\"jsonrpc\":\"2.0\",\"id\":" + id.ToString(System.Globalization.CultureInfo.InvariantCulture) + ",\"method\":\"tools/call\",\"params\":{\"name\":\"unlisted\",\"arguments\":{}}}";

        for (var id = 1; id <= 2; id++)
        {
            using var passed = await host.PostMcpAsync(Unlisted(id), apiKey: null, headers: new Dictionary<string, string> { ["X-Forwarded-For"] = $"198.51.100.{id}" });
            Assert.Equal(System.Net.HttpStatusCode.OK, passed.StatusCode);
            var answer = await Sse.ReadSingleMessageAsync(passed);
            Assert.Equal(id, answer.GetProperty("id").GetInt32());
            Assert.Equal(-32602, answer.GetProperty("error").GetProperty("code").GetInt32());
            Assert.Equal("Unknown tool: 'unlisted'", answer.GetProperty("error").GetProperty("message").GetString());
        }

        for (var id = 3; id <= 5; id++)
        {
            using var refused = await host.PostMcpAsync(Unlisted(id), apiKey: null, headers: new Dictionary<string, string> { ["X-Forwarded-For"] = $"198.51.100.{id}" });
            await RateLimitWire.AssertRateLimitedAsync(refused, id, 30, "default-1m", Policy, "\"default-1m\";r=0;t=30, \"default-1d\";r=9998;t=50370");
        }

        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 5001 && e.Message.Contains(" for ip:127.0.0.1; ", StringComparison.Ordinal));

        // An authenticated caller from the same address has its own budget.
        using var alice = await host.PostMcpAsync(AuthResponses.Echo(id: 6));
        await AuthResponses.AssertToolTextAsync(alice, "hello", 6);
        RateLimitWire.AssertHeaders(alice, Policy, "\"default-1m\";r=1;t=30, \"default-1d\";r=9999;t=50370");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task X_forwarded_for_is_honoured_only_when_the_app_configures_the_forwarded_headers_middleware(bool forwardedHeaders)
    {
        await using var app = await CountingApp.StartAsync(
            new FakeTimeProvider(HalfPastTen),
            new Dictionary<string, string?>
            {
                ["Guard:RateLimits:DefaultPolicy"] = "default",
                ["Guard:RateLimits:Policies:default:Windows:0:Permits"] = "2",
                ["Guard:RateLimits:Policies:default:Windows:0:Window"] = "00:01:00",
            },
            builder => builder.Services.Configure<ForwardedHeadersOptions>(options =>
            {
                options.ForwardedHeaders = ForwardedHeaders.XForwardedFor;
                options.KnownIPNetworks.Clear();
                options.KnownProxies.Clear();
                options.KnownProxies.Add(IPAddress.Loopback);
            }),
            web =>
            {
                if (forwardedHeaders)
                {
                    web.UseForwardedHeaders();
                }
            });
        const string Policy = "\"default-1m\";q=2;w=60";

        using (var first = await app.CallAsync("echo", 1, forwardedFor: "203.0.113.1"))
        using (var second = await app.CallAsync("echo", 2, forwardedFor: "203.0.113.1"))
        using (var third = await app.CallAsync("echo", 3, forwardedFor: "203.0.113.1"))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal(HttpStatusCode.OK, second.StatusCode);
            await RateLimitWire.AssertRateLimitedAsync(third, 3, 30, "default-1m", Policy, "\"default-1m\";r=0;t=30");
        }

        using var otherClient = await app.CallAsync("echo", 4, forwardedFor: "203.0.113.2");
        using var direct = await app.CallAsync("echo", 5);
        if (forwardedHeaders)
        {
            // Behind a known proxy, each client address has its own budget.
            Assert.Equal(HttpStatusCode.OK, otherClient.StatusCode);
            RateLimitWire.AssertHeaders(otherClient, Policy, "\"default-1m\";r=1;t=30");
            Assert.Equal(HttpStatusCode.OK, direct.StatusCode);
            RateLimitWire.AssertHeaders(direct, Policy, "\"default-1m\";r=1;t=30");
            Assert.Equal(["203.0.113.1", "203.0.113.1", "203.0.113.2", "127.0.0.1"], app.RemoteAddresses);
        }
        else
        {
            // McpGuard never reads the header itself: every request is 127.0.0.1's.
            await RateLimitWire.AssertRateLimitedAsync(otherClient, 4, 30, "default-1m", Policy, "\"default-1m\";r=0;t=30");
            await RateLimitWire.AssertRateLimitedAsync(direct, 5, 30, "default-1m", Policy, "\"default-1m\";r=0;t=30");
            Assert.Equal(["127.0.0.1", "127.0.0.1"], app.RemoteAddresses);
        }
    }
}

/// <summary>Shared by the rate-limit tests: the sample on a manual clock, calls, and exact assertions of a 429 and the RateLimit headers.</summary>
internal static class RateLimitWire
{
    public const string DefaultPolicy = "\"default-1m\";q=120;w=60, \"default-1d\";q=10000;w=86400";
    public const string AddPolicy = "\"add-1m\";q=30;w=60, " + DefaultPolicy;
    public const string PremiumPolicy = "\"premium-1m\";q=5;w=60, " + DefaultPolicy;

    /// <summary>The sample, on <paramref name="clock"/>, with optional configuration overrides.</summary>
    /// <summary>
    /// The sample on a manual clock, with the credit gate off: these tests spend far more calls than the demo
    /// balances pay for (bob has 240 µ and three free calls), and what they measure is the rate-limit gate alone.
    /// </summary>
    public static Task<GuardedHost> StartSampleAsync(FakeTimeProvider clock, IReadOnlyDictionary<string, string?>? configuration = null, Action<IWebHostBuilder>? configure = null)
    {
        var settings = new Dictionary<string, string?> { ["McpGuard:Credits:Enabled"] = "false" };
        foreach (var (key, value) in configuration ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return GuardedHost.StartSampleAsync(settings, builder =>
        {
            builder.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock));
            configure?.Invoke(builder);
        });
    }

    /// <summary>Configuration that adds a second API key (index 5, after the sample's five) for <paramref name="account"/>.</summary>
    public static Dictionary<string, string?> SecondKey(string account, string key, params string[] scopes)
    {
        var configuration = new Dictionary<string, string?>
        {
            ["McpGuard:Auth:ApiKeys:Keys:5:Id"] = $"{account}-second",
            ["McpGuard:Auth:ApiKeys:Keys:5:Account"] = account,
            ["McpGuard:Auth:ApiKeys:Keys:5:Hash"] = McpGuardApiKey.Hash(key),
        };
        for (var i = 0; i < scopes.Length; i++)
        {
            configuration[$"McpGuard:Auth:ApiKeys:Keys:5:Scopes:{i}"] = scopes[i];
        }

        return configuration;
    }

    public static Task<HttpResponseMessage> AddAsync(GuardedHost host, string key, int id) =>
        host.PostMcpAsync(AuthResponses.ToolCall("add", new { a = 1, b = 2 }, id), apiKey: key);

    /// <summary>Makes <paramref name="count"/> successful calls of <paramref name="tool"/> (add or echo).</summary>
    public static async Task SpendAsync(GuardedHost host, string key, string tool, int count)
    {
        for (var i = 0; i < count; i++)
        {
            using var response = await host.PostMcpAsync(tool == "add" ? AuthResponses.ToolCall("add", new { a = 1, b = 2 }, 1000 + i) : AuthResponses.Echo(id: 1000 + i), apiKey: key);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"call {i + 1} of {tool}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    /// <summary>The single raw value of a header, or null when the response has none.</summary>
    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.NonValidated.TryGetValues(name, out var values) ? Assert.Single(values) : null;

    public static void AssertHeaders(HttpResponseMessage response, string policy, string state)
    {
        Assert.Equal(policy, Header(response, "RateLimit-Policy"));
        Assert.Equal(state, Header(response, "RateLimit"));
    }

    /// <summary>Asserts the JSON-RPC 429 exactly (status, Retry-After, headers, whole body). Returns the request id.</summary>
    public static async Task<string> AssertRateLimitedAsync(HttpResponseMessage response, long id, int retryAfter, string limit, string policy, string state)
    {
        var requestId = await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.TooManyRequests, -31201,
            $"Rate limit exceeded: retry after {retryAfter} s.", "rate_limited", id,
            extraData: new JsonObject { ["retry_after"] = retryAfter, ["limit"] = limit });
        Assert.Equal(retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture), Header(response, "Retry-After"));
        AssertHeaders(response, policy, state);
        return requestId;
    }
}

/// <summary>
/// A test-built app: McpGuard (bound from <c>Guard</c>, no authentication) in front of a POST /mcp endpoint that only
/// counts its invocations and records the remote address it saw, on a manual clock.
/// </summary>
internal sealed class CountingApp : IAsyncDisposable
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _remoteAddresses = new();
    private int _calls;

    private CountingApp()
    {
    }

    public GuardedHost Host { get; private set; } = null!;

    public int Calls => Volatile.Read(ref _calls);

    public IReadOnlyList<string> RemoteAddresses => [.. _remoteAddresses];

    public static async Task<CountingApp> StartAsync(
        TimeProvider clock,
        IReadOnlyDictionary<string, string?> configuration,
        Action<WebApplicationBuilder>? build = null,
        Action<WebApplication>? beforeGuard = null)
    {
        var app = new CountingApp();
        app.Host = await GuardedHost.StartAsync(
            builder =>
            {
                builder.Services.AddMcpGuard(builder.Configuration.GetSection("Guard"));
                builder.Services.AddSingleton(clock);
                build?.Invoke(builder);
            },
            web =>
            {
                beforeGuard?.Invoke(web);
                web.UseMcpGuard();
                web.MapPost("/mcp", (Microsoft.AspNetCore.Http.HttpContext context) =>
                {
                    Interlocked.Increment(ref app._calls);
                    app._remoteAddresses.Enqueue(context.Connection.RemoteIpAddress?.ToString() ?? "-");
                    return Microsoft.AspNetCore.Http.Results.Text("""{"jsonrpc":"2.0","id":0,"result":{}}""", "application/json");
                });
            },
            configuration);
        return app;
    }

    /// <summary>A tools/call of <paramref name="tool"/> with no credentials, optionally with an <c>X-Forwarded-For</c> header.</summary>
    public Task<HttpResponseMessage> CallAsync(string tool, int id, string? forwardedFor = null, string method = "tools/call") =>
        Host.PostMcpAsync(
            method == "tools/call" ? AuthResponses.ToolCall(tool, id: id) : JsonSerializer.Serialize(new { jsonrpc = "2.0", id, method, @params = new { uri = "test://x", name = tool } }),
            apiKey: null,
            headers: forwardedFor is null ? null : new Dictionary<string, string> { ["X-Forwarded-For"] = forwardedFor });

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}
