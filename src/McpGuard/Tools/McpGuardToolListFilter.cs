using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Tools;

/// <summary>
/// A C# SDK list-tools filter: shows an authenticated caller only the tools whose required scopes it holds
/// (<c>McpGuard:Auth:FilterToolList</c>, on by default). Anonymous callers and unguarded servers see the list unchanged.
/// </summary>
internal static class McpGuardToolListFilter
{
    public static McpRequestHandler<ListToolsRequestParams, ListToolsResult> Wrap(McpRequestHandler<ListToolsRequestParams, ListToolsResult> next) =>
        async (request, cancellationToken) =>
        {
            var result = await next(request, cancellationToken);
            var feature = request.Services?.GetService<IHttpContextAccessor>()?.HttpContext?.Features.Get<McpGuardFeature>();
            if (feature?.Caller is not { } caller || !feature.State.Auth.FilterToolList)
            {
                return result;
            }

            var auth = feature.State.Auth;
            result.Tools = [.. result.Tools.Where(tool => caller.HasAll(auth.ToolRequiredScopes(tool.Name)))];
            return result;
        };
}
