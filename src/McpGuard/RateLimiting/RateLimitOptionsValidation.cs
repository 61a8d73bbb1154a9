namespace McpGuard.RateLimiting;

/// <summary>The rate-limit part of options validation.</summary>
internal static class RateLimitOptionsValidation
{
    private const string At = "McpGuard:RateLimits";

    public static void Validate(McpGuardOptions options, List<string> errors)
    {
        var limits = options.RateLimits;
        if (!Enum.IsDefined(limits.PartitionBy))
        {
            errors.Add($"{At}:PartitionBy must be Account or Key (got '{limits.PartitionBy}').");
        }

        if (!Enum.IsDefined(limits.Store))
        {
            errors.Add($"{At}:Store must be InProcess or Redis (got '{limits.Store}').");
        }

        if (!Enum.IsDefined(limits.OnStoreFailure))
        {
            errors.Add($"{At}:OnStoreFailure must be FailClosed or FailOpen (got '{limits.OnStoreFailure}').");
        }

        if (limits.DefaultPolicy is { } defaultPolicy && !limits.Policies.ContainsKey(defaultPolicy))
        {
            errors.Add($"{At}:DefaultPolicy '{defaultPolicy}' is not defined under {At}:Policies.");
        }

        for (var i = 0; i < limits.CountedMethods.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(limits.CountedMethods[i]))
            {
                errors.Add($"{At}:CountedMethods:{i} must name an MCP method, like tools/call.");
            }
        }

        foreach (var (name, policy) in limits.Policies)
        {
            var policyAt = $"{At}:Policies:{name}";
            if (name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                errors.Add($"{policyAt}: a policy name is letters, digits, '-' and '_' (it appears in RateLimit headers).");
            }

            if (policy is null)
            {
                continue;
            }

            if (!Enum.IsDefined(policy.Algorithm))
            {
                errors.Add($"{policyAt}:Algorithm must be FixedWindow, SlidingWindow or TokenBucket (got '{policy.Algorithm}').");
            }

            if (policy.Windows.Count == 0)
            {
                errors.Add($"{policyAt}:Windows needs at least one window, like {{ \"Permits\": 120, \"Window\": \"00:01:00\" }}.");
            }

            var names = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < policy.Windows.Count; i++)
            {
                var window = policy.Windows[i];
                var windowAt = $"{policyAt}:Windows:{i}";
                if (window.Permits < 1)
                {
                    errors.Add($"{windowAt}:Permits must be at least 1 (got {window.Permits}).");
                }

                if (window.Window < TimeSpan.FromSeconds(1) || window.Window.Ticks % TimeSpan.TicksPerSecond != 0)
                {
                    errors.Add($"{windowAt}:Window must be a whole number of seconds, at least 00:00:01 (got {window.Window}).");
                    continue;
                }

                if (policy.Algorithm == McpGuardRateLimitAlgorithm.SlidingWindow
                    && (window.Segments < 1 || window.Window.Ticks % window.Segments != 0))
                {
                    errors.Add($"{windowAt}:Segments must be at least 1 and divide the window evenly (got {window.Segments}).");
                }

                if (policy.Algorithm == McpGuardRateLimitAlgorithm.TokenBucket && limits.Store == McpGuardRateLimitStoreKind.Redis
                    && window.Permits >= 1 && !RedisKeepsExact(window.Permits, window.Window))
                {
                    // Redis's Lua numbers are doubles: a bucket's level, in whole microseconds per permit, must stay exact.
                    errors.Add($"{windowAt}: a token bucket on Redis needs lcm(Permits, Window in microseconds) of at most 2^52; {window.Permits} per {window.Window} is more. Use fewer permits or a shorter window.");
                }

                if (!names.Add(RateLimitState.WindowName(name, window.Window)))
                {
                    errors.Add($"{windowAt}: the policy already has a window of {window.Window}.");
                }
            }
        }

        foreach (var (tool, policy) in options.Tools)
        {
            if (policy?.RateLimitPolicy is { } name && !limits.Policies.ContainsKey(name))
            {
                errors.Add($"McpGuard:Tools:{tool}:RateLimitPolicy '{name}' is not defined under {At}:Policies.");
            }
        }

        foreach (var (method, policy) in options.Methods)
        {
            if (policy?.RateLimitPolicy is { } name && !limits.Policies.ContainsKey(name))
            {
                errors.Add($"McpGuard:Methods:{method}:RateLimitPolicy '{name}' is not defined under {At}:Policies.");
            }
        }
    }

    /// <summary>
    /// Whether lcm(permits, window in µs), the largest level McpGuard.Redis's script keeps for a token bucket, is exact in
    /// a Lua number (a double): at most 2^52. Validation refuses such a window at start; the script's plan asks the same.
    /// </summary>
    internal static bool RedisKeepsExact(long permits, TimeSpan window)
    {
        var micros = window.Ticks / 10;
        var lcm = (Int128)permits * micros / (Int128)System.Numerics.BigInteger.GreatestCommonDivisor(permits, micros);
        return lcm <= (Int128)1 << 52;
    }
}
