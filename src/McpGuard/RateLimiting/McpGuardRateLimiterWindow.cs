namespace McpGuard;

/// <summary>
/// One window of one policy, as a limiter provider sees it. A provider creates one
/// <see cref="System.Threading.RateLimiting.RateLimiter"/> per (partition, window).
/// </summary>
public sealed class McpGuardRateLimiterWindow
{
    internal McpGuardRateLimiterWindow(string policy, string name, McpGuardRateLimitAlgorithm algorithm, int permits, TimeSpan window, int segments)
    {
        Policy = policy;
        Name = name;
        Algorithm = algorithm;
        Permits = permits;
        Window = window;
        Segments = segments;
    }

    /// <summary>The policy's name.</summary>
    public string Policy { get; }

    /// <summary>The window's name in <c>RateLimit</c> headers, e.g. <c>default-1m</c>.</summary>
    public string Name { get; }

    /// <summary>How it counts.</summary>
    public McpGuardRateLimitAlgorithm Algorithm { get; }

    /// <summary>Calls per window.</summary>
    public int Permits { get; }

    /// <summary>The window's length.</summary>
    public TimeSpan Window { get; }

    /// <summary>Segments of a sliding window.</summary>
    public int Segments { get; }

    /// <summary>What makes two windows the same window: a reload that leaves a window as it was keeps its counters.</summary>
    internal Identity Key => new(Policy, Name, Algorithm, Permits, Window, Segments);

    internal readonly record struct Identity(string Policy, string Name, McpGuardRateLimitAlgorithm Algorithm, int Permits, TimeSpan Window, int Segments);
}

/// <summary>
/// Creates the limiter behind one window for one partition. The default keeps counters in this process;
/// a distributed store (Redis, say) implements this to share counters across servers. Limiters must put
/// <see cref="System.Threading.RateLimiting.MetadataName.RetryAfter"/> on failed leases and report
/// <see cref="System.Threading.RateLimiting.RateLimiterStatistics.CurrentAvailablePermits"/>.
/// </summary>
public interface IMcpGuardRateLimiterProvider
{
    /// <summary>Creates the limiter for <paramref name="window"/> and <paramref name="partition"/> (for example <c>account:alice</c>).</summary>
    System.Threading.RateLimiting.RateLimiter Create(string partition, McpGuardRateLimiterWindow window);
}
