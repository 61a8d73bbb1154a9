using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Protocol;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Tools;

/// <summary>
/// C# SDK list filters. <c>tools/list</c> shows an authenticated caller only the tools whose required scopes it holds
/// (<c>McpGuard:Auth:FilterToolList</c>, on by default); an anonymous caller sees only the tools that need no scope. Every
/// list (tools, prompts, resources, resource templates) carries each priced item's price in its <c>_meta</c> under
/// <c>mcpguard/price</c>, and the caller's balance and free calls in the result's <c>_meta</c> under
/// <c>mcpguard/account</c>. A server without McpGuard's services (<c>AddMcpGuard</c>) sees the lists unchanged. The
/// caller comes from the principal the SDK hands over with the message, so the filters also work when handlers run
/// outside the HTTP request (<c>PerSessionExecutionContext</c>).
/// </summary>
internal static class McpGuardToolListFilter
{
    public static McpRequestHandler<ListToolsRequestParams, ListToolsResult> Wrap(McpRequestHandler<ListToolsRequestParams, ListToolsResult> next) =>
        async (request, cancellationToken) =>
        {
            var result = await next(request, cancellationToken);
            if (request.Services?.GetService<McpGuardStateProvider>()?.Current is not { } state)
            {
                return result;
            }

            var caller = McpGuardCallerIdentity.Find(request.User)?.Caller;
            var auth = state.Auth;
            if (auth.Enabled && auth.FilterToolList)
            {
                result.Tools = [.. result.Tools.Where(tool => auth.ListsTool(tool.Name, caller))];
            }

            TagPrices(state.Credits, McpMethods.ToolsCall, result.Tools.Select(t => new PricedItem(t.Name, () => t.Meta, meta => t.Meta = meta)));
            await TagAccountAsync(request.Services, state, caller, result);
            return result;
        };

    public static McpRequestHandler<ListPromptsRequestParams, ListPromptsResult> WrapPrompts(McpRequestHandler<ListPromptsRequestParams, ListPromptsResult> next) =>
        WrapPriced(next, McpMethods.PromptsGet, result => result.Prompts.Select(p => new PricedItem(p.Name, () => p.Meta, meta => p.Meta = meta)));

    public static McpRequestHandler<ListResourcesRequestParams, ListResourcesResult> WrapResources(McpRequestHandler<ListResourcesRequestParams, ListResourcesResult> next) =>
        WrapPriced(next, McpMethods.ResourcesRead, result => result.Resources.Select(r => new PricedItem(null, () => r.Meta, meta => r.Meta = meta)));

    public static McpRequestHandler<ListResourceTemplatesRequestParams, ListResourceTemplatesResult> WrapResourceTemplates(McpRequestHandler<ListResourceTemplatesRequestParams, ListResourceTemplatesResult> next) =>
        WrapPriced(next, McpMethods.ResourcesRead, result => result.ResourceTemplates.Select(t => new PricedItem(null, () => t.Meta, meta => t.Meta = meta)));

    /// <summary>An item of a list, as its price needs it: its name (null where the price is the method's alone) and its <c>_meta</c>.</summary>
    private sealed record PricedItem(string? Name, Func<System.Text.Json.Nodes.JsonObject?> GetMeta, Action<System.Text.Json.Nodes.JsonObject> SetMeta);

    /// <summary>A list filter that prices each item as a call of <paramref name="method"/> would be, and adds the caller's account.</summary>
    private static McpRequestHandler<TParams, TResult> WrapPriced<TParams, TResult>(
        McpRequestHandler<TParams, TResult> next, string method, Func<TResult, IEnumerable<PricedItem>> items)
        where TResult : Result =>
        async (request, cancellationToken) =>
        {
            var result = await next(request, cancellationToken);
            if (request.Services?.GetService<McpGuardStateProvider>()?.Current is { } state)
            {
                TagPrices(state.Credits, method, items(result));
                if (state.Credits.Enabled && state.Credits.Price(method, null) > 0)
                {
                    // As the proxy does: the account goes with a list whose items cost something to use.
                    await TagAccountAsync(request.Services, state, McpGuardCallerIdentity.Find(request.User)?.Caller, result);
                }
            }

            return result;
        };

    /// <summary>Each item's price as a call of <paramref name="method"/> (taking out a price the server wrote on a free one).</summary>
    private static void TagPrices(CreditState credits, string method, IEnumerable<PricedItem> items)
    {
        foreach (var item in items)
        {
            DiscoveryMeta.Tag(DiscoveryMeta.PriceMeta, DiscoveryMeta.Price(credits, method, item.Name), item.GetMeta, item.SetMeta);
        }
    }

    private static async ValueTask TagAccountAsync(IServiceProvider services, McpGuardState state, McpGuardCaller? caller, Result result)
    {
        var account = services.GetService<IMcpGuardLedgerStore>() is { } ledger
            ? await DiscoveryMeta.AccountAsync(ledger, state, caller, services.GetService<TimeProvider>() ?? TimeProvider.System)
            : null;
        DiscoveryMeta.Tag(DiscoveryMeta.AccountMeta, account, () => result.Meta, meta => result.Meta = meta);
    }
}
