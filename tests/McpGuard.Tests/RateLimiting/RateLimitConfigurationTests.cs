using McpGuard.Sample;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.RateLimiting;

/// <summary>Rate-limit configuration: every problem reported at start-up at once, and what valid configuration produces.</summary>
public sealed class RateLimitConfigurationTests
{
    private static readonly DateTimeOffset HalfPastTen = new(2026, 11, 21, 10, 0, 30, TimeSpan.Zero);

    [Fact]
    public async Task Invalid_rate_limit_options_fail_start_up_listing_every_problem()
    {
        var failures = await StartUpFailuresAsync(new Dictionary<string, string?>
        {
            ["McpGuard:RateLimits:DefaultPolicy"] = "nope",
            ["McpGuard:RateLimits:PartitionBy"] = "7",
            ["McpGuard:RateLimits:CountedMethods:1"] = " ",
            ["McpGuard:Tools:echo:RateLimitPolicy"] = "missing",
            ["McpGuard:Methods:resources/read:RateLimitPolicy"] = "absent",
            ["McpGuard:RateLimits:Policies:empty:PerTool"] = "true",
            ["McpGuard:RateLimits:Policies:add:Windows:0:Permits"] = "0",
            ["McpGuard:RateLimits:Policies:half:Windows:0:Permits"] = "10",
            ["McpGuard:RateLimits:Policies:half:Windows:0:Window"] = "00:00:00.5",
            ["McpGuard:RateLimits:Policies:half:Windows:1:Permits"] = "10",
            ["McpGuard:RateLimits:Policies:half:Windows:1:Window"] = "00:00:01.5",
            ["McpGuard:RateLimits:Policies:half:Windows:2:Permits"] = "10",
            ["McpGuard:RateLimits:Policies:half:Windows:2:Window"] = "-00:01:00",
            ["McpGuard:RateLimits:Policies:sliding:Algorithm"] = "SlidingWindow",
            ["McpGuard:RateLimits:Policies:sliding:Windows:0:Permits"] = "10",
            ["McpGuard:RateLimits:Policies:sliding:Windows:0:Window"] = "00:01:00",
            ["McpGuard:RateLimits:Policies:sliding:Windows:0:Segments"] = "7",
            ["McpGuard:RateLimits:Policies:sliding:Windows:1:Permits"] = "100",
            ["McpGuard:RateLimits:Policies:sliding:Windows:1:Window"] = "01:00:00",
            ["McpGuard:RateLimits:Policies:sliding:Windows:1:Segments"] = "0",
            ["McpGuard:RateLimits:Policies:twice:Windows:0:Permits"] = "10",
            ["McpGuard:RateLimits:Policies:twice:Windows:0:Window"] = "00:01:00",
            ["McpGuard:RateLimits:Policies:twice:Windows:1:Permits"] = "20",
            ["McpGuard:RateLimits:Policies:twice:Windows:1:Window"] = "00:01:00",
            ["McpGuard:RateLimits:Policies:my policy:Windows:0:Permits"] = "1",
            ["McpGuard:RateLimits:Policies:my policy:Windows:0:Window"] = "00:01:00",
            ["McpGuard:RateLimits:Policies:say\"hi:Windows:0:Permits"] = "1",
            ["McpGuard:RateLimits:Policies:say\"hi:Windows:0:Window"] = "00:01:00",
        });

        string[] expected =
            [
                "McpGuard:RateLimits:PartitionBy must be Account or Key (got '7').",
                "McpGuard:RateLimits:DefaultPolicy 'nope' is not defined under McpGuard:RateLimits:Policies.",
                "McpGuard:RateLimits:CountedMethods:1 must name an MCP method, like tools/call.",
                "McpGuard:RateLimits:Policies:empty:Windows needs at least one window, like { \"Permits\": 120, \"Window\": \"00:01:00\" }.",
                "McpGuard:RateLimits:Policies:add:Windows:0:Permits must be at least 1 (got 0).",
                "McpGuard:RateLimits:Policies:half:Windows:0:Window must be a whole number of seconds, at least 00:00:01 (got 00:00:00.5000000).",
                "McpGuard:RateLimits:Policies:half:Windows:1:Window must be a whole number of seconds, at least 00:00:01 (got 00:00:01.5000000).",
                "McpGuard:RateLimits:Policies:half:Windows:2:Window must be a whole number of seconds, at least 00:00:01 (got -00:01:00).",
                "McpGuard:RateLimits:Policies:sliding:Windows:0:Segments must be at least 1 and divide the window evenly (got 7).",
                "McpGuard:RateLimits:Policies:sliding:Windows:1:Segments must be at least 1 and divide the window evenly (got 0).",
                "McpGuard:RateLimits:Policies:twice:Windows:1: the policy already has a window of 00:01:00.",
                "McpGuard:RateLimits:Policies:my policy: a policy name is letters, digits, '-' and '_' (it appears in RateLimit headers).",
                "McpGuard:RateLimits:Policies:say\"hi: a policy name is letters, digits, '-' and '_' (it appears in RateLimit headers).",
                "McpGuard:Tools:echo:RateLimitPolicy 'missing' is not defined under McpGuard:RateLimits:Policies.",
                "McpGuard:Methods:resources/read:RateLimitPolicy 'absent' is not defined under McpGuard:RateLimits:Policies.",
            ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), failures.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task The_samples_rate_limits_are_valid_and_a_guard_without_rate_limits_sends_no_headers()
    {
        await using var sample = await RateLimitWire.StartSampleAsync(new FakeTimeProvider(HalfPastTen));
        await using var plain = await CountingApp.StartAsync(new FakeTimeProvider(HalfPastTen), new Dictionary<string, string?>());

        using var limited = await sample.PostMcpAsync(AuthResponses.Echo());
        using var unlimited = await plain.CallAsync("echo", 1);

        await AuthResponses.AssertToolTextAsync(limited, "hello");
        RateLimitWire.AssertHeaders(limited, RateLimitWire.DefaultPolicy, "\"default-1m\";r=119;t=30, \"default-1d\";r=9999;t=50370");
        Assert.Equal(System.Net.HttpStatusCode.OK, unlimited.StatusCode);
        Assert.Null(RateLimitWire.Header(unlimited, "RateLimit-Policy"));
        Assert.Null(RateLimitWire.Header(unlimited, "RateLimit"));
    }

    [Fact]
    public async Task Window_names_use_the_largest_whole_unit_and_sliding_windows_and_token_buckets_are_accepted()
    {
        await using var app = await CountingApp.StartAsync(new FakeTimeProvider(HalfPastTen), new Dictionary<string, string?>
        {
            ["Guard:RateLimits:DefaultPolicy"] = "mixed_1",
            ["Guard:RateLimits:Policies:mixed_1:Algorithm"] = "SlidingWindow",
            ["Guard:RateLimits:Policies:mixed_1:Windows:0:Permits"] = "1000",
            ["Guard:RateLimits:Policies:mixed_1:Windows:0:Window"] = "02:00:00",
            ["Guard:RateLimits:Policies:mixed_1:Windows:0:Segments"] = "4",
            ["Guard:RateLimits:Policies:mixed_1:Windows:1:Permits"] = "10",
            ["Guard:RateLimits:Policies:mixed_1:Windows:1:Window"] = "00:00:45",
            ["Guard:RateLimits:Policies:mixed_1:Windows:1:Segments"] = "3",
            ["Guard:RateLimits:Policies:mixed_1:Windows:2:Permits"] = "50",
            ["Guard:RateLimits:Policies:mixed_1:Windows:2:Window"] = "00:05:00",
            ["Guard:RateLimits:Policies:mixed_1:Windows:2:Segments"] = "5",
            ["Guard:RateLimits:Policies:mixed_1:Windows:3:Permits"] = "5000",
            ["Guard:RateLimits:Policies:mixed_1:Windows:3:Window"] = "7.00:00:00",
            ["Guard:RateLimits:Policies:mixed_1:Windows:3:Segments"] = "7",
            ["Guard:RateLimits:Policies:Bucket-2:Algorithm"] = "TokenBucket",
            ["Guard:RateLimits:Policies:Bucket-2:Windows:0:Permits"] = "4",
            ["Guard:RateLimits:Policies:Bucket-2:Windows:0:Window"] = "00:01:00",
            ["Guard:Tools:echo:RateLimitPolicy"] = "Bucket-2",
        });

        using var response = await app.CallAsync("echo", 1);

        // The tool's policy first, then the default's windows shortest first. t is the time to the window's next step on the
        // clock: a sliding window's segment (15 s, 60 s, 30 min, 1 day) or a token bucket's token (15 s).
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        RateLimitWire.AssertHeaders(
            response,
            "\"Bucket-2-1m\";q=4;w=60, \"mixed_1-45s\";q=10;w=45, \"mixed_1-5m\";q=50;w=300, \"mixed_1-2h\";q=1000;w=7200, \"mixed_1-7d\";q=5000;w=604800",
            "\"Bucket-2-1m\";r=3;t=15, \"mixed_1-45s\";r=9;t=15, \"mixed_1-5m\";r=49;t=30, \"mixed_1-2h\";r=999;t=1770, \"mixed_1-7d\";r=4999;t=50370");
    }

    /// <summary>Starts the sample with <paramref name="configuration"/> and returns the validation failures it stops with.</summary>
    private static async Task<IEnumerable<string>> StartUpFailuresAsync(Dictionary<string, string?> configuration)
    {
        var exception = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartSampleAsync(configuration, inMemory: true));
        Assert.Equal(typeof(McpGuardOptions), exception.OptionsType);
        foreach (var failure in exception.Failures)
        {
            Assert.Contains(failure, exception.Message, StringComparison.Ordinal);
        }

        return exception.Failures;
    }
}
