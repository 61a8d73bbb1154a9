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

            foreach (var tool in result.Tools)
            {
                DiscoveryMeta.Tag(DiscoveryMeta.Price(state.Credits, McpMethods.ToolsCall, tool.Name), () => tool.Meta, meta => tool.Meta = meta);
            }

            await TagAccountAsync(request.Services, state, caller, result);
            return result;
        };

    public static McpRequestHandler<ListPromptsRequestParams, ListPromptsResult> WrapPrompts(McpRequestHandler<ListPromptsRequestParams, ListPromptsResult> next) =>
        async (request, cancellationToken) =>
        {
            var result = await next(request, cancellationToken);
            if (request.Services?.GetService<McpGuardStateProvider>()?.Current is { } state)
            {
                foreach (var prompt in result.Prompts)
                {
                    DiscoveryMeta.Tag(DiscoveryMeta.Price(state.Credits, McpMethods.PromptsGet, prompt.Name), () => prompt.Meta, meta => prompt.Meta = meta);
                }

                await TagAccountAsync(request.Services, state, McpGuardCallerIdentity.Find(request.User)?.Caller, result);
            }

            return result;
        };

    public static McpRequestHandler<ListResourcesRequestParams, ListResourcesResult> WrapResources(McpRequestHandler<ListResourcesRequestParams, ListResourcesResult> next) =>
        async (request, cancellationToken) =>
        {
            var result = await next(request, cancellationToken);
            if (request.Services?.GetService<McpGuardStateProvider>()?.Current is { } state)
            {
                foreach (var resource in result.Resources)
                {
                    DiscoveryMeta.Tag(DiscoveryMeta.Price(state.Credits, McpMethods.ResourcesRead, null), () => resource.Meta, meta => resource.Meta = meta);
                }

                await TagAccountAsync(request.Services, state, McpGuardCallerIdentity.Find(request.User)?.Caller, result);
            }

            return result;
        };

    public static McpRequestHandler<ListResourceTemplatesRequestParams, ListResourceTemplatesResult> WrapResourceTemplates(McpRequestHandler<ListResourceTemplatesRequestParams, ListResourceTemplatesResult> next) =>
        async (request, cancellationToken) =>
        {
            var result = await next(request, cancellationToken);
            if (request.Services?.GetService<McpGuardStateProvider>()?.Current is { } state)
            {
                foreach (var template in result.ResourceTemplates)
                {
                    DiscoveryMeta.Tag(DiscoveryMeta.Price(state.Credits, McpMethods.ResourcesRead, null), () => template.Meta, meta => template.Meta = meta);
                }

                await TagAccountAsync(request.Services, state, McpGuardCallerIdentity.Find(request.User)?.Caller, result);
            }

            return result;
        };

    private static async ValueTask TagAccountAsync(IServiceProvider services, McpGuardState state, McpGuardCaller? caller, Result result)
    {
        if (services.GetService<IMcpGuardLedgerStore>() is not { } ledger
            || await DiscoveryMeta.AccountAsync(ledger, state, caller, services.GetService<TimeProvider>() ?? TimeProvider.System) is not { } account)
        {
            return;
        }

        (result.Meta ??= [])[DiscoveryMeta.AccountMeta] = account;
    }
}
