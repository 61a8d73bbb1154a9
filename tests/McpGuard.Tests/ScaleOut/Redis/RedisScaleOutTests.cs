using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tests.RateLimiting;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace McpGuard.Tests.ScaleOut.Redis;

/// <summary>
/// The sample, several instances of it, sharing one redis-server through McpGuard:RateLimits:Store=Redis: one window for
/// all of them (even with skewed clocks), the exact 429 and RateLimit headers, and what clients get while Redis is down.
/// </summary>
[Collection(RedisTests.Name)]
public sealed partial class RedisScaleOutTests(RedisServer redis, ITestOutputHelper output)
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    private Dictionary<string, string?> Configuration(int perMinute, int perDay, string? onStoreFailure = null)
    {
        var configuration = new Dictionary<string, string?>
        {
            ["McpGuard:Credits:Enabled"] = "false",
            ["McpGuard:RateLimits:Store"] = "Redis",
            ["McpGuard:Redis:Configuration"] = redis.Configuration,
            ["McpGuard:Redis:KeyPrefix"] = $"scale-{Guid.NewGuid():N}:",
            ["McpGuard:StoreTimeout"] = "00:00:00.5",
            ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = perMinute.ToString(CultureInfo.InvariantCulture),
            ["McpGuard:RateLimits:Policies:default:Windows:1:Permits"] = perDay.ToString(CultureInfo.InvariantCulture),
        };
        if (onStoreFailure is not null)
        {
            configuration["McpGuard:RateLimits:OnStoreFailure"] = onStoreFailure;
        }

        return configuration;
    }

    [Fact]
    public async Task Three_instances_share_100_calls_a_minute_300_parallel_calls_give_exactly_100_passes_and_200_exact_429s()
    {
        var configuration = Configuration(100, 10000);
        // Counting, not an outage: a machine busy with the rest of the suite must not turn a count into a 503.
        configuration["McpGuard:StoreTimeout"] = "00:00:05";
        await using var a = await GuardedHost.StartSampleAsync(configuration);
        await using var b = await GuardedHost.StartSampleAsync(configuration);
        await using var c = await GuardedHost.StartSampleAsync(configuration);
        GuardedHost[] hosts = [a, b, c];
        const string policy = "\"default-1m\";q=100;w=60, \"default-1d\";q=10000;w=86400";
        foreach (var host in hosts)
        {
            // tools/list is not counted: the store only reads the windows (and each instance connects to Redis).
            using var list = await host.PostMcpAsync("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"tools/list\"}");
            Assert.Equal(HttpStatusCode.OK, list.StatusCode);
            Assert.Equal(policy, RateLimitWire.Header(list, "RateLimit-Policy"));
            Assert.Matches("^\"default-1m\";r=100;t=\\d+, \"default-1d\";r=10000;t=\\d+$", RateLimitWire.Header(list, "RateLimit"));
        }

        await redis.WaitForRoomInMinuteAsync(TimeSpan.FromSeconds(5));
        var before = await redis.TimeAsync();

        var responses = await Task.WhenAll(Enumerable.Range(1, 300).Select(id => hosts[id % 3].PostMcpAsync(AuthResponses.Echo(id: id))));

        var after = await redis.TimeAsync();
        var minuteResets = Resets(before, after, Minute);
        var dayResets = Resets(before, after, TimeSpan.FromDays(1));
        var passedMinute = new List<long>();
        var perHost = new int[3];
        for (var i = 0; i < responses.Length; i++)
        {
            using var response = responses[i];
            var id = i + 1;
            var state = State(response);
            Assert.Contains(state.MinuteReset, minuteResets);
            Assert.Contains(state.DayReset, dayResets);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                await AuthResponses.AssertToolTextAsync(response, "hello", id);
                Assert.Equal(policy, RateLimitWire.Header(response, "RateLimit-Policy"));
                // Both windows are spent in one step: the day has spent exactly what the minute has.
                Assert.Equal(state.Minute + 9900, state.Day);
                passedMinute.Add(state.Minute);
                perHost[id % 3]++;
            }
            else
            {
                // A refused call spends nothing in either window: the day stays at 10000 - 100.
                await RateLimitWire.AssertRateLimitedAsync(response, id, (int)state.MinuteReset, "default-1m", policy,
                    $"\"default-1m\";r=0;t={state.MinuteReset}, \"default-1d\";r=9900;t={state.DayReset}");
            }
        }

        Assert.Equal(Enumerable.Range(0, 100).Select(r => (long)r), passedMinute.Order());
        output.WriteLine($"passes per instance: {string.Join(", ", perHost)}; Redis time {before:O} to {after:O}");
        Assert.True(perHost.Count(passes => passes > 0) >= 2, $"the 100 passes are served by more than one instance: {string.Join(", ", perHost)}");
        Assert.Equal(200, hosts.Sum(h => h.Logs.Entries.Count(e => e.EventId.Id == 5001)));
    }

    [Fact]
    public async Task Two_instances_whose_clocks_differ_by_30_s_still_enforce_one_window_on_Redis_clock()
    {
        var configuration = Configuration(10, 10000);
        // Counting, not an outage: a machine busy with the rest of the suite must not turn a count into a 503.
        configuration["McpGuard:StoreTimeout"] = "00:00:05";
        // By their own clocks these two are in different minutes (10:00:50 and 10:01:20): counting on them would give 20 passes.
        var early = new FakeTimeProvider(new DateTimeOffset(2026, 11, 21, 10, 0, 50, TimeSpan.Zero));
        var late = new FakeTimeProvider(early.GetUtcNow().AddSeconds(30));
        await using var a = await GuardedHost.StartSampleAsync(configuration, builder => builder.ConfigureServices(s => s.AddSingleton<TimeProvider>(early)));
        await using var b = await GuardedHost.StartSampleAsync(configuration, builder => builder.ConfigureServices(s => s.AddSingleton<TimeProvider>(late)));
        await redis.WaitForRoomInMinuteAsync(TimeSpan.FromSeconds(5));
        var before = await redis.TimeAsync();

        var states = new List<(int Status, string Host, RateLimitState State)>();
        for (var id = 1; id <= 30; id++)
        {
            var host = id % 2 == 0 ? a : b;
            using var response = await host.PostMcpAsync(AuthResponses.Echo(id: id));
            states.Add(((int)response.StatusCode, host == a ? "a" : "b", State(response)));
        }

        var after = await redis.TimeAsync();
        Assert.Equal(10, states.Count(s => s.Status == 200));
        Assert.Equal(20, states.Count(s => s.Status == 429));
        Assert.Equal(Enumerable.Range(0, 10).Reverse().Select(r => (long)r), states.Where(s => s.Status == 200).Select(s => s.State.Minute));
        // The resets come from Redis's clock on both (by theirs they would be 10 s and 40 s).
        var resets = Resets(before, after, Minute);
        Assert.All(states, s => Assert.Contains(s.State.MinuteReset, resets));
        Assert.DoesNotContain(states, s => s.State.MinuteReset is 10 or 40 && !resets.Contains(s.State.MinuteReset));
    }

    [Fact]
    public async Task FailClosed_while_Redis_is_down_every_call_gets_503_limiter_unavailable_and_calls_pass_again_after_it_restarts()
    {
        await using var host = await GuardedHost.StartSampleAsync(Configuration(1_000_000, 1_000_000));
        var run = await RunThroughRestartAsync(host);

        Assert.True(run.Down.Count >= 10, $"calls made while Redis was down: {run.Down.Count}");
        var first = true;
        foreach (var call in run.Down)
        {
            if (first)
            {
                var raw = await call.Response.Content.ReadAsStringAsync();
                output.WriteLine($"{(int)call.Response.StatusCode} Retry-After: {RateLimitWire.Header(call.Response, "Retry-After")}\n{raw}");
                TestReport.Write($"Redis down, FailClosed: {(int)call.Response.StatusCode} Retry-After: {RateLimitWire.Header(call.Response, "Retry-After")} {raw}");
                first = false;
            }

            await WireAssert.JsonRpcErrorAsync(call.Response, HttpStatusCode.ServiceUnavailable, -31203, "Rate limiter unavailable: retry after 1 s.", "limiter_unavailable", (long)call.Id,
                extraData: new JsonObject { ["retry_after"] = 1 });
            Assert.Equal("1", RateLimitWire.Header(call.Response, "Retry-After"));
            Assert.Null(RateLimitWire.Header(call.Response, "RateLimit"));
        }

        Assert.True(run.After.Count(c => c.Response.StatusCode == HttpStatusCode.OK) >= 10);
        Assert.Equal(run.All.Count(c => c.Response.StatusCode == HttpStatusCode.ServiceUnavailable), host.Logs.Entries.Count(e => e.EventId.Id == 5002));
        var logged = host.Logs.Entries.First(e => e.EventId.Id == 5002);
        Assert.Equal(LogLevel.Error, logged.Level);
        Assert.Matches("^The rate-limit store did not answer for account:alice; request [^ ]+ refused with limiter_unavailable \\(RateLimits:OnStoreFailure is FailClosed\\)\\.$", logged.Message);
        run.Dispose();
    }

    [Fact]
    public async Task FailOpen_while_Redis_is_down_calls_pass_counted_in_the_store_failures_metric_and_logged_and_are_counted_again_after_it_restarts()
    {
        long passedUncounted = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "McpGuard" && instrument.Name == "mcpguard.rate_limit.store_failures")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag is { Key: "mcpguard.outcome", Value: "passed" })
                {
                    Interlocked.Add(ref passedUncounted, value);
                }
            }
        });
        listener.Start();
        await using var host = await GuardedHost.StartSampleAsync(Configuration(1_000_000, 1_000_000, "FailOpen"));

        var run = await RunThroughRestartAsync(host);

        Assert.True(run.Down.Count >= 10, $"calls made while Redis was down: {run.Down.Count}");
        foreach (var call in run.Down)
        {
            await AuthResponses.AssertToolTextAsync(call.Response, "hello", call.Id);
            Assert.Null(RateLimitWire.Header(call.Response, "RateLimit"));
        }

        // After the restart the counters start again (Redis kept nothing) and calls carry the RateLimit header again.
        var counted = run.After.Where(c => RateLimitWire.Header(c.Response, "RateLimit") is not null).ToList();
        Assert.True(counted.Count >= 10);
        var failOpen = host.Logs.Entries.Where(e => e.EventId.Id == 5003).ToList();
        Assert.True(failOpen.Count >= run.Down.Count, $"{failOpen.Count} logged, {run.Down.Count} calls while down");
        Assert.Equal(LogLevel.Warning, failOpen[0].Level);
        Assert.Matches("^The rate-limit store did not answer for account:alice; request [^ ]+ passes uncounted \\(RateLimits:OnStoreFailure is FailOpen\\)\\.$", failOpen[0].Message);
        Assert.True(Interlocked.Read(ref passedUncounted) >= failOpen.Count, $"metric {passedUncounted}, logged {failOpen.Count}");
        run.Dispose();
    }

    [Fact]
    public async Task The_app_starts_while_Redis_is_unreachable_and_a_counted_call_gets_503_within_the_store_timeout()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var configuration = Configuration(100, 10000);
        configuration["McpGuard:Redis:Configuration"] = $"127.0.0.1:{port}";

        await using var host = await GuardedHost.StartSampleAsync(configuration);
        var watch = Stopwatch.StartNew();
        using var response = await host.PostMcpAsync(AuthResponses.Echo(id: 7));

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.ServiceUnavailable, -31203, "Rate limiter unavailable: retry after 1 s.", "limiter_unavailable", 7L,
            extraData: new JsonObject { ["retry_after"] = 1 });
        Assert.Equal("1", RateLimitWire.Header(response, "Retry-After"));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"took {watch.Elapsed} with a 0.5 s StoreTimeout");
    }

    /// <summary>
    /// Four clients call without pause while Redis is up, stopped and restarted: the calls that started after Redis had
    /// exited and ended before it was started again are <see cref="Run.Down"/>; those that started once it answered again, <see cref="Run.After"/>.
    /// </summary>
    private async Task<Run> RunThroughRestartAsync(GuardedHost host)
    {
        var calls = new ConcurrentQueue<Call>();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(40));
        var nextId = 0;
        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var id = Interlocked.Increment(ref nextId);
                var started = clock.Elapsed;
                var response = await host.PostMcpAsync(AuthResponses.Echo(id: id));
                await response.Content.LoadIntoBufferAsync();
                calls.Enqueue(new Call(id, started, clock.Elapsed, response));
                await Task.Delay(5);
            }
        })).ToArray();

        try
        {
            await WaitUntilAsync(() => calls.Count(c => c.Response.StatusCode == HttpStatusCode.OK) >= 10, "calls pass while Redis is up");
            await redis.StopAsync();
            var down = clock.Elapsed;
            await WaitUntilAsync(() => calls.Count(c => c.Started >= down) >= 12, "calls are made while Redis is down");
            var restarting = clock.Elapsed;
            await redis.StartAsync();
            var up = clock.Elapsed;
            // Counted again, not merely passing: with FailOpen, calls also pass while the client is still reconnecting.
            await WaitUntilAsync(
                () => calls.Count(c => c.Started >= up && c.Response.StatusCode == HttpStatusCode.OK && c.Response.Headers.Contains("RateLimit")) >= 10,
                "calls pass counted again after Redis restarted");
            stop.Cancel();
            await Task.WhenAll(workers);
            var all = calls.ToList();
            output.WriteLine($"{all.Count} calls; Redis down {down.TotalSeconds:0.00} s to {restarting.TotalSeconds:0.00} s, answering again at {up.TotalSeconds:0.00} s");
            return new Run(all, [.. all.Where(c => c.Started >= down && c.Ended <= restarting)], [.. all.Where(c => c.Started >= up)]);
        }
        finally
        {
            stop.Cancel();
            await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(10));
            await redis.StartAsync();
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(15), $"timed out waiting until {what}");
            await Task.Delay(20);
        }
    }

    /// <summary>The whole seconds a reset can show between two readings of Redis's clock (rounded up, as the header rounds).</summary>
    private static HashSet<long> Resets(DateTimeOffset before, DateTimeOffset after, TimeSpan window)
    {
        static long Reset(DateTimeOffset at, TimeSpan window) =>
            (long)Math.Ceiling(TimeSpan.FromTicks(window.Ticks - ((at.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) % window.Ticks)).TotalSeconds);

        var (from, to) = (Reset(after, window), Reset(before, window));
        return [.. Enumerable.Range(0, (int)(to - from + 1)).Select(i => from + i)];
    }

    private static RateLimitState State(HttpResponseMessage response)
    {
        var header = RateLimitWire.Header(response, "RateLimit") ?? throw new Xunit.Sdk.XunitException($"no RateLimit header on {(int)response.StatusCode}");
        var match = StateFormat().Match(header);
        Assert.True(match.Success, header);
        long At(int group) => long.Parse(match.Groups[group].Value, CultureInfo.InvariantCulture);
        return new RateLimitState(At(1), At(2), At(3), At(4));
    }

    [GeneratedRegex("^\"default-1m\";r=(\\d+);t=(\\d+), \"default-1d\";r=(\\d+);t=(\\d+)$")]
    private static partial Regex StateFormat();

    private readonly record struct RateLimitState(long Minute, long MinuteReset, long Day, long DayReset);

    private sealed record Call(int Id, TimeSpan Started, TimeSpan Ended, HttpResponseMessage Response);

    private sealed record Run(List<Call> All, List<Call> Down, List<Call> After) : IDisposable
    {
        public void Dispose()
        {
            foreach (var call in All)
            {
                call.Response.Dispose();
            }
        }
    }
}
