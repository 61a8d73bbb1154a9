using System.Threading.RateLimiting;

namespace McpGuard.RateLimiting;

/// <summary>
/// A <see cref="RateLimiter"/> for one window of one partition that reads time from a <see cref="TimeProvider"/>.
/// The runtime's own window limiters time themselves with <c>Stopwatch</c> (dotnet/runtime#106447), so no
/// test clock can drive them, and their fixed-window retry-after is the window length rather than the time
/// left (dotnet/runtime#92557); McpGuard needs both right. Partitioning and chaining stay the runtime's
/// (<see cref="PartitionedRateLimiter"/>). Windows align to the clock: a per-day window resets at 00:00 UTC.
/// No queueing: a call that does not fit is refused at once with the exact time until it would fit.
/// </summary>
internal sealed class ClockedRateLimiter : RateLimiter
{
    private static readonly RateLimitLease Granted = new Lease(true, null);

    private readonly McpGuardRateLimiterWindow _window;
    private readonly TimeProvider _clock;
    private readonly long _windowTicks;
    private readonly long _segmentTicks;
    private readonly long[] _segments; // sliding window: permits used per segment, ring indexed by segment number
    private readonly Lock _lock = new();
    private long _segmentNumber;       // fixed/sliding: the current (segment) window number since the Unix epoch
    private long _used;                // fixed: permits used in the current window
    private Int128 _level;             // token bucket: tokens available × window ticks (exact; a double drifts below whole tokens)
    private long _lastTicks;           // token bucket: when tokens were last added
    private long _lastActivity;        // when a permit was last granted
    private long _successful;
    private long _failed;

    public ClockedRateLimiter(McpGuardRateLimiterWindow window, TimeProvider clock)
    {
        _window = window;
        _clock = clock;
        _windowTicks = window.Window.Ticks;
        _segmentTicks = window.Algorithm == McpGuardRateLimitAlgorithm.SlidingWindow ? _windowTicks / window.Segments : _windowTicks;
        _segments = window.Algorithm == McpGuardRateLimitAlgorithm.SlidingWindow ? new long[window.Segments] : [];
        _level = Capacity;
        _lastTicks = _lastActivity = Now();
        _segmentNumber = _lastTicks / _segmentTicks;
    }

    public override TimeSpan? IdleDuration
    {
        get
        {
            lock (_lock)
            {
                var now = Now();
                Advance(now);
                // A limiter with every permit available is as good as a new one, so the partitioned limiter may drop it.
                return Available() >= _window.Permits ? TimeSpan.FromTicks(now - _lastActivity) : null;
            }
        }
    }

    public override RateLimiterStatistics GetStatistics()
    {
        lock (_lock)
        {
            Advance(Now());
            return new RateLimiterStatistics
            {
                CurrentAvailablePermits = Available(),
                CurrentQueuedCount = 0,
                TotalSuccessfulLeases = _successful,
                TotalFailedLeases = _failed,
            };
        }
    }

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(permitCount);
        lock (_lock)
        {
            var now = Now();
            Advance(now);
            if (permitCount == 0)
            {
                return Available() > 0 ? Granted : Refuse(now, 1);
            }

            if (Available() < permitCount)
            {
                return Refuse(now, permitCount);
            }

            switch (_window.Algorithm)
            {
                case McpGuardRateLimitAlgorithm.TokenBucket:
                    _level -= (Int128)permitCount * _windowTicks;
                    break;
                case McpGuardRateLimitAlgorithm.SlidingWindow:
                    _segments[(int)(_segmentNumber % _segments.Length)] += permitCount;
                    break;
                default:
                    _used += permitCount;
                    break;
            }

            _successful++;
            _lastActivity = now;
            return Granted;
        }
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AttemptAcquireCore(permitCount));

    /// <summary>Time until the window next frees permits, from the clock alone (for the <c>RateLimit</c> header's <c>t</c>).</summary>
    internal static TimeSpan TimeToReset(McpGuardRateLimiterWindow window, DateTimeOffset now)
    {
        var ticks = now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        var step = window.Algorithm switch
        {
            McpGuardRateLimitAlgorithm.SlidingWindow => window.Window.Ticks / window.Segments,
            McpGuardRateLimitAlgorithm.TokenBucket => window.Window.Ticks / window.Permits,
            _ => window.Window.Ticks,
        };
        return TimeSpan.FromTicks(step - (ticks % step));
    }

    private Int128 Capacity => (Int128)_window.Permits * _windowTicks;

    private long Now() => _clock.GetUtcNow().UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;

    private long Available() => _window.Algorithm switch
    {
        McpGuardRateLimitAlgorithm.TokenBucket => (long)(_level / _windowTicks),
        McpGuardRateLimitAlgorithm.SlidingWindow => _window.Permits - _segments.Sum(),
        _ => _window.Permits - _used,
    };

    private void Advance(long now)
    {
        if (_window.Algorithm == McpGuardRateLimitAlgorithm.TokenBucket)
        {
            if (now > _lastTicks)
            {
                _level = Int128.Min(Capacity, _level + ((Int128)(now - _lastTicks) * _window.Permits));
                _lastTicks = now;
            }

            return;
        }

        var current = now / _segmentTicks;
        if (current <= _segmentNumber)
        {
            return;
        }

        if (_window.Algorithm == McpGuardRateLimitAlgorithm.SlidingWindow)
        {
            // Clear the segments that slid out of the window (all of them after a long pause).
            var passed = Math.Min(current - _segmentNumber, _segments.Length);
            for (var i = 1; i <= passed; i++)
            {
                _segments[(int)((_segmentNumber + i) % _segments.Length)] = 0;
            }
        }
        else
        {
            _used = 0;
        }

        _segmentNumber = current;
    }

    private Lease Refuse(long now, int permitCount)
    {
        _failed++;
        return new Lease(false, TimeSpan.FromTicks(RetryAfterTicks(now, permitCount)));
    }

    /// <summary>Exact time until <paramref name="permitCount"/> permits would be available.</summary>
    private long RetryAfterTicks(long now, int permitCount)
    {
        switch (_window.Algorithm)
        {
            case McpGuardRateLimitAlgorithm.TokenBucket:
                var missing = ((Int128)permitCount * _windowTicks) - _level;
                return (long)((missing + _window.Permits - 1) / _window.Permits);
            case McpGuardRateLimitAlgorithm.SlidingWindow:
                // Walk forward segment by segment until enough used permits have slid out.
                var available = Available();
                var segmentEnd = (_segmentNumber + 1) * _segmentTicks;
                for (var step = 1; step <= _segments.Length; step++)
                {
                    available += _segments[(int)((_segmentNumber + step) % _segments.Length)];
                    if (available >= permitCount)
                    {
                        return segmentEnd + ((step - 1) * _segmentTicks) - now;
                    }
                }

                return segmentEnd + ((_segments.Length - 1) * _segmentTicks) - now;
            default:
                return ((_segmentNumber + 1) * _windowTicks) - now;
        }
    }

    private sealed class Lease(bool acquired, TimeSpan? retryAfter) : RateLimitLease
    {
        public override bool IsAcquired { get; } = acquired;

        public override IEnumerable<string> MetadataNames => retryAfter is null ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (retryAfter is { } value && metadataName == MetadataName.RetryAfter.Name)
            {
                metadata = value;
                return true;
            }

            metadata = null;
            return false;
        }
    }
}

/// <summary>The default provider: counters in this process, on McpGuard's clock.</summary>
internal sealed class LocalRateLimiterProvider(TimeProvider clock) : IMcpGuardRateLimiterProvider
{
    public RateLimiter Create(string partition, McpGuardRateLimiterWindow window) => new ClockedRateLimiter(window, clock);
}
