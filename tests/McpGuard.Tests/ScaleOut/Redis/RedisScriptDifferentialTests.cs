using System.Threading.RateLimiting;
using CsCheck;
using McpGuard.RateLimiting;
using McpGuard.Redis;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace McpGuard.Tests.ScaleOut.Redis;

/// <summary>
/// The Lua script against <see cref="ClockedRateLimiter"/> (McpGuard's in-process limiter) on generated chains of windows
/// (all three algorithms, mixed) and generated sequences of calls (time steps from 0 to past a window, spends and reads):
/// after every call both must give the same grant, and per window the same permits left, reset and retry-after, to the tick.
/// The store runs on the test's clock here (its test-only "now"); RedisScaleOutTests shows the production path uses Redis's.
/// </summary>
[Collection(RedisTests.Name)]
public sealed class RedisScriptDifferentialTests(RedisServer redis, ITestOutputHelper output)
{
    private static readonly int[] Seconds = [1, 2, 3, 5, 60];
    private static readonly int[] SegmentChoices = [1, 2, 4, 5, 10, 20];

    private static readonly Gen<McpGuardRateLimiterWindow> WindowGen =
        Gen.Select(Gen.Int[0, 2], Gen.Int[1, 6], Gen.Int[0, Seconds.Length - 1], Gen.Int[0, SegmentChoices.Length - 1], Gen.Bool)
            .Select((algorithm, permits, seconds, segments, perTool) => new McpGuardRateLimiterWindow(
                "p" + algorithm, $"w{algorithm}-{permits}-{Seconds[seconds]}-{SegmentChoices[segments]}", (McpGuardRateLimitAlgorithm)algorithm,
                permits, TimeSpan.FromSeconds(Seconds[seconds]), SegmentChoices[segments], perTool));

    // A step is 0 (same instant) or up to 2.5 s, in whole microseconds (Redis's TIME resolution); sometimes a whole minute.
    private static readonly Gen<(long StepMicros, bool Spend)> StepGen =
        Gen.Select(Gen.Frequency((3, Gen.Const(0L)), (10, Gen.Long[1, 2_500_000]), (1, Gen.Long[55_000_000, 65_000_000])), Gen.Frequency((4, Gen.Const(true)), (1, Gen.Const(false))));

    [Fact]
    public async Task The_script_agrees_with_ClockedRateLimiter_on_every_call_for_all_three_algorithms()
    {
        var store = new RedisRateLimitStore(redis.Configuration, $"diff-{Guid.NewGuid():N}:", TimeSpan.FromSeconds(5));
        await using var _ = store;
        var seed = TestSeeds.Next();
        var cases = 0;
        var calls = 0;
        var refused = 0;
        var gen = Gen.Select(WindowGen.Array[1, 3], StepGen.Array[1, 40], Gen.Long[0, 999_999_999_999L]);
        await gen.SampleAsync(
            async (windows, steps, startMicros) =>
            {
                // Start somewhere in 2026, at any microsecond.
                var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(startMicros * 10);
                var clock = new FakeTimeProvider(start);
                var limiters = windows.Select(w => new ClockedRateLimiter(w, clock)).ToArray();
                var partition = $"account:case-{Interlocked.Increment(ref cases)}";
                for (var s = 0; s < steps.Length; s++)
                {
                    var (step, spend) = steps[s];
                    clock.Advance(TimeSpan.FromTicks(step * 10));
                    var now = clock.GetUtcNow();
                    var expected = Expected(windows, limiters, now, spend);
                    var request = new McpGuardRateLimitRequest(partition, "add", windows, spend);
                    var actual = await store.AcquireAsync(request, (now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10, CancellationToken.None);
                    calls++;
                    refused += expected.Acquired ? 0 : 1;
                    var where = $"call {s + 1} of {steps.Length} at {now:O} (spend: {spend}); windows: {string.Join(", ", windows.Select(w => $"{w.Algorithm} {w.Permits}/{w.Window} ×{w.Segments}"))}";
                    Assert.True(expected.Acquired == actual.Acquired, $"acquired: expected {expected.Acquired}, got {actual.Acquired}; {where}");
                    for (var i = 0; i < windows.Length; i++)
                    {
                        var (available, reset, retry) = expected.Windows[i];
                        var got = actual.Windows[i];
                        Assert.True(available == got.Available && reset == got.Reset && retry == got.RetryAfter,
                            $"window {i}: expected r={available} reset={reset.Ticks} retry={retry.Ticks}, got r={got.Available} reset={got.Reset.Ticks} retry={got.RetryAfter.Ticks}; {where}");
                    }
                }

                foreach (var limiter in limiters)
                {
                    limiter.Dispose();
                }
            },
            seed: seed,
            iter: 250,
            threads: 1);
        var line = $"Redis script vs ClockedRateLimiter: {cases} cases, {calls} calls ({refused} refused), seed {seed}";
        output.WriteLine(line);
        TestReport.Write(line);
        Assert.True(refused > calls / 20, $"the generated calls must often be refused to test retry-after: {refused} of {calls}");
    }

    /// <summary>What ClockedRateLimiter says: read every window, spend one of each only if all have one.</summary>
    private static (bool Acquired, (long Available, TimeSpan Reset, TimeSpan Retry)[] Windows) Expected(
        McpGuardRateLimiterWindow[] windows, ClockedRateLimiter[] limiters, DateTimeOffset now, bool spend)
    {
        var available = limiters.Select(l => l.GetStatistics()!.CurrentAvailablePermits).ToArray();
        var acquired = available.All(a => a >= 1);
        var states = new (long, TimeSpan, TimeSpan)[windows.Length];
        for (var i = 0; i < windows.Length; i++)
        {
            var retry = TimeSpan.Zero;
            if (spend && acquired)
            {
                using var lease = limiters[i].AttemptAcquire(1);
                Assert.True(lease.IsAcquired);
                available[i]--;
            }
            else if (available[i] < 1)
            {
                using var probe = limiters[i].AttemptAcquire(0);
                Assert.True(probe.TryGetMetadata(MetadataName.RetryAfter, out retry));
            }

            states[i] = (available[i], ClockedRateLimiter.TimeToReset(windows[i], now), retry);
        }

        return (acquired, states);
    }
}
