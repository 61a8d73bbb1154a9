using System.Text.Json.Nodes;
using McpGuard.Auth;
using McpGuard.Protocol;

namespace McpGuard.Credits;

/// <summary>
/// What a list result tells a buyer before it pays: each priced tool's (prompt's, resource's) price in its <c>_meta</c>
/// under <c>mcpguard/price</c>, and the caller's own balance and free calls in the list result's <c>_meta</c> under
/// <c>mcpguard/account</c>. Shared by <c>WithMcpGuard()</c>'s list filters and the proxy's list rewriter.
/// </summary>
internal static class DiscoveryMeta
{
    public const string PriceMeta = "mcpguard/price";

    public const string AccountMeta = "mcpguard/account";

    /// <summary>
    /// The price of calling an item of a list: <c>{"amount_micro": 800, "unit": "call"}</c>, and for a metered tool also
    /// <c>per_unit_micro</c> and <c>max_micro</c> (<c>amount_micro</c> is then the maximum, what a ceiling is compared with).
    /// Null when the call is free (or credits are off).
    /// </summary>
    public static JsonObject? Price(CreditState credits, string method, string? name)
    {
        var price = credits.Enabled ? credits.Price(method, name) : 0;
        if (price <= 0)
        {
            return null;
        }

        var tag = new JsonObject { ["amount_micro"] = price, ["unit"] = "call" };
        if (method == McpMethods.ToolsCall && name is not null && credits.Meters.TryGetValue(name, out var meter))
        {
            tag["per_unit_micro"] = meter.PerUnitMicro;
            tag["max_micro"] = meter.MaxMicro;
        }

        return tag;
    }

    /// <summary>
    /// Puts <paramref name="value"/> in a <c>_meta</c> under <paramref name="key"/> (making the <c>_meta</c> when there is
    /// none); without a value, takes out the key the server put there itself: only McpGuard says what a call costs, or
    /// what an account holds. The SDK's objects and the proxy's JSON reach their <c>_meta</c> through the two delegates.
    /// </summary>
    public static void Tag(string key, JsonNode? value, Func<JsonObject?> getMeta, Action<JsonObject> setMeta)
    {
        if (value is null)
        {
            getMeta()?.Remove(key);
            return;
        }

        var meta = getMeta();
        if (meta is null)
        {
            meta = [];
            setMeta(meta);
        }

        meta[key] = value;
    }

    /// <summary>
    /// The caller's account as a list result shows it: <c>balance_micro</c>, <c>free_calls_left</c>, and the monthly cap with
    /// this month's spend when it has one. Null for an unknown caller, with credits off, or when the ledger does not answer in
    /// time (the list goes out without it).
    /// </summary>
    public static async ValueTask<JsonObject?> AccountAsync(IMcpGuardLedgerStore ledger, McpGuardState state, McpGuardCaller? caller, TimeProvider clock)
    {
        if (caller is null || !state.Credits.Enabled)
        {
            return null;
        }

        McpGuardAccount? account;
        try
        {
            using var timeout = new CancellationTokenSource(state.Options.StoreTimeout);
            account = await ledger.GetAccountAsync(caller.Account, state.Credits.FreeCallsFor(caller.Account), clock.GetUtcNow(), timeout.Token);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return null;
        }

        var tag = new JsonObject
        {
            ["account"] = caller.Account,
            ["balance_micro"] = account?.BalanceMicro ?? 0,
            ["free_calls_left"] = account?.FreeCallsLeft ?? state.Credits.FreeCallsFor(caller.Account),
        };
        if (account?.MonthlyCapMicro is { } cap)
        {
            tag["monthly_cap_micro"] = cap;
            tag["spent_this_month_micro"] = account.SpentThisMonthMicro;
        }

        if (caller.MaxPriceMicro is { } ceiling)
        {
            tag["max_price_micro"] = ceiling;
        }

        return tag;
    }
}
