using McpGuard.Protocol;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard;

/// <summary>
/// The start-up check that no MCP endpoint is left unguarded. When the app's pipeline is built (its endpoints are
/// mapped by then), every MCP endpoint (<see cref="McpEndpoints"/>) must be guarded: by <c>UseMcpGuard()</c>, which
/// guards <c>McpGuard:Path</c> and the legacy SSE routes <c>MapMcp()</c> maps under it, or by <c>RequireMcpGuard()</c>.
/// Otherwise the app does not start, and the exception names each unguarded route and the fix.
/// </summary>
internal sealed class McpGuardEndpointCheck(McpGuardMarkerService marker, McpGuardStateProvider states) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        next(app);
        Verify(app.ApplicationServices);
    };

    private void Verify(IServiceProvider services)
    {
        if (services.GetService<EndpointDataSource>() is not { } dataSource)
        {
            return;
        }

        var path = states.Current.Path;
        var unguarded = new List<string>();
        foreach (var endpoint in dataSource.Endpoints)
        {
            var kind = McpEndpoints.Classify(endpoint);
            if (kind == McpEndpointKind.None
                || endpoint.Metadata.GetMetadata<McpGuardRequiredMetadata>() is not null
                || (marker.UseMcpGuardCalled && endpoint is RouteEndpoint route && McpEndpoints.GuardedByPath(route, kind, path)))
            {
                continue;
            }

            unguarded.Add(Describe(endpoint));
        }

        if (unguarded.Count == 0)
        {
            return;
        }

        var routes = string.Join(", ", unguarded);
        throw new InvalidOperationException(marker.UseMcpGuardCalled
            ? $"McpGuard: these MCP endpoints are not guarded: {routes}. UseMcpGuard() guards McpGuard:Path ('{path}') and the "
                + "legacy SSE routes MapMcp() maps under it (…/sse, …/message). Map the MCP endpoint at McpGuard:Path, set McpGuard:Path "
                + "to its route, or guard it where it is mapped: app.MapMcp(\"…\").RequireMcpGuard()."
            : $"McpGuard: these MCP endpoints are not guarded: {routes}. Call app.UseMcpGuard() before mapping them (it guards "
                + $"McpGuard:Path, '{path}', and the legacy SSE routes MapMcp() maps under it), or guard them where they are mapped: "
                + "app.MapMcp(\"…\").RequireMcpGuard().");
    }

    /// <summary><c>POST /mcp/message</c>: the HTTP methods and the route.</summary>
    private static string Describe(Endpoint endpoint)
    {
        var methods = endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods is { Count: > 0 } list ? string.Join("|", list) : "*";
        var route = endpoint is RouteEndpoint routeEndpoint
            ? McpEndpoints.LiteralPath(routeEndpoint.RoutePattern) ?? routeEndpoint.RoutePattern.RawText ?? "/"
            : endpoint.DisplayName ?? "(unnamed)";
        return $"{methods} {route}";
    }
}

/// <summary>Marks an endpoint that <c>RequireMcpGuard()</c> guards, with the MCP transport it serves (known once the endpoint is built).</summary>
internal sealed class McpGuardRequiredMetadata(McpEndpointKind kind)
{
    /// <summary>Set when the endpoint is built, read by every request after.</summary>
    public McpEndpointKind Kind { get; set; } = kind;
}
