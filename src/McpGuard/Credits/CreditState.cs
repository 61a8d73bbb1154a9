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
        ToolPrices = options.Tools.Where(t => t.Value?.Price is not null).ToFrozenDictionary(t => t.Key, t => t.Value.Price!.Value, StringComparer.Ordinal);
        ToolStatuses = options.Tools.Where(t => t.Value is { Status: not McpGuardToolStatus.Live })
            .ToFrozenDictionary(t => t.Key, t => t.Value.Status, StringComparer.Ordinal);
        MethodPrices = options.Methods.Where(m => m.Value?.Price is not null).ToFrozenDictionary(m => m.Key, m => m.Value.Price!.Value, StringComparer.Ordinal);
        FreeCalls = options.Accounts.Where(a => a.Value?.FreeCallsPerMonth > 0)
            .ToFrozenDictionary(a => a.Key, a => a.Value.FreeCallsPerMonth, StringComparer.Ordinal);
        // A suspension in configuration stays in configuration (it follows reloads); the ledger's own flag is the admin API's.
        Seeds = [.. options.Accounts.Where(a => a.Value is not null)
            .Select(a => new McpGuardAccountSeed(a.Key, a.Value.InitialBalance, a.Value.MonthlyCap))];
        PriceTexts = ToolPrices.Values.Concat(MethodPrices.Values).Append(DefaultPrice).Distinct()
            .ToFrozenDictionary(p => p, p => p.ToString(CultureInfo.InvariantCulture));
    }

    public bool Enabled { get; }

    public long DefaultPrice { get; }

    public string? TopUpUrl { get; }

    public TimeSpan UpstreamTimeout { get; }

    public bool RefundToolInternalErrors { get; }

    public FrozenSet<string> FreeMethods { get; }

    public FrozenDictionary<string, long> ToolPrices { get; }

    public FrozenDictionary<string, McpGuardToolStatus> ToolStatuses { get; }

    public FrozenDictionary<string, long> MethodPrices { get; }

    public FrozenDictionary<string, int> FreeCalls { get; }

    public IReadOnlyList<McpGuardAccountSeed> Seeds { get; }

    /// <summary>The price of a request: its tool's (or the default) for <c>tools/call</c>, its method's otherwise; free methods cost nothing.</summary>
    public long Price(McpEnvelope envelope)
    {
        if (envelope.Kind != McpMessageKind.Request || envelope.Method is not { } method || FreeMethods.Contains(method))
        {
            return 0;
        }

        if (envelope.IsToolCall)
        {
            return envelope.Name is { } tool && ToolPrices.TryGetValue(tool, out var price) ? price : DefaultPrice;
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
