using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Threading.RateLimiting;
using McpGuard.Errors;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace McpGuard.RateLimiting;

/// <summary>
/// Who a call's permits are counted against, and which tool it calls. The partition is kept as its two parts
/// (<c>account:</c> and the account, say) so that no string is built per call; <see cref="Partition"/> joins them
/// when one is needed (a new limiter, a log line).
/// </summary>
internal readonly record struct RateLimitSubject(string PartitionKind, string PartitionId, string? Tool)
{
    public string Partition => PartitionKind + PartitionId;
}

/// <summary>What a window's limiters are keyed by: the partition, and the tool for per-tool windows.</summary>
internal readonly record struct RateLimitPartitionKey(string PartitionKind, string PartitionId, string? Tool)
{
    /// <summary>The partition as the limiter provider sees it: <c>account:alice</c>, or <c>account:alice|tool:add</c> per tool.</summary>
    public override string ToString() => Tool is { } tool ? $"{PartitionKind}{PartitionId}|tool:{tool}" : PartitionKind + PartitionId;
}

/// <summary>
/// Spends one permit of every window that applies to a counted call (the call's own policy, then the default
/// policy), using the runtime's partitioned limiters chained together. A refused call gets 429 with
/// <c>Retry-After</c> and never reaches the endpoint. Every response that passes authentication carries the
/// IETF httpapi <c>RateLimit-Policy</c> and <c>RateLimit</c> headers, so clients can slow down before they are refused.
/// </summary>
internal sealed partial class RateLimitGate(
    IMcpGuardRateLimiterProvider provider,
    TimeProvider clock,
    ILogger<RateLimitGate> logger,
    IServiceProvider? services = null,
    McpGuard.Telemetry.McpGuardTelemetry? telemetry = null) : IDisposable
{
    // The shared store (Redis, or the app's own), resolved once: McpGuard:RateLimits:Store is read at start.
    private readonly Lazy<IMcpGuardRateLimitStore?> _store = new(() => services is null ? null : Storage.McpGuardStores.RateLimitStore(services));

    private const string PolicyHeader = "RateLimit-Policy";
    private const string StateHeader = "RateLimit";

    // No policy applies: nothing to spend and no headers.
    private static readonly Chain NoChain = new([], null!, "");

    // Keyed by window definition (a record), so a reload that keeps a window keeps its counters.
    private readonly ConcurrentDictionary<(McpGuardRateLimiterWindow.Identity Window, bool PerTool), PartitionedRateLimiter<RateLimitSubject>> _windows = new();
    // Keyed by the policies' text, so reloads that keep them reuse the chain instead of adding one each time.
    private readonly ConcurrentDictionary<(string? Specific, string? Default), Chain> _chains = new();

    /// <summary>Spends the call's permits (or refuses it), in process or on the shared store, and writes the headers.</summary>
    public ValueTask<McpGuardError?> CheckAsync(HttpContext context, McpGuardFeature feature)
    {
        var state = feature.State;
        var limits = state.RateLimits;
        if (!limits.Enabled || feature.Envelope is not { } envelope)
        {
            return default;
        }

        var counts = limits.Counts(envelope);
        var chain = GetChain(counts ? limits.SpecificPolicy(envelope) : null, limits.Default);
        if (chain.Windows.Length == 0)
        {
            return default;
        }

        var subject = Subject(context, feature, limits, envelope.ToolName);
        return _store.Value is { } store
            ? CheckSharedAsync(store, context, feature, chain, subject, counts)
            : ValueTask.FromResult(CheckInProcess(context, feature, chain, subject, counts));
    }

    /// <summary>
    /// The shared store checks and spends every window in one step, on its own clock; the headers show its answer. A store
    /// that fails or does not answer within <c>McpGuard:StoreTimeout</c> is <c>OnStoreFailure</c>'s to decide.
    /// </summary>
    private async ValueTask<McpGuardError?> CheckSharedAsync(IMcpGuardRateLimitStore store, HttpContext context, McpGuardFeature feature, Chain chain, RateLimitSubject subject, bool counts)
    {
        var state = feature.State;
        var request = new McpGuardRateLimitRequest(subject.Partition, subject.Tool, chain.WindowList, counts);
        McpGuardRateLimitResult result;
        using var call = telemetry is null ? default : telemetry.StoreCall("rate_limit", "acquire");
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted))
        {
            timeout.CancelAfter(state.Options.StoreTimeout);
            try
            {
                result = await store.AcquireAsync(request, timeout.Token);
                if (result.Windows.Count != chain.Windows.Length)
                {
                    throw new InvalidOperationException($"The rate-limit store answered for {result.Windows.Count} windows; the call has {chain.Windows.Length}.");
                }
            }
            catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested)
            {
                call.Fail(ex);
                if (!counts)
                {
                    // A call that spends no permit only read the windows for its headers: it goes on without them.
                    Log.StoreFailedUncounted(logger, ex, subject.Partition, feature.RequestId);
                    return null;
                }

                var failOpen = state.Options.RateLimits.OnStoreFailure == McpGuardStoreFailureMode.FailOpen;
                telemetry?.RateLimitStoreFailed(passed: failOpen);
                if (failOpen)
                {
                    Log.StoreFailedOpen(logger, ex, subject.Partition, feature.RequestId);
                    return null;
                }

                Log.StoreFailedClosed(logger, ex, subject.Partition, feature.RequestId);
                return new McpGuardError(state.Catalog[McpGuardReasons.LimiterUnavailable], "Rate limiter unavailable: retry after 1 s.")
                {
                    RetryAfterSeconds = 1,
                };
            }
        }

        Span<long> available = stackalloc long[chain.Windows.Length];
        Span<long> resets = stackalloc long[chain.Windows.Length];
        McpGuardRateLimiterWindow? exhausted = null;
        var wait = TimeSpan.Zero;
        for (var i = 0; i < available.Length; i++)
        {
            var window = result.Windows[i];
            available[i] = Math.Max(0, window.Available);
            resets[i] = Math.Max(0, (long)Math.Ceiling(window.Reset.TotalSeconds));
            if (!result.Acquired && window.RetryAfter > TimeSpan.Zero && window.RetryAfter >= wait)
            {
                exhausted = chain.Windows[i].Window;
                wait = window.RetryAfter;
            }
        }

        var error = counts && !result.Acquired ? Limited(feature, subject, exhausted, wait) : null;
        WriteHeaders(context.Response.Headers, chain, available, resets);
        return error;
    }

    /// <summary>The 429 for a counted call a window refused, with the longest wait of the full windows, and its log line.</summary>
    private McpGuardError Limited(McpGuardFeature feature, RateLimitSubject subject, McpGuardRateLimiterWindow? exhausted, TimeSpan wait)
    {
        var seconds = Math.Max(1, (long)Math.Ceiling(wait.TotalSeconds));
        Log.Limited(logger, subject.Partition, exhausted?.Name ?? "(unknown)", seconds, feature.RequestId);
        telemetry?.RateLimited(exhausted?.Policy ?? McpGuard.Telemetry.TelemetryNames.Other);
        return new McpGuardError(feature.State.Catalog[McpGuardReasons.RateLimited], $"Rate limit exceeded: retry after {seconds} s.")
        {
            RetryAfterSeconds = seconds,
            Data = exhausted is null ? [] : [new("limit", exhausted.Name)],
        };
    }

    private McpGuardError? CheckInProcess(HttpContext context, McpGuardFeature feature, Chain chain, RateLimitSubject subject, bool counts)
    {
        // Each window's permits, read once: they decide whether the call can pass and fill the RateLimit header.
        Span<long> available = stackalloc long[chain.Windows.Length];
        var full = false;
        for (var i = 0; i < chain.Windows.Length; i++)
        {
            available[i] = Math.Max(0, Available(chain.Windows[i], subject));
            full |= available[i] == 0;
        }

        McpGuardError? error = null;
        if (counts)
        {
            // Refuse before spending when a window is full: the chained limiter spends the windows it passes before
            // one refuses, and a window cannot take a permit back, so a refused call would cost permits it never used.
            using var lease = full ? null : chain.Limiter.AttemptAcquire(subject);
            if (lease is { IsAcquired: true })
            {
                for (var i = 0; i < available.Length; i++)
                {
                    available[i] = Math.Max(0, available[i] - 1);
                }
            }
            else
            {
                // When several windows are full, the call fits again only when the last of them frees a permit.
                var (exhausted, retryAfter) = LongestWait(chain, subject, lease);
                error = Limited(feature, subject, exhausted, retryAfter);

                if (lease is not null)
                {
                    // Another call took a permit between the read and the spend: read the windows again for the header.
                    for (var i = 0; i < chain.Windows.Length; i++)
                    {
                        available[i] = Math.Max(0, Available(chain.Windows[i], subject));
                    }
                }
            }
        }

        WriteHeaders(context.Response.Headers, chain, available, resets: default);
        return error;
    }

    private static (McpGuardRateLimiterWindow? Window, TimeSpan RetryAfter) LongestWait(Chain chain, RateLimitSubject subject, RateLimitLease? refused)
    {
        McpGuardRateLimiterWindow? longest = null;
        var wait = TimeSpan.Zero;
        foreach (var (window, limiter) in chain.Windows)
        {
            using var probe = limiter.AttemptAcquire(subject, 0);
            if (!probe.IsAcquired && probe.TryGetMetadata(MetadataName.RetryAfter, out var windowWait) && windowWait >= wait)
            {
                longest = window;
                wait = windowWait;
            }
        }

        if (longest is null)
        {
            wait = refused is not null && refused.TryGetMetadata(MetadataName.RetryAfter, out var delay) ? delay : TimeSpan.FromSeconds(1);
        }

        return (longest, wait);
    }

    /// <summary>
    /// The chain for a call's own policy and the default policy, both from the same state: cached on the policy the call
    /// found (a field read), built (or found by the policies' text, so reloads that keep a policy keep its chain) once per state.
    /// </summary>
    private Chain GetChain(CompiledRateLimitPolicy? specific, CompiledRateLimitPolicy? @default)
    {
        if (specific is not null)
        {
            return specific.ChainAsSpecific as Chain ?? (Chain)(specific.ChainAsSpecific = FindChain(specific, @default));
        }

        if (@default is not null)
        {
            return @default.ChainAsDefaultOnly as Chain ?? (Chain)(@default.ChainAsDefaultOnly = FindChain(null, @default));
        }

        return NoChain;
    }

    private Chain FindChain(CompiledRateLimitPolicy? specific, CompiledRateLimitPolicy? @default) =>
        _chains.GetOrAdd((specific?.Signature, @default?.Signature), static (_, args) => args.Gate.BuildChain(args.Specific, args.Default), (Gate: this, Specific: specific, Default: @default));

    private Chain BuildChain(CompiledRateLimitPolicy? specific, CompiledRateLimitPolicy? @default)
    {
        var windows = new List<(McpGuardRateLimiterWindow Window, PartitionedRateLimiter<RateLimitSubject> Limiter)>();
        // A tool whose own policy is the default policy spends it once, not twice (in process and on a shared store alike).
        var sameAsDefault = specific is not null && @default is not null && specific.Signature == @default.Signature;
        foreach (var policy in sameAsDefault ? [specific] : new[] { specific, @default })
        {
            if (policy is null)
            {
                continue;
            }

            // Shortest window first: the one most likely to refuse is asked before longer ones are spent.
            foreach (var window in policy.Windows.OrderBy(w => w.Window))
            {
                windows.Add((window, _windows.GetOrAdd((window.Key, policy.PerTool), static (key, args) => args.Gate.CreateWindow(args.Window, key.PerTool), (Gate: this, Window: window))));
            }
        }

        var limiter = windows.Count switch
        {
            0 => null,
            1 => windows[0].Limiter,
            _ => PartitionedRateLimiter.CreateChained([.. windows.Select(w => w.Limiter)]),
        };
        var policyHeader = string.Join(", ", windows.Select(w => $"\"{w.Window.Name}\";q={w.Window.Permits};w={(long)w.Window.Window.TotalSeconds}"));
        return new Chain([.. windows], limiter!, policyHeader);
    }

    private PartitionedRateLimiter<RateLimitSubject> CreateWindow(McpGuardRateLimiterWindow window, bool perTool)
    {
        // One factory per window, not a closure per call; the provider sees the partition as text, built once per partition.
        Func<RateLimitPartitionKey, RateLimiter> factory = key => provider.Create(key.ToString(), window);
        return PartitionedRateLimiter.Create<RateLimitSubject, RateLimitPartitionKey>(subject =>
            RateLimitPartition.Get(new RateLimitPartitionKey(subject.PartitionKind, subject.PartitionId, perTool ? subject.Tool : null), factory));
    }

    private static long Available((McpGuardRateLimiterWindow Window, PartitionedRateLimiter<RateLimitSubject> Limiter) window, RateLimitSubject subject) =>
        window.Limiter.GetStatistics(subject)?.CurrentAvailablePermits ?? 0;

    /// <summary>
    /// Writes <c>RateLimit-Policy</c> (fixed per chain) and <c>RateLimit</c>, built in one pass into one string. The resets
    /// are the shared store's (on its clock), or empty: then this process's clock gives them.
    /// </summary>
    private void WriteHeaders(IHeaderDictionary headers, Chain chain, ReadOnlySpan<long> available, ReadOnlySpan<long> resets)
    {
        var now = clock.GetUtcNow();
        var value = new DefaultInterpolatedStringHandler(0, 0, CultureInfo.InvariantCulture, stackalloc char[256]);
        for (var i = 0; i < chain.Windows.Length; i++)
        {
            var window = chain.Windows[i];
            if (i > 0)
            {
                value.AppendLiteral(", ");
            }

            var reset = resets.IsEmpty ? (long)Math.Ceiling(ClockedRateLimiter.TimeToReset(window.Window, now).TotalSeconds) : resets[i];
            value.AppendLiteral("\"");
            value.AppendFormatted(window.Window.Name);
            value.AppendLiteral("\";r=");
            value.AppendFormatted(available[i]);
            value.AppendLiteral(";t=");
            value.AppendFormatted(reset);
        }

        headers[PolicyHeader] = chain.PolicyHeader;
        headers[StateHeader] = value.ToStringAndClear();
    }

    /// <summary>
    /// The partition a caller's permits come from. Authenticated callers: their account (or key). Others: the
    /// connection's remote address, which ASP.NET Core's forwarded-headers middleware updates when the app
    /// configures it. McpGuard never reads a forwarding header itself, so a client cannot pick its partition.
    /// </summary>
    private static RateLimitSubject Subject(HttpContext context, McpGuardFeature feature, RateLimitState limits, string? tool)
    {
        if (feature.Caller is { } caller)
        {
            return limits.PartitionBy == McpGuardRateLimitPartition.Key && caller.KeyId is { } keyId
                ? new("key:", keyId, tool)
                : new("account:", caller.Account, tool);
        }

        return new("ip:", context.Connection.RemoteIpAddress?.ToString() ?? "unknown", tool);
    }

    public void Dispose()
    {
        foreach (var limiter in _windows.Values)
        {
            limiter.Dispose();
        }
    }

    private sealed record Chain(
        (McpGuardRateLimiterWindow Window, PartitionedRateLimiter<RateLimitSubject> Limiter)[] Windows,
        PartitionedRateLimiter<RateLimitSubject> Limiter,
        string PolicyHeader)
    {
        /// <summary>The windows alone, as a shared store sees them (one array per chain, so a store can cache by it).</summary>
        public McpGuardRateLimiterWindow[] WindowList { get; } = [.. Windows.Select(w => w.Window)];
    }

    private static partial class Log
    {
        [LoggerMessage(5001, LogLevel.Information, "Rate limit {Window} reached for {Partition}; request {RequestId} refused, retry after {Seconds} s.", EventName = "RateLimited")]
        public static partial void Limited(ILogger logger, string partition, string window, long seconds, string requestId);

        [LoggerMessage(5002, LogLevel.Error, "The rate-limit store did not answer for {Partition}; request {RequestId} refused with limiter_unavailable (RateLimits:OnStoreFailure is FailClosed).", EventName = "RateLimitStoreFailedClosed")]
        public static partial void StoreFailedClosed(ILogger logger, Exception exception, string partition, string requestId);

        [LoggerMessage(5003, LogLevel.Warning, "The rate-limit store did not answer for {Partition}; request {RequestId} passes uncounted (RateLimits:OnStoreFailure is FailOpen).", EventName = "RateLimitStoreFailedOpen")]
        public static partial void StoreFailedOpen(ILogger logger, Exception exception, string partition, string requestId);

        [LoggerMessage(5004, LogLevel.Debug, "The rate-limit store did not answer for {Partition}; request {RequestId} spends no permit and goes on without RateLimit headers.", EventName = "RateLimitStoreFailedUncounted")]
        public static partial void StoreFailedUncounted(ILogger logger, Exception exception, string partition, string requestId);
    }
}
