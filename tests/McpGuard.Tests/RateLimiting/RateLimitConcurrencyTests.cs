using System.Net;
using McpGuard.RateLimiting;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.RateLimiting;

/// <summary>
/// Under contention the limits are exact: with the clock frozen, parallel callers get precisely the permits
/// there are, over real HTTP and at the level of one limiter.
/// </summary>
public sealed class RateLimitConcurrencyTests
{
    private static readonly DateTimeOffset HalfPastTen = new(2026, 11, 21, 10, 0, 30, TimeSpan.Zero);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Two_hundred_parallel_tool_calls_against_100_a_minute_get_exactly_100_answers_and_100_refusals()
    {
        await using var app = await CountingApp.StartAsync(new FakeTimeProvider(HalfPastTen), new Dictionary<string, string?>
        {
            ["Guard:RateLimits:DefaultPolicy"] = "burst",
            ["Guard:RateLimits:Policies:burst:Windows:0:Permits"] = "100",
            ["Guard:RateLimits:Policies:burst:Windows:0:Window"] = "00:01:00",
        });
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var calls = Enumerable.Range(1, 200).Select(async id =>
        {
            await start.Task;
            return (Id: id, Response: await app.CallAsync("echo", id));
        }).ToArray();
        start.SetResult();
        var responses = await Task.WhenAll(calls).WaitAsync(Bound);

        try
        {
            Assert.Equal(100, responses.Count(r => r.Response.StatusCode == HttpStatusCode.OK));
            Assert.Equal(100, responses.Count(r => r.Response.StatusCode == HttpStatusCode.TooManyRequests));
            Assert.Equal(100, app.Calls);
            foreach (var (id, response) in responses.Where(r => r.Response.StatusCode == HttpStatusCode.TooManyRequests))
            {
                await RateLimitWire.AssertRateLimitedAsync(response, id, 30, "burst-1m", "\"burst-1m\";q=100;w=60", "\"burst-1m\";r=0;t=30");
            }

            using var after = await app.CallAsync("echo", 201);
            await RateLimitWire.AssertRateLimitedAsync(after, 201, 30, "burst-1m", "\"burst-1m\";q=100;w=60", "\"burst-1m\";r=0;t=30");
            Assert.Equal(100, app.Calls);
        }
        finally
        {
            foreach (var (_, response) in responses)
            {
                response.Dispose();
            }
        }
    }

    [Fact]
    public async Task Parallel_calls_of_a_tool_with_its_own_policy_get_its_permits_and_spend_no_default_permit_when_refused()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        await using var host = await RateLimitWire.StartSampleAsync(clock);
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var calls = Enumerable.Range(1, 100).Select(async id =>
        {
            await start.Task;
            using var response = await RateLimitWire.AddAsync(host, DemoKeys.Bob, id);
            return response.StatusCode;
        }).ToArray();
        start.SetResult();
        var statuses = await Task.WhenAll(calls).WaitAsync(Bound);

        Assert.Equal(30, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(70, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
        using var echo = await host.PostMcpAsync(AuthResponses.Echo(id: 101), apiKey: DemoKeys.Bob);
        await AuthResponses.AssertToolTextAsync(echo, "hello", 101);
        RateLimitWire.AssertHeaders(echo, RateLimitWire.DefaultPolicy, "\"default-1m\";r=89;t=30, \"default-1d\";r=9969;t=50370");
    }

    [Theory]
    [InlineData(McpGuardRateLimitAlgorithm.FixedWindow)]
    [InlineData(McpGuardRateLimitAlgorithm.SlidingWindow)]
    [InlineData(McpGuardRateLimitAlgorithm.TokenBucket)]
    public async Task A_thousand_parallel_acquisitions_on_one_limiter_get_exactly_its_100_permits(McpGuardRateLimitAlgorithm algorithm)
    {
        // Rounds, each on a fresh limiter, with threads that meet at a spinning start line (no blocking wake-up between
        // them) so they really contend: otherwise one thread can take all 100 permits before another is running.
        const int Rounds = 100;
        const int Attempts = 1000;
        var threads = Math.Clamp(Environment.ProcessorCount, 2, 8);
        for (var round = 0; round < Rounds; round++)
        {
            var clock = new FakeTimeProvider(HalfPastTen);
            using var limiter = new ClockedRateLimiter(new McpGuardRateLimiterWindow("p", "p-1m", algorithm, 100, TimeSpan.FromMinutes(1), 6), clock);
            var acquired = 0;
            var refused = 0;
            var ready = 0;

            var workers = Enumerable.Range(0, threads).Select(worker => Task.Factory.StartNew(
                () =>
                {
                    Interlocked.Increment(ref ready);
                    while (Volatile.Read(ref ready) < threads)
                    {
                        Thread.SpinWait(1);
                    }

                    for (var i = worker; i < Attempts; i += threads)
                    {
                        using var lease = limiter.AttemptAcquire();
                        Interlocked.Increment(ref lease.IsAcquired ? ref acquired : ref refused);
                    }
                },
                CancellationToken.None,
                TaskCreationOptions.LongRunning,
                TaskScheduler.Default)).ToArray();
            await Task.WhenAll(workers).WaitAsync(Bound);

            Assert.True(acquired == 100, $"round {round}: {acquired} acquired");
            Assert.Equal(Attempts - 100, refused);
            var statistics = limiter.GetStatistics()!;
            Assert.Equal((0L, 100L, 900L), (statistics.CurrentAvailablePermits, statistics.TotalSuccessfulLeases, statistics.TotalFailedLeases));
        }
    }
}
