using McpGuard.Auth;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;

namespace McpGuard;

/// <summary>
/// The middleware behind <c>app.UseMcpGuard()</c>: guards requests to the configured path and to the legacy SSE routes
/// <c>MapMcp()</c> maps under it, passes the rest on.
/// </summary>
internal sealed class McpGuardMiddleware(RequestDelegate next, McpGuardPipeline pipeline, McpGuardStateProvider states, McpEndpoints endpoints)
{
    public Task InvokeAsync(HttpContext context)
    {
        var state = states.Current;
        if (ProtectedResourceMetadataEndpoint.Matches(context, state.Auth))
        {
            return ProtectedResourceMetadataEndpoint.WriteAsync(context, state.Auth);
        }

        var path = state.Path;
        var requestPath = context.Request.Path;
        if (requestPath.Equals(path, StringComparison.OrdinalIgnoreCase)
            || (requestPath.Value is { Length: > 1 } value && value[^1] == '/' && path.Value.AsSpan().Equals(value.AsSpan(0, value.Length - 1), StringComparison.OrdinalIgnoreCase)))
        {
            return pipeline.InvokeAsync(context, next);
        }

        if (endpoints.IsLegacyRouteUnder(path, requestPath, context.RequestServices))
        {
            return pipeline.InvokeAsync(context, next, legacySse: true);
        }

        return next(context);
    }
}
