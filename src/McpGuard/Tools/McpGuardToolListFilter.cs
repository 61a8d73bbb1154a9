using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Tools;

/// <summary>
/// A C# SDK list-tools filter: shows an authenticated caller only the tools whose required scopes it holds
/// (<c>McpGuard:Auth:FilterToolList</c>, on by default). An anonymous caller sees only the tools that need no scope;
/// servers McpGuard does not front see the list unchanged.
/// </summary>
internal static class McpGuardToolListFilter
{
    public static McpRequestHandler<ListToolsRequestParams, ListToolsResult> Wrap(McpRequestHandler<ListToolsRequestParams, ListToolsResult> next) =>
        async (request, cancellationToken) =>
        {
            var result = await next(request, cancellationToken);
            var feature = request.Services?.GetService<IHttpContextAccessor>()?.HttpContext?.Features.Get<McpGuardFeature>();
            if (feature is null || !feature.State.Auth.Enabled || !feature.State.Auth.FilterToolList)
            {
                return result;
            }

            // An anonymous caller (tools/list in AnonymousMethods) sees only the tools that need no scope.
            var auth = feature.State.Auth;
            var caller = feature.Caller;
            result.Tools = [.. result.Tools.Where(tool => auth.ToolRequiredScopes(tool.Name) is var required && (required.Length == 0 || (caller?.HasAll(required) ?? false)))];
            return result;
        };
}
