namespace McpGuard;

/// <summary>
/// One window of one policy, as a limiter provider sees it. A provider creates one
/// <see cref="System.Threading.RateLimiting.RateLimiter"/> per (partition, window).
/// </summary>
/// <param name="Policy">The policy's name.</param>
/// <param name="Name">The window's name in <c>RateLimit</c> headers, e.g. <c>default-1m</c>.</param>
/// <param name="Algorithm">How it counts.</param>
/// <param name="Permits">Calls per window.</param>
/// <param name="Window">The window's length.</param>
/// <param name="Segments">Segments of a sliding window.</param>
public sealed record McpGuardRateLimiterWindow(string Policy, string Name, McpGuardRateLimitAlgorithm Algorithm, int Permits, TimeSpan Window, int Segments);

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
