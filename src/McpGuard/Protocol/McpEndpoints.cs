using System.Reflection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;

namespace McpGuard.Protocol;

/// <summary>Which MCP transport an endpoint serves; in the order a closer look can only move forward.</summary>
internal enum McpEndpointKind
{
    /// <summary>Not an MCP endpoint.</summary>
    None,

    /// <summary>Streamable HTTP: the MCP endpoint itself (POST, and GET/DELETE for sessions).</summary>
    StreamableHttp,

    /// <summary>The legacy HTTP+SSE transport (<c>EnableLegacySse</c>): <c>GET …/sse</c> and <c>POST …/message</c>.</summary>
    LegacySse,
}

/// <summary>
/// Finds the app's MCP endpoints, the ones no request may reach unguarded. The rule: an endpoint is an MCP endpoint
/// when its handler is code of ModelContextProtocol.AspNetCore (the endpoint's request delegate, or the handler
/// method a route handler carries as metadata, is declared in that assembly), or when its display name is one
/// <c>MapMcp()</c> gives (<c>MCP Streamable HTTP | …</c>, <c>MCP HTTP with SSE | …</c>). The handler is the robust
/// signal: <c>MapMcp()</c> maps the SDK's own handlers whatever an app names or describes them, while display names
/// and response metadata are descriptions an app may change (and <c>MapMcp()</c>'s two groups describe themselves
/// differently). The display name is the second signal, for an endpoint whose delegate a convention has wrapped.
/// An endpoint of the legacy HTTP+SSE group is told apart by its handler type (<c>SseHandler</c>) or its display name.
/// </summary>
internal sealed class McpEndpoints
{
    internal const string SdkAssemblyName = "ModelContextProtocol.AspNetCore";
    private const string StreamableHttpDisplayName = "MCP Streamable HTTP";
    private const string LegacySseDisplayName = "MCP HTTP with SSE";
    private const string LegacySseHandlerType = "SseHandler";

    private LegacyRoutes? _cached;

    public static McpEndpointKind Classify(Endpoint endpoint) => Classify(endpoint.RequestDelegate, endpoint.Metadata, endpoint.DisplayName);

    public static McpEndpointKind Classify(Delegate? requestDelegate, IEnumerable<object> metadata, string? displayName)
    {
        bool fromSdk = false, legacy = false;
        foreach (var method in metadata.OfType<MethodInfo>().Append(requestDelegate?.Method))
        {
            var handler = method?.DeclaringType;
            while (handler?.DeclaringType is { } outer)
            {
                // A lambda's closure class sits inside the type that wrote the lambda.
                handler = outer;
            }

            if (handler is not null && string.Equals(handler.Assembly.GetName().Name, SdkAssemblyName, StringComparison.Ordinal))
            {
                fromSdk = true;
                legacy |= handler.Name == LegacySseHandlerType;
            }
        }

        if (legacy || (displayName?.StartsWith(LegacySseDisplayName, StringComparison.Ordinal) ?? false))
        {
            return McpEndpointKind.LegacySse;
        }

        return fromSdk || (displayName?.StartsWith(StreamableHttpDisplayName, StringComparison.Ordinal) ?? false)
            ? McpEndpointKind.StreamableHttp
            : McpEndpointKind.None;
    }

    /// <summary>The path a route matches when it has no parameters (<c>/mcp/sse</c>); null when it has any.</summary>
    public static string? LiteralPath(RoutePattern pattern)
    {
        var path = new System.Text.StringBuilder();
        foreach (var segment in pattern.PathSegments)
        {
            if (segment.Parts is not [RoutePatternLiteralPart literal])
            {
                return null;
            }

            path.Append('/').Append(literal.Content);
        }

        return path.Length == 0 ? "/" : path.ToString();
    }

    /// <summary>Whether <paramref name="requestPath"/> is <paramref name="path"/>, ignoring case and one trailing slash.</summary>
    public static bool IsPath(PathString requestPath, string path)
    {
        var value = requestPath.Value.AsSpan();
        if (value.Length > 1 && value[^1] == '/')
        {
            value = value[..^1];
        }

        var target = path.AsSpan();
        if (target.Length > 1 && target[^1] == '/')
        {
            target = target[..^1];
        }

        return value.Equals(target, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Whether <c>UseMcpGuard()</c> with <paramref name="guardedPath"/> guards an MCP endpoint: the Streamable HTTP
    /// endpoint at the path itself, and the legacy SSE routes <c>MapMcp()</c> maps under it.
    /// </summary>
    public static bool GuardedByPath(RouteEndpoint endpoint, McpEndpointKind kind, PathString guardedPath)
    {
        if (LiteralPath(endpoint.RoutePattern) is not { } route)
        {
            return false;
        }

        if (IsPath(new PathString(route), guardedPath.Value!))
        {
            return true;
        }

        var prefix = guardedPath.Value == "/" ? "/" : guardedPath.Value + "/";
        return kind == McpEndpointKind.LegacySse && route.StartsWith(prefix, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Whether a request to <paramref name="requestPath"/> goes to a legacy SSE route of <c>MapMcp()</c> under
    /// <paramref name="guardedPath"/>. Matched on the path, like the guarded path itself, so it does not depend on
    /// where routing runs. The routes are found once per guarded path.
    /// </summary>
    public bool IsLegacyRouteUnder(PathString guardedPath, PathString requestPath, IServiceProvider services)
    {
        var routes = _cached is { } cached && cached.GuardedPath == guardedPath ? cached : (_cached = Find(guardedPath, services));
        foreach (var route in routes.Paths)
        {
            if (IsPath(requestPath, route))
            {
                return true;
            }
        }

        return false;
    }

    private static LegacyRoutes Find(PathString guardedPath, IServiceProvider services)
    {
        var paths = new List<string>();
        if (services.GetService(typeof(EndpointDataSource)) is EndpointDataSource dataSource)
        {
            foreach (var endpoint in dataSource.Endpoints)
            {
                if (endpoint is RouteEndpoint route
                    && Classify(endpoint) == McpEndpointKind.LegacySse
                    && GuardedByPath(route, McpEndpointKind.LegacySse, guardedPath)
                    && LiteralPath(route.RoutePattern) is { } literal)
                {
                    paths.Add(literal);
                }
            }
        }

        return new LegacyRoutes(guardedPath, [.. paths.Distinct(StringComparer.OrdinalIgnoreCase)]);
    }

    private sealed record LegacyRoutes(PathString GuardedPath, string[] Paths);
}
