using System.Diagnostics.CodeAnalysis;
using McpGuard.Proxy;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps McpGuard's proxy: a guarded MCP endpoint whose calls an upstream MCP server answers.</summary>
public static class McpGuardProxyEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps <c>POST</c>, <c>GET</c> and <c>DELETE</c> on <paramref name="pattern"/> to the MCP server at
    /// <c>McpGuard:Upstream:Url</c>, guarded as <c>RequireMcpGuard()</c> guards an endpoint: every gate runs first, the
    /// upstream's answer settles the charge, and <c>tools/list</c> answers are filtered by the caller's scopes. The
    /// caller's API key or token never goes upstream; <c>McpGuard:Upstream:Credential</c> can add one of the gateway's own.
    /// Also serves the RFC 9728 protected-resource metadata (<c>/.well-known/oauth-protected-resource…</c>) that its 401
    /// challenges point to.
    /// </summary>
    /// <param name="endpoints">The app.</param>
    /// <param name="pattern">The route clients call, conventionally <c>/mcp</c>.</param>
    /// <returns>A builder for conventions (CORS, authorization, rate limiting of your own) on the proxy's endpoint.</returns>
    /// <exception cref="InvalidOperationException"><c>AddMcpGuard().AddMcpGuardProxy()</c> was not called.</exception>
    public static IEndpointConventionBuilder MapMcpGuardProxy(this IEndpointRouteBuilder endpoints, [StringSyntax("Route")] string pattern = "/mcp")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        var proxy = endpoints.ServiceProvider.GetService<UpstreamProxy>()
            ?? throw new InvalidOperationException(
                "MapMcpGuardProxy() needs McpGuard's proxy services: call builder.Services.AddMcpGuard(…).AddMcpGuardProxy() before building the app.");
        // The guard is the resource server here, so it serves the RFC 9728 metadata its 401 challenges point to (as
        // UseMcpGuard() does); the paths follow McpGuard:Auth:Resource, so every request reads them from the current state.
        endpoints.MapMethods("/.well-known/oauth-protected-resource/{**resource}", ["GET", "HEAD"], proxy.WriteMetadataAsync)
            .WithDisplayName("McpGuard protected-resource metadata");
        endpoints.MapMethods("/.well-known/oauth-protected-resource", ["GET", "HEAD"], proxy.WriteMetadataAsync)
            .WithDisplayName("McpGuard protected-resource metadata (root)");
        return endpoints.MapMethods(pattern, ["POST", "GET", "DELETE"], proxy.ForwardAsync)
            .WithDisplayName("McpGuard proxy " + pattern)
            .RequireMcpGuard();
    }
}
