using System.Collections.Frozen;
using System.Globalization;
using McpGuard.Protocol;

namespace McpGuard.RateLimiting;

/// <summary>A policy compiled for the hot path (one instance per policy per <see cref="RateLimitState"/>).</summary>
internal sealed class CompiledRateLimitPolicy(string name, bool perTool, McpGuardRateLimiterWindow[] windows)
{
    public string Name { get; } = name;

    public bool PerTool { get; } = perTool;

    public McpGuardRateLimiterWindow[] Windows { get; } = windows;

    /// <summary>The policy's whole definition as text: equal policies (say, before and after a reload) share chains and counters.</summary>
    public string Signature { get; } = $"{name}|{perTool}|{string.Join('|', windows.Select(w => w.Key.ToString()))}";

    /// <summary>
    /// The rate-limit gate's chain for this policy as a call's own policy (with its state's default policy after it), cached
    /// here so a call finds it without hashing signatures. A reload compiles new policies, so the cache goes with the old state.
    /// </summary>
    internal object? ChainAsSpecific;

    /// <summary>The gate's chain for this policy as the default, for calls without a policy of their own.</summary>
    internal object? ChainAsDefaultOnly;
}

/// <summary>Rate-limit settings compiled for the hot path (part of <see cref="McpGuardState"/>).</summary>
internal sealed class RateLimitState
{
    public RateLimitState(McpGuardOptions options)
    {
        var limits = options.RateLimits;
        PartitionBy = limits.PartitionBy;
        CountedMethods = (limits.CountedMethods.Count > 0 ? limits.CountedMethods : McpGuardRateLimitOptions.DefaultCountedMethods)
            .ToFrozenSet(StringComparer.Ordinal);
        var policies = limits.Policies
            .Where(p => p.Value is not null)
            .ToDictionary(p => p.Key, p => Compile(p.Key, p.Value), StringComparer.Ordinal);
        Default = limits.DefaultPolicy is { } name && policies.TryGetValue(name, out var policy) ? policy : null;
        ToolPolicies = options.Tools
            .Where(t => t.Value?.RateLimitPolicy is { } n && policies.ContainsKey(n))
            .ToFrozenDictionary(t => t.Key, t => policies[t.Value.RateLimitPolicy!], StringComparer.Ordinal);
        MethodPolicies = options.Methods
            .Where(m => m.Value?.RateLimitPolicy is { } n && policies.ContainsKey(n))
            .ToFrozenDictionary(m => m.Key, m => policies[m.Value.RateLimitPolicy!], StringComparer.Ordinal);
        Enabled = Default is not null || ToolPolicies.Count > 0 || MethodPolicies.Count > 0;
    }

    public bool Enabled { get; }

    public McpGuardRateLimitPartition PartitionBy { get; }

    public FrozenSet<string> CountedMethods { get; }

    public CompiledRateLimitPolicy? Default { get; }

    public FrozenDictionary<string, CompiledRateLimitPolicy> ToolPolicies { get; }

    public FrozenDictionary<string, CompiledRateLimitPolicy> MethodPolicies { get; }

    /// <summary>Whether the message spends a permit: a request for a counted method.</summary>
    public bool Counts(McpEnvelope envelope) =>
        envelope.Kind == McpMessageKind.Request && envelope.Method is { } method && CountedMethods.Contains(method);

    /// <summary>The call's own policy (its tool's or method's), if any.</summary>
    public CompiledRateLimitPolicy? SpecificPolicy(McpEnvelope envelope)
    {
        if (envelope.IsToolCall)
        {
            return envelope.Name is { } tool && ToolPolicies.TryGetValue(tool, out var toolPolicy) ? toolPolicy : null;
        }

        return envelope.Method is { } method && MethodPolicies.TryGetValue(method, out var methodPolicy) ? methodPolicy : null;
    }

    private static CompiledRateLimitPolicy Compile(string name, McpGuardRateLimitPolicy policy) =>
        new(name, policy.PerTool, [.. policy.Windows.Select(w => new McpGuardRateLimiterWindow(name, WindowName(name, w.Window), policy.Algorithm, w.Permits, w.Window, w.Segments, policy.PerTool))]);

    /// <summary><c>default-1m</c>, <c>default-1d</c>, <c>burst-30s</c>: the policy and the window's length in its largest whole unit.</summary>
    internal static string WindowName(string policy, TimeSpan window)
    {
        var seconds = (long)window.TotalSeconds;
        var label = seconds % 86400 == 0 ? $"{seconds / 86400}d"
            : seconds % 3600 == 0 ? $"{seconds / 3600}h"
            : seconds % 60 == 0 ? $"{seconds / 60}m"
            : seconds.ToString(CultureInfo.InvariantCulture) + "s";
        return $"{policy}-{label}";
    }
}
