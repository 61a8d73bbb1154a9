namespace McpGuard;

/// <summary>
/// One window of one policy, as a rate-limit store (<see cref="IMcpGuardRateLimitStore"/>) sees it.
/// </summary>
public sealed class McpGuardRateLimiterWindow
{
    internal McpGuardRateLimiterWindow(string policy, string name, McpGuardRateLimitAlgorithm algorithm, int permits, TimeSpan window, int segments, bool perTool = false)
    {
        PerTool = perTool;
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

    /// <summary>Whether each tool has its own permits in this window (the policy's <c>PerTool</c>).</summary>
    public bool PerTool { get; }

    /// <summary>What makes two windows the same window: a reload that leaves a window as it was keeps its counters.</summary>
    internal Identity Key => new(Policy, Name, Algorithm, Permits, Window, Segments, PerTool);

    internal readonly record struct Identity(string Policy, string Name, McpGuardRateLimitAlgorithm Algorithm, int Permits, TimeSpan Window, int Segments, bool PerTool);
}

/// <summary>
/// Creates the in-process limiter behind one window for one partition (tests replace it to watch or race the
/// limiters). Counters shared between servers go through <see cref="IMcpGuardRateLimitStore"/> instead.
/// </summary>
internal interface IMcpGuardRateLimiterProvider
{
    /// <summary>Creates the limiter for <paramref name="window"/> and <paramref name="partition"/> (for example <c>account:alice</c>).</summary>
    System.Threading.RateLimiting.RateLimiter Create(string partition, McpGuardRateLimiterWindow window);
}
