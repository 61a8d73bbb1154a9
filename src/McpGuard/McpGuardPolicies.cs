using Microsoft.Extensions.Configuration;

namespace McpGuard;

/// <summary>What McpGuard enforces for one tool, keyed by tool name under <c>McpGuard:Tools</c>.</summary>
/// <example><code>"Tools": { "premium_report": { "Scopes": [ "tools:premium" ] } }</code></example>
internal sealed class McpGuardToolPolicy
{
    /// <summary>Scopes a caller needs, all of them, to call the tool.</summary>
    public IList<string> Scopes { get; } = [];

    /// <summary>The rate-limit policy (a name under <c>McpGuard:RateLimits:Policies</c>) for this tool, checked with the default policy.</summary>
    public string? RateLimitPolicy { get; set; }

    /// <summary>
    /// The price of one call in micro-units (<c>"Price": 800</c>), or a metered price (<c>"Price": { "PerUnitMicro": 2,
    /// "MaxMicro": 20000 }</c>): the maximum is held before the call runs, and the units the tool reports are charged.
    /// <c>McpGuard:Credits:DefaultPrice</c> when unset. 0 is free.
    /// </summary>
    public long? Price { get; set; }

    /// <summary>
    /// The metered price, read from <c>"Price": { "PerUnitMicro": 2, "MaxMicro": 20000 }</c> (the binder cannot give one
    /// property both shapes, so <see cref="McpGuardMeteredPrices"/> reads this one from the configuration itself).
    /// </summary>
    internal McpGuard.Credits.ToolMeter? Meter { get; set; }

    /// <summary>What <see cref="McpGuardMeteredPrices"/> could not read of a metered price, for validation to report.</summary>
    internal string? MeterError { get; set; }

    /// <summary>Whether the tool is offered (the admin API can override it at run time). Default <see cref="McpGuardToolStatus.Live"/>.</summary>
    public McpGuardToolStatus Status { get; set; } = McpGuardToolStatus.Live;
}

/// <summary>What McpGuard enforces for one MCP method (other than <c>tools/call</c>), keyed by method under <c>McpGuard:Methods</c>.</summary>
/// <example><code>"Methods": { "resources/read": { "Scopes": [ "resources:read" ] } }</code></example>
internal sealed class McpGuardMethodPolicy
{
    /// <summary>Scopes a caller needs, all of them, to call the method.</summary>
    public IList<string> Scopes { get; } = [];

    /// <summary>The rate-limit policy for this method, checked with the default policy (when the method counts).</summary>
    public string? RateLimitPolicy { get; set; }

    /// <summary>The price of one call of this method in micro-units. Unset is free.</summary>
    public long? Price { get; set; }
}

/// <summary>An account (the billing party a key or token belongs to), keyed by account id under <c>McpGuard:Accounts</c>.</summary>
internal sealed class McpGuardAccountOptions
{
    /// <summary>A suspended account is refused with 403 <c>suspended</c> (the admin API can also suspend and reactivate).</summary>
    public bool Suspended { get; set; }

    /// <summary>The balance the account starts with, in micro-units: a seed top-up applied once, on the first start of an empty ledger.</summary>
    public long InitialBalance { get; set; }

    /// <summary>The monthly spending cap the account starts with, in micro-units (the admin API can change it). None when unset.</summary>
    public long? MonthlyCap { get; set; }

    /// <summary>Priced calls per calendar month (UTC) that cost nothing. Default 0.</summary>
    public int FreeCallsPerMonth { get; set; }
}

/// <summary>
/// Reads metered prices, <c>McpGuard:Tools:&lt;tool&gt;:Price</c> given as <c>{ "PerUnitMicro": 2, "MaxMicro": 20000 }</c>,
/// into <see cref="McpGuardToolPolicy.Meter"/>: the binder reads <c>"Price": 800</c> into <see cref="McpGuardToolPolicy.Price"/>
/// and cannot read the object shape into the same property. Runs after the binder, on every (re)load.
/// </summary>
internal static class McpGuardMeteredPrices
{
    public static void Read(McpGuardOptions options, IConfiguration section)
    {
        foreach (var tool in section.GetSection("Tools").GetChildren())
        {
            var price = tool.GetSection("Price");
            if (!price.GetChildren().Any() || !options.Tools.TryGetValue(tool.Key, out var policy) || policy is null)
            {
                continue;
            }

            var unknown = price.GetChildren().Select(c => c.Key).Where(k => k is not ("PerUnitMicro" or "MaxMicro")).ToList();
            var perUnit = Whole(price["PerUnitMicro"]);
            var max = Whole(price["MaxMicro"]);
            policy.Meter = null;
            var flat = string.IsNullOrEmpty(price.Value) ? null : price.Value;
            if (flat is null)
            {
                // The binder reads a section with children and no value as 0 into the flat price: there is no flat price.
                policy.Price = null;
            }

            policy.MeterError = flat is not null
                ? $"is both a number ({flat}) and a metered price; give one."
                : unknown.Count > 0
                ? $"has unknown setting(s) {string.Join(", ", unknown)}: a metered price is {{ \"PerUnitMicro\": 2, \"MaxMicro\": 20000 }}."
                : perUnit is not > 0 || max is not > 0 || perUnit > max
                    ? $"is a metered price: it needs PerUnitMicro and MaxMicro, whole numbers above 0, PerUnitMicro at most MaxMicro (got PerUnitMicro '{price["PerUnitMicro"]}', MaxMicro '{price["MaxMicro"]}')."
                    : null;
            if (policy.MeterError is null)
            {
                policy.Meter = new McpGuard.Credits.ToolMeter(perUnit!.Value, max!.Value);
            }
        }

        static long? Whole(string? text) =>
            long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : null;
    }
}
