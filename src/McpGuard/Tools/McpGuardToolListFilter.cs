using McpGuard.Auth;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Tools;

/// <summary>
/// A C# SDK list-tools filter: shows an authenticated caller only the tools whose required scopes it holds
/// (<c>McpGuard:Auth:FilterToolList</c>, on by default). An anonymous caller sees only the tools that need no scope;
/// a server without McpGuard's services (<c>AddMcpGuard</c>) sees the list unchanged. The caller comes from the
/// principal the SDK hands over with the message, so the filter also works when handlers run outside the HTTP request
/// (<c>PerSessionExecutionContext</c>).
/// </summary>
internal static class McpGuardToolListFilter
{
    public static McpRequestHandler<ListToolsRequestParams, ListToolsResult> Wrap(McpRequestHandler<ListToolsRequestParams, ListToolsResult> next) =>
        async (request, cancellationToken) =>
        {
            var result = await next(request, cancellationToken);
            var auth = request.Services?.GetService<McpGuardStateProvider>()?.Current.Auth;
            if (auth is null || !auth.Enabled || !auth.FilterToolList)
            {
                return result;
            }

            var caller = McpGuardCallerIdentity.Find(request.User)?.Caller;
            result.Tools = [.. result.Tools.Where(tool => auth.ListsTool(tool.Name, caller))];
            return result;
        };
}
