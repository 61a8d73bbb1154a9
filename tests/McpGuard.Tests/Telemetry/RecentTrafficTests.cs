using McpGuard.Telemetry;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Telemetry;

/// <summary><see cref="RecentTraffic"/>: this instance's requests per minute for a day, bucketed for the admin API's traffic view.</summary>
public sealed class RecentTrafficTests
{
    private static readonly DateTimeOffset Noon = new(2026, 12, 4, 12, 0, 30, TimeSpan.Zero);

    [Fact]
    public void Counts_land_in_the_bucket_of_their_minute_and_the_last_bucket_ends_with_the_current_minute()
    {
        var clock = new FakeTimeProvider(Noon);
        var traffic = new RecentTraffic(clock);
        traffic.Record("tools/call", "add", RecentTraffic.Passed);
        clock.Advance(TimeSpan.FromMinutes(7));
        traffic.Record("tools/call", "add", RecentTraffic.Passed);
        traffic.Record("tools/call", "add", "rate_limited");
        traffic.Record("tools/list", null, RecentTraffic.Passed);

        var snapshot = traffic.Snapshot(TimeSpan.FromHours(1), TimeSpan.FromMinutes(5));

        Assert.Equal(12, snapshot.Buckets.Count);
        // The window is the 60 minutes ending with 12:07: 11:08 … 12:07, in buckets of 5 minutes from 11:08.
        Assert.Equal(new DateTimeOffset(2026, 12, 4, 11, 8, 0, TimeSpan.Zero), snapshot.Buckets[0].Start);
        Assert.Equal(new DateTimeOffset(2026, 12, 4, 12, 3, 0, TimeSpan.Zero), snapshot.Buckets[^1].Start);
        Assert.Equal([(0L, 0L), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (1, 0), (2, 1)],
            snapshot.Buckets.Select(b => (b.Passed, b.Refused)));
        Assert.Equal(
            [
                (new TrafficKey("tools/call", "add", "passed"), 2L),
                (new TrafficKey("tools/call", "add", "rate_limited"), 1L),
                (new TrafficKey("tools/list", null, "passed"), 1L),
            ],
            snapshot.Totals.Select(t => (t.Key, t.Value)).OrderBy(t => t.Key.Method, StringComparer.Ordinal).ThenBy(t => t.Key.Outcome, StringComparer.Ordinal));
    }

    [Fact]
    public void A_minute_a_day_old_is_forgotten_when_its_slot_comes_round_again()
    {
        var clock = new FakeTimeProvider(Noon);
        var traffic = new RecentTraffic(clock);
        traffic.Record("tools/call", "add", RecentTraffic.Passed);
        traffic.Record("tools/call", "add", RecentTraffic.Passed);

        clock.Advance(TimeSpan.FromDays(1));
        traffic.Record("tools/call", "add", "out_of_credit");
        var day = traffic.Snapshot(TimeSpan.FromDays(1), TimeSpan.FromHours(1));

        Assert.Equal(24, day.Buckets.Count);
        Assert.Equal(0, day.Buckets.Sum(b => b.Passed));
        Assert.Equal(1, day.Buckets[^1].Refused);
        Assert.Equal([new TrafficKey("tools/call", "add", "out_of_credit")], day.Totals.Keys);
    }

    [Fact]
    public async Task Counts_from_many_threads_at_once_are_all_kept()
    {
        var clock = new FakeTimeProvider(Noon);
        var traffic = new RecentTraffic(clock);

        await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < 20_000; i++)
            {
                traffic.Record("tools/call", (i % 3) switch { 0 => "add", 1 => "echo", _ => null }, i % 5 == 0 ? "rate_limited" : RecentTraffic.Passed);
            }
        })));

        var snapshot = traffic.Snapshot(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1));
        Assert.Equal(8 * 16_000, Assert.Single(snapshot.Buckets).Passed);
        Assert.Equal(8 * 4_000, snapshot.Buckets[0].Refused);
        Assert.Equal(8 * 20_000, snapshot.Totals.Values.Sum());
    }

    [Fact]
    public async Task Threads_that_start_the_same_new_minute_at_once_keep_every_count()
    {
        // Each thread walks through 300 minutes on its own clock, so at every minute several threads race to start its slot.
        var traffic = new RecentTraffic(new ThreadClock());

        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Factory.StartNew(() =>
        {
            for (var minute = 0; minute < 300; minute++)
            {
                ThreadClock.Now = Noon.AddMinutes(minute);
                for (var i = 0; i < 50; i++)
                {
                    traffic.Record("tools/call", "add", RecentTraffic.Passed);
                }
            }
        }, TaskCreationOptions.LongRunning)));

        ThreadClock.Now = Noon.AddMinutes(299);
        var snapshot = traffic.Snapshot(TimeSpan.FromMinutes(300), TimeSpan.FromMinutes(1));
        Assert.All(snapshot.Buckets, bucket => Assert.Equal(8 * 50, bucket.Passed));
    }

    /// <summary>A clock each thread sets for itself.</summary>
    private sealed class ThreadClock : TimeProvider
    {
        [ThreadStatic]
        private static DateTimeOffset _now;

        public static DateTimeOffset Now
        {
            get => _now;
            set => _now = value;
        }

        public override DateTimeOffset GetUtcNow() => _now;
    }

    [Theory]
    [InlineData(60, 7)]
    [InlineData(60, 0)]
    [InlineData(1441, 1)]
    [InlineData(5, 10)]
    public void A_bucket_that_does_not_divide_a_window_of_at_most_a_day_is_refused(int windowMinutes, int bucketMinutes)
    {
        var traffic = new RecentTraffic(new FakeTimeProvider(Noon));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => traffic.Snapshot(TimeSpan.FromMinutes(windowMinutes), TimeSpan.FromMinutes(bucketMinutes)));

        Assert.StartsWith("The bucket must be a whole number of minutes that divides a window of at most a day.", error.Message, StringComparison.Ordinal);
    }
}
