namespace McpGuard;

/// <summary>
/// Rate limits: named policies of one or more windows, a default policy every counted call is checked
/// against, and policies assigned to tools (<c>McpGuard:Tools:&lt;tool&gt;:RateLimitPolicy</c>) or methods.
/// Bound from <c>McpGuard:RateLimits</c>.
/// </summary>
/// <example>
/// <code>
/// "RateLimits": {
///   "DefaultPolicy": "default",
///   "Policies": {
///     "default": { "Windows": [ { "Permits": 120, "Window": "00:01:00" }, { "Permits": 10000, "Window": "1.00:00:00" } ] },
///     "add":     { "PerTool": true, "Windows": [ { "Permits": 30, "Window": "00:01:00" } ] }
///   }
/// }
/// </code>
/// </example>
internal sealed class McpGuardRateLimitOptions
{
    /// <summary>Whose budget a call spends: the account (default) or the API key. Callers without credentials are partitioned by remote address.</summary>
    public McpGuardRateLimitPartition PartitionBy { get; set; } = McpGuardRateLimitPartition.Account;

    /// <summary>The policy every counted call is checked against, in addition to its tool's or method's own policy. None when null.</summary>
    public string? DefaultPolicy { get; set; }

    /// <summary>The MCP methods that count. Default <c>tools/call</c>, <c>resources/read</c>, <c>prompts/get</c>. Notifications and responses never count.</summary>
    public IList<string> CountedMethods { get; } = [];

    /// <summary>Policies by name.</summary>
    public IDictionary<string, McpGuardRateLimitPolicy> Policies { get; } = new Dictionary<string, McpGuardRateLimitPolicy>(StringComparer.Ordinal);

    /// <summary>
    /// Where the counters live: <see cref="McpGuardRateLimitStoreKind.InProcess"/> (the default; each process counts on
    /// its own) or <see cref="McpGuardRateLimitStoreKind.Redis"/> (shared by every instance). Read once, at start.
    /// </summary>
    public McpGuardRateLimitStoreKind Store { get; set; } = McpGuardRateLimitStoreKind.InProcess;

    /// <summary>
    /// What a counted call gets when the shared store does not answer (down, or slower than <c>McpGuard:StoreTimeout</c>):
    /// <see cref="McpGuardStoreFailureMode.FailClosed"/> (the default: 503 <c>limiter_unavailable</c> with
    /// <c>Retry-After</c>) or <see cref="McpGuardStoreFailureMode.FailOpen"/> (the call passes uncounted; each is logged
    /// and counted in the <c>mcpguard.rate_limit.store_failures</c> metric).
    /// </summary>
    public McpGuardStoreFailureMode OnStoreFailure { get; set; } = McpGuardStoreFailureMode.FailClosed;

    internal static readonly string[] DefaultCountedMethods = ["tools/call", "resources/read", "prompts/get"];
}

/// <summary>Where rate-limit counters live (<c>McpGuard:RateLimits:Store</c>).</summary>
internal enum McpGuardRateLimitStoreKind
{
    /// <summary>In this process's memory: each instance counts on its own.</summary>
    InProcess,

    /// <summary>Redis (<c>McpGuard:Redis:Configuration</c>; package McpGuard.Redis), shared by every instance.</summary>
    Redis,
}

/// <summary>What a counted call gets when the shared rate-limit store does not answer.</summary>
internal enum McpGuardStoreFailureMode
{
    /// <summary>503 <c>limiter_unavailable</c>, retryable, with <c>Retry-After</c>: no call passes uncounted.</summary>
    FailClosed,

    /// <summary>The call passes uncounted, logged and counted.</summary>
    FailOpen,
}

/// <summary>Whose budget a call spends.</summary>
internal enum McpGuardRateLimitPartition
{
    /// <summary>The account (all of its keys and tokens share one budget).</summary>
    Account,

    /// <summary>The API key (tokens, which have no key, fall back to the account).</summary>
    Key,
}

/// <summary>How a window counts.</summary>
public enum McpGuardRateLimitAlgorithm
{
    /// <summary>Fixed windows aligned to the clock (a per-minute window resets on the minute, a per-day window at 00:00 UTC).</summary>
    FixedWindow,

    /// <summary>A window that slides in <see cref="McpGuardRateLimitWindowOptions.Segments"/> steps.</summary>
    SlidingWindow,

    /// <summary>A bucket of <see cref="McpGuardRateLimitWindowOptions.Permits"/> tokens refilled evenly over the window.</summary>
    TokenBucket,
}

/// <summary>A named rate-limit policy.</summary>
internal sealed class McpGuardRateLimitPolicy
{
    /// <summary>How every window of the policy counts. Default <see cref="McpGuardRateLimitAlgorithm.FixedWindow"/>.</summary>
    public McpGuardRateLimitAlgorithm Algorithm { get; set; } = McpGuardRateLimitAlgorithm.FixedWindow;

    /// <summary>Each tool gets its own budget under this policy (else all tools assigned to it share one). Default false.</summary>
    public bool PerTool { get; set; }

    /// <summary>The windows; a call must fit in every one.</summary>
    public IList<McpGuardRateLimitWindowOptions> Windows { get; } = [];
}

/// <summary>One window of a policy: <see cref="Permits"/> calls per <see cref="Window"/>.</summary>
internal sealed class McpGuardRateLimitWindowOptions
{
    /// <summary>Calls allowed per window.</summary>
    public int Permits { get; set; }

    /// <summary>The window's length, at least one second, in whole seconds (e.g. <c>00:01:00</c>, <c>1.00:00:00</c>).</summary>
    public TimeSpan Window { get; set; }

    /// <summary>For sliding windows: how many segments the window slides by. Default 6.</summary>
    public int Segments { get; set; } = 6;
}
