using System.Collections.Concurrent;

namespace McpGuard.Telemetry;

/// <summary>
/// This instance's guarded requests over the last day, counted per minute by MCP method, tool and outcome (passed, or the
/// refusal's reason), for the admin API's traffic endpoint and the dashboard's charts. Memory is bounded: one slot per
/// minute for a day, and each slot's keys come from bounded sets (the methods McpGuard knows, the tools in
/// configuration, the error catalog's reasons). Counts start when the instance starts and are not shared between
/// instances; the money (charges and refunds) comes from the ledger instead.
/// </summary>
internal sealed class RecentTraffic(TimeProvider time)
{
    /// <summary>The outcome recorded for a request the guard let through to the endpoint.</summary>
    public const string Passed = "passed";

    /// <summary>How far back the counts reach.</summary>
    public static readonly TimeSpan Horizon = TimeSpan.FromDays(1);

    private const int Slots = 24 * 60;

    // One slot per minute of the day, replaced whole when its minute comes round again. Counting takes no lock: requests on
    // every core count in the same minute's slot at once.
    private readonly Slot?[] _slots = new Slot?[Slots];

    /// <summary>Counts one request in the current minute.</summary>
    /// <param name="method">The MCP method, already bounded (<see cref="TelemetryNames.Method"/>).</param>
    /// <param name="tool">The tool, already bounded (<see cref="TelemetryNames.Tool"/>); null when the request is no tool call.</param>
    /// <param name="outcome"><see cref="Passed"/>, or the reason the guard refused the request.</param>
    public void Record(string method, string? tool, string outcome)
    {
        var minute = time.GetUtcNow().ToUnixTimeSeconds() / 60;
        ref var entry = ref _slots[minute % Slots];
        var slot = Volatile.Read(ref entry);
        while (slot is null || slot.Minute < minute)
        {
            // The slot holds a day-old minute (or none): start this minute's. If another request started it first, use theirs.
            var fresh = new Slot(minute);
            var seen = Interlocked.CompareExchange(ref entry, fresh, slot);
            slot = ReferenceEquals(seen, slot) ? fresh : seen;
        }

        if (slot.Minute != minute)
        {
            // The clock went back a day or more: nothing to count into.
            return;
        }

        var counter = slot.Counts.GetOrAdd(new TrafficKey(method, tool, outcome), static _ => new Counter());
        Interlocked.Increment(ref counter.Value);
    }

    /// <summary>
    /// The counts of the last <paramref name="window"/> (at most a day), in buckets of <paramref name="bucket"/> (a whole
    /// number of minutes that divides the window), oldest first; the last bucket ends with the current minute.
    /// </summary>
    public TrafficSnapshot Snapshot(TimeSpan window, TimeSpan bucket)
    {
        var bucketMinutes = (long)bucket.TotalMinutes;
        var windowMinutes = (long)window.TotalMinutes;
        if (bucketMinutes < 1 || windowMinutes < bucketMinutes || windowMinutes > Slots || windowMinutes % bucketMinutes != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(bucket), "The bucket must be a whole number of minutes that divides a window of at most a day.");
        }

        var now = time.GetUtcNow().ToUnixTimeSeconds() / 60;
        var first = now - windowMinutes + 1;
        var buckets = new TrafficBucket[windowMinutes / bucketMinutes];
        for (var i = 0; i < buckets.Length; i++)
        {
            buckets[i] = new TrafficBucket(DateTimeOffset.FromUnixTimeSeconds((first + (i * bucketMinutes)) * 60));
        }

        var totals = new Dictionary<TrafficKey, long>();
        for (var minute = first; minute <= now; minute++)
        {
            if (Volatile.Read(ref _slots[minute % Slots]) is not { } slot || slot.Minute != minute)
            {
                continue;
            }

            var bucketOf = buckets[(minute - first) / bucketMinutes];
            foreach (var (key, counter) in slot.Counts)
            {
                var count = Volatile.Read(ref counter.Value);
                totals[key] = totals.GetValueOrDefault(key) + count;
                if (key.Outcome == Passed)
                {
                    bucketOf.Passed += count;
                }
                else
                {
                    bucketOf.Refused += count;
                }
            }
        }

        return new TrafficSnapshot(buckets, totals);
    }

    private sealed class Slot(long minute)
    {
        public long Minute { get; } = minute;

        public ConcurrentDictionary<TrafficKey, Counter> Counts { get; } = new();
    }

    private sealed class Counter
    {
        public long Value;
    }
}

/// <summary>What one count in <see cref="RecentTraffic"/> is about.</summary>
internal readonly record struct TrafficKey(string Method, string? Tool, string Outcome);

/// <summary>The requests passed and refused in one bucket of time, starting at <see cref="Start"/>.</summary>
internal sealed class TrafficBucket(DateTimeOffset start)
{
    public DateTimeOffset Start { get; } = start;

    public long Passed { get; set; }

    public long Refused { get; set; }
}

/// <summary>A window of <see cref="RecentTraffic"/>: the buckets, and the window's totals by method, tool and outcome.</summary>
internal sealed record TrafficSnapshot(IReadOnlyList<TrafficBucket> Buckets, IReadOnlyDictionary<TrafficKey, long> Totals);
