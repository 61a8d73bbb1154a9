using System.Threading.RateLimiting;
using McpGuard.RateLimiting;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.RateLimiting;

/// <summary>
/// The leaf limiter on McpGuard's clock, driven by a <see cref="FakeTimeProvider"/>: windows aligned to the
/// clock, the exact retry-after of every algorithm, statistics, idleness and zero-permit probes.
/// </summary>
public sealed class ClockedRateLimiterTests
{
    private static readonly DateTimeOffset HalfPastTen = new(2026, 11, 21, 10, 0, 30, TimeSpan.Zero);

    // ---- Fixed window ----

    [Fact]
    public void A_fixed_window_grants_its_permits_then_refuses_until_the_next_minute()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        using var limiter = Limiter(Fixed(5, TimeSpan.FromMinutes(1)), clock);

        for (var i = 0; i < 5; i++)
        {
            using var granted = limiter.AttemptAcquire();
            Assert.True(granted.IsAcquired, $"permit {i + 1}");
            Assert.False(granted.TryGetMetadata(MetadataName.RetryAfter, out _));
        }

        using var refused = limiter.AttemptAcquire();

        Assert.False(refused.IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(30), RetryAfter(refused));
        Assert.Equal([MetadataName.RetryAfter.Name], refused.MetadataNames);
        AssertStatistics(limiter, available: 0, successful: 5, failed: 1);
    }

    [Fact]
    public void A_fixed_window_retry_after_is_the_exact_time_left_in_the_window()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        using var limiter = Limiter(Fixed(1, TimeSpan.FromMinutes(1)), clock);
        Assert.True(limiter.AttemptAcquire().IsAcquired);

        clock.Advance(new TimeSpan(0, 0, 0, 29, 900)); // 10:00:59.9

        Assert.Equal(TimeSpan.FromMilliseconds(100), RetryAfter(limiter.AttemptAcquire()));
        clock.Advance(TimeSpan.FromTicks(999_999));
        Assert.Equal(TimeSpan.FromTicks(1), RetryAfter(limiter.AttemptAcquire()));
    }

    [Fact]
    public void A_fixed_window_resets_on_the_minute_boundary_not_a_minute_after_its_first_call()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        using var limiter = Limiter(Fixed(2, TimeSpan.FromMinutes(1)), clock);
        Assert.True(limiter.AttemptAcquire(2).IsAcquired);

        clock.Advance(TimeSpan.FromSeconds(30) - TimeSpan.FromTicks(1)); // 10:00:59.9999999
        Assert.False(limiter.AttemptAcquire().IsAcquired);
        AssertStatistics(limiter, available: 0, successful: 1, failed: 1);

        clock.Advance(TimeSpan.FromTicks(1)); // 10:01:00
        AssertStatistics(limiter, available: 2, successful: 1, failed: 1);
        Assert.True(limiter.AttemptAcquire().IsAcquired);
        Assert.True(limiter.AttemptAcquire().IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(60), RetryAfter(limiter.AttemptAcquire()));
    }

    [Fact]
    public void A_fixed_window_refuses_a_request_for_more_permits_than_are_left_without_spending_any()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        using var limiter = Limiter(Fixed(5, TimeSpan.FromMinutes(1)), clock);
        Assert.True(limiter.AttemptAcquire(3).IsAcquired);

        using var refused = limiter.AttemptAcquire(3);

        Assert.False(refused.IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(30), RetryAfter(refused));
        AssertStatistics(limiter, available: 2, successful: 1, failed: 1);
        Assert.True(limiter.AttemptAcquire(2).IsAcquired);
    }

    [Fact]
    public void A_per_day_window_resets_at_midnight_utc_and_its_retry_after_at_23_59_30_is_30_seconds()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 21, 23, 59, 30, TimeSpan.Zero));
        using var limiter = Limiter(Fixed(3, TimeSpan.FromDays(1)), clock);
        Assert.True(limiter.AttemptAcquire(3).IsAcquired);

        Assert.Equal(TimeSpan.FromSeconds(30), RetryAfter(limiter.AttemptAcquire()));

        clock.Advance(TimeSpan.FromSeconds(30)); // 2026-11-22T00:00:00Z
        AssertStatistics(limiter, available: 3, successful: 1, failed: 1);
        Assert.True(limiter.AttemptAcquire(3).IsAcquired);
        Assert.Equal(TimeSpan.FromDays(1), RetryAfter(limiter.AttemptAcquire()));
    }

    [Fact]
    public void A_per_day_window_aligns_to_utc_midnight_whatever_the_clocks_offset()
    {
        // 01:00 in UTC+02:00 is 23:00 UTC the day before: the window resets an hour later, at 00:00 UTC.
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 1, 0, 0, TimeSpan.FromHours(2)));
        using var limiter = Limiter(Fixed(1, TimeSpan.FromDays(1)), clock);
        Assert.True(limiter.AttemptAcquire().IsAcquired);

        Assert.Equal(TimeSpan.FromHours(1), RetryAfter(limiter.AttemptAcquire()));
    }

    // ---- Sliding window ----

    [Fact]
    public void A_sliding_window_frees_permits_segment_by_segment_with_the_exact_retry_after()
    {
        // 6 permits per 60 s in 6 segments of 10 s: a permit used in 10:00:00–10:00:10 slides out at 10:01:00.
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 21, 10, 0, 5, TimeSpan.Zero));
        using var limiter = Limiter(Sliding(6, TimeSpan.FromMinutes(1), 6), clock);
        Assert.True(limiter.AttemptAcquire(2).IsAcquired);  // segment 10:00:00
        clock.Advance(TimeSpan.FromSeconds(10));
        Assert.True(limiter.AttemptAcquire(1).IsAcquired);  // segment 10:00:10
        clock.Advance(TimeSpan.FromSeconds(10));
        Assert.True(limiter.AttemptAcquire(3).IsAcquired);  // segment 10:00:20, now 10:00:25
        AssertStatistics(limiter, available: 0, successful: 3, failed: 0);

        Assert.Equal(TimeSpan.FromSeconds(35), RetryAfter(limiter.AttemptAcquire(1))); // the first segment leaves at 10:01:00
        Assert.Equal(TimeSpan.FromSeconds(35), RetryAfter(limiter.AttemptAcquire(2)));
        Assert.Equal(TimeSpan.FromSeconds(45), RetryAfter(limiter.AttemptAcquire(3))); // and the second at 10:01:10
        Assert.Equal(TimeSpan.FromSeconds(55), RetryAfter(limiter.AttemptAcquire(4))); // and the third at 10:01:20
        Assert.Equal(TimeSpan.FromSeconds(55), RetryAfter(limiter.AttemptAcquire(6)));

        clock.Advance(TimeSpan.FromSeconds(35) - TimeSpan.FromTicks(1)); // 10:00:59.9999999
        AssertStatistics(limiter, available: 0, successful: 3, failed: 5);
        Assert.Equal(TimeSpan.FromTicks(1), RetryAfter(limiter.AttemptAcquire()));

        clock.Advance(TimeSpan.FromTicks(1)); // 10:01:00
        AssertStatistics(limiter, available: 2, successful: 3, failed: 6);
        clock.Advance(TimeSpan.FromSeconds(10)); // 10:01:10
        AssertStatistics(limiter, available: 3, successful: 3, failed: 6);
        clock.Advance(TimeSpan.FromSeconds(10)); // 10:01:20
        AssertStatistics(limiter, available: 6, successful: 3, failed: 6);
    }

    [Fact]
    public void A_sliding_window_counts_permits_used_in_the_current_segment_until_the_whole_window_has_passed()
    {
        var clock = new FakeTimeProvider(HalfPastTen); // segment 10:00:30–10:00:40
        using var limiter = Limiter(Sliding(6, TimeSpan.FromMinutes(1), 6), clock);
        Assert.True(limiter.AttemptAcquire(6).IsAcquired);

        Assert.Equal(TimeSpan.FromSeconds(60), RetryAfter(limiter.AttemptAcquire()));
        clock.Advance(TimeSpan.FromSeconds(50)); // 10:01:20, the last segment before it slides out
        Assert.Equal(TimeSpan.FromSeconds(10), RetryAfter(limiter.AttemptAcquire()));
        clock.Advance(TimeSpan.FromSeconds(10));
        Assert.True(limiter.AttemptAcquire(6).IsAcquired);
    }

    [Fact]
    public void A_sliding_window_forgets_everything_after_a_pause_longer_than_the_window()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        using var limiter = Limiter(Sliding(6, TimeSpan.FromMinutes(1), 6), clock);
        Assert.True(limiter.AttemptAcquire(3).IsAcquired);
        clock.Advance(TimeSpan.FromSeconds(20));
        Assert.True(limiter.AttemptAcquire(3).IsAcquired);

        clock.Advance(TimeSpan.FromMinutes(7) + TimeSpan.FromSeconds(3));

        AssertStatistics(limiter, available: 6, successful: 2, failed: 0);
        Assert.True(limiter.AttemptAcquire(6).IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(57), RetryAfter(limiter.AttemptAcquire())); // now 10:07:53; used in 10:07:50–10:08:00
    }

    // ---- Token bucket ----

    [Fact]
    public void A_token_bucket_refills_evenly_with_the_exact_retry_after()
    {
        // 6 tokens per 60 s: one every 10 s.
        var clock = new FakeTimeProvider(HalfPastTen);
        using var limiter = Limiter(Bucket(6, TimeSpan.FromMinutes(1)), clock);
        Assert.True(limiter.AttemptAcquire(6).IsAcquired);

        Assert.Equal(TimeSpan.FromSeconds(10), RetryAfter(limiter.AttemptAcquire()));
        Assert.Equal(TimeSpan.FromSeconds(30), RetryAfter(limiter.AttemptAcquire(3)));

        clock.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(TimeSpan.FromSeconds(6), RetryAfter(limiter.AttemptAcquire()));
        AssertStatistics(limiter, available: 0, successful: 1, failed: 3);

        clock.Advance(TimeSpan.FromSeconds(6)); // 10 s after the bucket emptied: one token
        AssertStatistics(limiter, available: 1, successful: 1, failed: 3);
        Assert.True(limiter.AttemptAcquire().IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(10), RetryAfter(limiter.AttemptAcquire()));

        clock.Advance(TimeSpan.FromSeconds(25)); // two and a half tokens
        AssertStatistics(limiter, available: 2, successful: 2, failed: 4);
        Assert.Equal(TimeSpan.FromSeconds(5), RetryAfter(limiter.AttemptAcquire(3)));
        Assert.True(limiter.AttemptAcquire(2).IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(5), RetryAfter(limiter.AttemptAcquire())); // half a token left
    }

    [Fact]
    public void A_token_bucket_never_holds_more_than_its_permits()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        using var limiter = Limiter(Bucket(6, TimeSpan.FromMinutes(1)), clock);
        Assert.True(limiter.AttemptAcquire(1).IsAcquired);

        clock.Advance(TimeSpan.FromHours(3));

        AssertStatistics(limiter, available: 6, successful: 1, failed: 0);
        Assert.True(limiter.AttemptAcquire(6).IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(10), RetryAfter(limiter.AttemptAcquire()));
    }

    [Theory]
    [InlineData(6, 60, new[] { 3, 4 })]
    [InlineData(6, 60, new[] { 1, 2, 3 })]
    [InlineData(10, 60, new[] { 1, 1, 1, 1, 1 })]
    [InlineData(12, 60, new[] { 3, 1 })]
    [InlineData(4, 1, new[] { 0, 0, 0 })]
    public void A_token_bucket_grants_a_token_the_moment_it_has_refilled_however_the_clock_got_there(int permits, int windowSeconds, int[] secondSteps)
    {
        // The time one token takes, reached in uneven steps: floating-point drift must not hold the token back.
        var clock = new FakeTimeProvider(HalfPastTen);
        var window = TimeSpan.FromSeconds(windowSeconds);
        using var limiter = Limiter(Bucket(permits, window), clock);
        Assert.True(limiter.AttemptAcquire(permits).IsAcquired);
        var perToken = TimeSpan.FromTicks(window.Ticks / permits);
        Assert.Equal(window.Ticks, perToken.Ticks * permits); // the cases divide evenly
        var elapsed = TimeSpan.Zero;
        foreach (var step in secondSteps)
        {
            var by = step == 0 ? TimeSpan.FromTicks(perToken.Ticks / 3) : TimeSpan.FromSeconds(step);
            clock.Advance(by);
            elapsed += by;
            Assert.True(elapsed < perToken);
            Assert.False(limiter.AttemptAcquire(0).IsAcquired, $"a token after only {elapsed}");
        }

        clock.Advance(perToken - elapsed);

        using var lease = limiter.AttemptAcquire();
        Assert.True(lease.IsAcquired, $"no token {perToken} after the bucket emptied");
    }

    // ---- Statistics, idleness, zero-permit probes ----

    [Theory]
    [InlineData(McpGuardRateLimitAlgorithm.FixedWindow)]
    [InlineData(McpGuardRateLimitAlgorithm.SlidingWindow)]
    [InlineData(McpGuardRateLimitAlgorithm.TokenBucket)]
    public void Idle_duration_is_null_while_permits_are_in_use_and_counts_from_the_last_grant_once_all_are_back(McpGuardRateLimitAlgorithm algorithm)
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        using var limiter = Limiter(new McpGuardRateLimiterWindow("p", "p-1m", algorithm, 6, TimeSpan.FromMinutes(1), 6), clock);
        clock.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(TimeSpan.FromSeconds(3), limiter.IdleDuration); // new: full, idle since it was made

        Assert.True(limiter.AttemptAcquire().IsAcquired); // at 10:00:33
        Assert.Null(limiter.IdleDuration);
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Null(limiter.IdleDuration);

        clock.Advance(TimeSpan.FromSeconds(85)); // 10:02:03: every algorithm has its permit back
        Assert.Equal(TimeSpan.FromSeconds(90), limiter.IdleDuration); // 10:02:03 - 10:00:33
        AssertStatistics(limiter, available: 6, successful: 1, failed: 0);
    }

    [Theory]
    [InlineData(McpGuardRateLimitAlgorithm.FixedWindow, 30)]
    [InlineData(McpGuardRateLimitAlgorithm.SlidingWindow, 60)]
    [InlineData(McpGuardRateLimitAlgorithm.TokenBucket, 10)]
    public void Acquiring_zero_permits_reports_availability_without_spending(McpGuardRateLimitAlgorithm algorithm, int retryAfterSeconds)
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        using var limiter = Limiter(new McpGuardRateLimiterWindow("p", "p-1m", algorithm, 6, TimeSpan.FromMinutes(1), 6), clock);

        using (var probe = limiter.AttemptAcquire(0))
        {
            Assert.True(probe.IsAcquired);
        }

        Assert.Equal(6, limiter.GetStatistics()!.CurrentAvailablePermits);
        Assert.True(limiter.AttemptAcquire(6).IsAcquired);

        using var empty = limiter.AttemptAcquire(0);
        Assert.False(empty.IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(retryAfterSeconds), RetryAfter(empty));
        Assert.Equal(0, limiter.GetStatistics()!.CurrentAvailablePermits);
    }

    [Fact]
    public async Task Acquire_async_answers_at_once_without_queueing()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        using var limiter = Limiter(Fixed(1, TimeSpan.FromMinutes(1)), clock);

        var first = limiter.AcquireAsync();
        var second = limiter.AcquireAsync();

        Assert.True(first.IsCompletedSuccessfully);
        Assert.True(second.IsCompletedSuccessfully);
        Assert.True((await first).IsAcquired);
        var refused = await second;
        Assert.False(refused.IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(30), RetryAfter(refused));
        Assert.Equal(0, limiter.GetStatistics()!.CurrentQueuedCount);
    }

    [Fact]
    public void A_negative_permit_count_is_rejected()
    {
        using var limiter = Limiter(Fixed(1, TimeSpan.FromMinutes(1)), new FakeTimeProvider(HalfPastTen));

        Assert.Throws<ArgumentOutOfRangeException>(() => limiter.AttemptAcquire(-1));
    }

    [Fact]
    public void The_provider_makes_independent_limiters_on_its_clock()
    {
        var clock = new FakeTimeProvider(HalfPastTen);
        var provider = new LocalRateLimiterProvider(clock);
        var window = Fixed(1, TimeSpan.FromMinutes(1));
        using var alice = provider.Create("account:alice", window);
        using var bob = provider.Create("account:bob", window);

        Assert.True(alice.AttemptAcquire().IsAcquired);
        Assert.True(bob.AttemptAcquire().IsAcquired);
        Assert.Equal(TimeSpan.FromSeconds(30), RetryAfter(alice.AttemptAcquire()));
        clock.Advance(TimeSpan.FromSeconds(30));
        Assert.True(alice.AttemptAcquire().IsAcquired);
    }

    // ---- The clock-only reset time (RateLimit header's t) ----

    [Theory]
    [InlineData(McpGuardRateLimitAlgorithm.FixedWindow, 60, 1, "10:00:30", 30_000)]
    [InlineData(McpGuardRateLimitAlgorithm.FixedWindow, 60, 1, "10:00:59.9", 100)]
    [InlineData(McpGuardRateLimitAlgorithm.FixedWindow, 60, 1, "10:01:00", 60_000)]
    [InlineData(McpGuardRateLimitAlgorithm.FixedWindow, 86400, 1, "10:00:30", 50_370_000)]
    [InlineData(McpGuardRateLimitAlgorithm.SlidingWindow, 60, 6, "10:00:34", 6_000)]
    [InlineData(McpGuardRateLimitAlgorithm.TokenBucket, 60, 4, "10:00:34", 11_000)]
    public void Time_to_reset_is_the_time_to_the_next_step_of_the_window(McpGuardRateLimitAlgorithm algorithm, int windowSeconds, int permitsOrSegments, string at, long expectedMilliseconds)
    {
        var window = new McpGuardRateLimiterWindow("p", "p", algorithm, permitsOrSegments, TimeSpan.FromSeconds(windowSeconds), permitsOrSegments);
        var now = new DateTimeOffset(2026, 11, 21, 0, 0, 0, TimeSpan.Zero) + TimeSpan.Parse(at, System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal(TimeSpan.FromMilliseconds(expectedMilliseconds), ClockedRateLimiter.TimeToReset(window, now));
    }

    // ---- Helpers ----

    private static ClockedRateLimiter Limiter(McpGuardRateLimiterWindow window, TimeProvider clock) => new(window, clock);

    private static McpGuardRateLimiterWindow Fixed(int permits, TimeSpan window) =>
        new("p", RateLimitState.WindowName("p", window), McpGuardRateLimitAlgorithm.FixedWindow, permits, window, 6);

    private static McpGuardRateLimiterWindow Sliding(int permits, TimeSpan window, int segments) =>
        new("p", RateLimitState.WindowName("p", window), McpGuardRateLimitAlgorithm.SlidingWindow, permits, window, segments);

    private static McpGuardRateLimiterWindow Bucket(int permits, TimeSpan window) =>
        new("p", RateLimitState.WindowName("p", window), McpGuardRateLimitAlgorithm.TokenBucket, permits, window, 6);

    /// <summary>The retry-after of a refused lease (disposing it).</summary>
    private static TimeSpan RetryAfter(RateLimitLease lease)
    {
        using (lease)
        {
            Assert.False(lease.IsAcquired, "the lease was granted");
            Assert.True(lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter), "a refused lease carries RetryAfter");
            return retryAfter;
        }
    }

    private static void AssertStatistics(RateLimiter limiter, long available, long successful, long failed)
    {
        var statistics = limiter.GetStatistics()!;
        Assert.Equal(
            (available, successful, failed, 0L),
            (statistics.CurrentAvailablePermits, statistics.TotalSuccessfulLeases, statistics.TotalFailedLeases, statistics.CurrentQueuedCount));
    }
}
