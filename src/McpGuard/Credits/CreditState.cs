using System.Collections.Frozen;
using System.Globalization;
using McpGuard.Protocol;

namespace McpGuard.Credits;

/// <summary>Credit settings compiled for the hot path (part of <see cref="McpGuardState"/>).</summary>
internal sealed class CreditState
{
    public CreditState(McpGuardOptions options)
    {
        var credits = options.Credits;
        Enabled = credits.Enabled;
        DefaultPrice = credits.DefaultPrice;
        TopUpUrl = credits.TopUpUrl;
        UpstreamTimeout = credits.UpstreamTimeout;
        RefundToolInternalErrors = credits.RefundToolInternalErrors;
        FreeMethods = (credits.FreeMethods.Count > 0 ? credits.FreeMethods : McpGuardCreditOptions.DefaultFreeMethods).ToFrozenSet(StringComparer.Ordinal);
        ToolPrices = options.Tools.Where(t => t.Value?.Meter is not null || t.Value?.Price is not null)
            .ToFrozenDictionary(t => t.Key, t => t.Value.Meter?.MaxMicro ?? t.Value.Price!.Value, StringComparer.Ordinal);
        Meters = options.Tools.Where(t => t.Value?.Meter is not null).ToFrozenDictionary(t => t.Key, t => t.Value.Meter!, StringComparer.Ordinal);
        ToolStatuses = options.Tools.Where(t => t.Value is { Status: not McpGuardToolStatus.Live })
            .ToFrozenDictionary(t => t.Key, t => t.Value.Status, StringComparer.Ordinal);
        MethodPrices = options.Methods.Where(m => m.Value?.Price is not null).ToFrozenDictionary(m => m.Key, m => m.Value.Price!.Value, StringComparer.Ordinal);
        FreeCalls = options.Accounts.Where(a => a.Value?.FreeCallsPerMonth > 0)
            .ToFrozenDictionary(a => a.Key, a => a.Value.FreeCallsPerMonth, StringComparer.Ordinal);
        // A suspension in configuration stays in configuration (it follows reloads); the ledger's own flag is the admin API's.
        Seeds = [.. options.Accounts.Where(a => a.Value is not null)
            .Select(a => new McpGuardAccount(a.Key, a.Value.InitialBalance, a.Value.MonthlyCap, 0, 0))];
        PriceTexts = ToolPrices.Values.Concat(MethodPrices.Values).Append(DefaultPrice).Distinct()
            .ToFrozenDictionary(p => p, p => p.ToString(CultureInfo.InvariantCulture));
    }

    public bool Enabled { get; }

    public long DefaultPrice { get; }

    public string? TopUpUrl { get; }

    public TimeSpan UpstreamTimeout { get; }

    public bool RefundToolInternalErrors { get; }

    public FrozenSet<string> FreeMethods { get; }

    /// <summary>Each priced tool's up-front price: its flat price, or its metered maximum.</summary>
    public FrozenDictionary<string, long> ToolPrices { get; }

    /// <summary>The tools with a metered price.</summary>
    public FrozenDictionary<string, ToolMeter> Meters { get; }

    public FrozenDictionary<string, McpGuardToolStatus> ToolStatuses { get; }

    public FrozenDictionary<string, long> MethodPrices { get; }

    public FrozenDictionary<string, int> FreeCalls { get; }

    public IReadOnlyList<McpGuardAccount> Seeds { get; }

    /// <summary>The price of a request: its tool's (or the default) for <c>tools/call</c>, its method's otherwise; free methods cost nothing.</summary>
    public long Price(McpEnvelope envelope) =>
        envelope.Kind != McpMessageKind.Request || envelope.Method is not { } method ? 0 : Price(method, envelope.Name);

    /// <summary>The up-front price of a call of <paramref name="method"/> (for <c>tools/call</c>, of the tool <paramref name="tool"/>).</summary>
    public long Price(string method, string? tool)
    {
        if (FreeMethods.Contains(method))
        {
            return 0;
        }

        if (method == McpMethods.ToolsCall)
        {
            return tool is not null && ToolPrices.TryGetValue(tool, out var price) ? price : DefaultPrice;
        }

        return MethodPrices.TryGetValue(method, out var methodPrice) ? methodPrice : 0;
    }

    /// <summary>Every configured price as header text, formatted once.</summary>
    public FrozenDictionary<long, string> PriceTexts { get; }

    /// <summary>The price as header text (<c>McpGuard-Charge-Micro</c>): formatted once for configured prices.</summary>
    public string PriceText(long price) => PriceTexts.TryGetValue(price, out var text) ? text : price.ToString(CultureInfo.InvariantCulture);

    public int FreeCallsFor(string account) => FreeCalls.TryGetValue(account, out var calls) ? calls : 0;

    /// <summary>00:00 UTC on the first of the month after <paramref name="now"/>: when caps and free tiers reset.</summary>
    public static DateTimeOffset NextMonth(DateTimeOffset now)
    {
        var utc = now.UtcDateTime;
        return new DateTimeOffset(utc.Year, utc.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(1);
    }
}

/// <summary>A metered price: a rate per unit the tool reports, and the most one call costs.</summary>
internal sealed record ToolMeter(long PerUnitMicro, long MaxMicro)
{
    /// <summary>What <paramref name="units"/> cost, never more than <paramref name="reserved"/>.</summary>
    public long Cost(long units, long reserved) =>
        units <= 0 ? 0 : units > reserved / PerUnitMicro ? reserved : units * PerUnitMicro;
}
