namespace McpGuard;

/// <summary>
/// Keeps rate-limit counters somewhere every server instance shares (McpGuard.Redis implements it on Redis). Without
/// one, each process counts on its own. A store checks every window of a call and, when each has a permit, spends one
/// from each: all in one atomic step, on one clock shared by every instance (never the instances' own clocks), so that
/// instances with skewed clocks still enforce one window. McpGuard calls it once per counted call, within
/// <c>McpGuard:StoreTimeout</c>; when it throws or times out, <c>McpGuard:RateLimits:OnStoreFailure</c> decides.
/// </summary>
public interface IMcpGuardRateLimitStore
{
    /// <summary>
    /// Checks the windows of <paramref name="request"/> and, when <see cref="McpGuardRateLimitRequest.Spend"/> is set and
    /// every window has a permit, spends one permit of each. A call refused by one window spends nothing in any.
    /// </summary>
    ValueTask<McpGuardRateLimitResult> AcquireAsync(McpGuardRateLimitRequest request, CancellationToken cancellationToken);
}

/// <summary>One call's windows, as a rate-limit store sees them.</summary>
public sealed class McpGuardRateLimitRequest
{
    internal McpGuardRateLimitRequest(string partition, string? tool, IReadOnlyList<McpGuardRateLimiterWindow> windows, bool spend)
    {
        Partition = partition;
        Tool = tool;
        Windows = windows;
        Spend = spend;
    }

    /// <summary>
    /// Whose permits these are: <c>account:alice</c>, <c>key:k1</c> or <c>ip:203.0.113.7</c>. All of one partition's
    /// counters belong together (on Redis Cluster, in one hash slot).
    /// </summary>
    public string Partition { get; }

    /// <summary>The tool called, if any: a <see cref="McpGuardRateLimiterWindow.PerTool"/> window counts per tool.</summary>
    public string? Tool { get; }

    /// <summary>The windows to check, in order (the call's own policy's, shortest first, then the default policy's).</summary>
    public IReadOnlyList<McpGuardRateLimiterWindow> Windows { get; }

    /// <summary>Whether the call spends a permit (false: the permits are only read, for the <c>RateLimit</c> header).</summary>
    public bool Spend { get; }
}

/// <summary>A rate-limit store's answer: whether the call was granted, and each window's state after it.</summary>
public sealed class McpGuardRateLimitResult
{
    /// <param name="acquired">Whether every window had a permit (and, when spending, one was spent from each).</param>
    /// <param name="windows">Each window's state, in the request's order.</param>
    public McpGuardRateLimitResult(bool acquired, IReadOnlyList<McpGuardRateLimitWindowState> windows)
    {
        ArgumentNullException.ThrowIfNull(windows);
        Acquired = acquired;
        Windows = windows;
    }

    /// <summary>Whether every window had a permit (and, when spending, one was spent from each).</summary>
    public bool Acquired { get; }

    /// <summary>Each window's state, in the request's order.</summary>
    public IReadOnlyList<McpGuardRateLimitWindowState> Windows { get; }
}

/// <summary>One window's state, on the store's clock.</summary>
/// <param name="available">Permits left after this call.</param>
/// <param name="reset">Time until the window next frees permits (the <c>RateLimit</c> header's <c>t</c>).</param>
/// <param name="retryAfter">When the window has no permit for this call: time until it has one. Zero otherwise.</param>
public sealed class McpGuardRateLimitWindowState(long available, TimeSpan reset, TimeSpan retryAfter)
{
    /// <summary>Permits left after this call.</summary>
    public long Available { get; } = available;

    /// <summary>Time until the window next frees permits (the <c>RateLimit</c> header's <c>t</c>).</summary>
    public TimeSpan Reset { get; } = reset;

    /// <summary>When the window has no permit for this call: time until it has one. Zero otherwise.</summary>
    public TimeSpan RetryAfter { get; } = retryAfter;
}
