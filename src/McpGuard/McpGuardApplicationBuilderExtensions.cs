using McpGuard;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Puts McpGuard in front of an MCP endpoint.</summary>
public static class McpGuardApplicationBuilderExtensions
{
    /// <summary>
    /// Guards every request to <see cref="McpGuardOptions.Path"/> (default <c>/mcp</c>), whatever serves it:
    /// <c>MapMcp()</c>, an endpoint of your own, or a proxy, and the legacy SSE routes (<c>…/sse</c>,
    /// <c>…/message</c>) that <c>MapMcp()</c> maps under it. Place it after routing, authentication and CORS, before
    /// the endpoint. The app does not start while an MCP endpoint is guarded neither here nor by <c>RequireMcpGuard()</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException"><c>AddMcpGuard</c> was not called.</exception>
    public static IApplicationBuilder UseMcpGuard(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        McpGuardMarkerService.EnsureRegistered(app.ApplicationServices);
        app.ApplicationServices.GetRequiredService<McpGuardMarkerService>().UseMcpGuardCalled = true;
        return app.UseMiddleware<McpGuardMiddleware>();
    }

    /// <summary>
    /// Guards the endpoints this builder produces (for example <c>app.MapPost("/mcp", …).RequireMcpGuard()</c>
    /// or <c>app.MapMcp().RequireMcpGuard()</c>), regardless of <see cref="McpGuardOptions.Path"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException"><c>AddMcpGuard</c> was not called (thrown when the endpoints are built).</exception>
    public static TBuilder RequireMcpGuard<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Add(endpoint =>
        {
            McpGuardMarkerService.EnsureRegistered(endpoint.ApplicationServices);
            var pipeline = endpoint.ApplicationServices.GetRequiredService<McpGuardPipeline>();
            var inner = endpoint.RequestDelegate
                ?? throw new InvalidOperationException($"RequireMcpGuard() needs an endpoint with a request delegate; '{endpoint.DisplayName}' has none.");
            var guard = new McpGuardRequiredMetadata(McpEndpoints.Classify(inner, endpoint.Metadata, endpoint.DisplayName));
            endpoint.Metadata.Add(guard);
            endpoint.RequestDelegate = context => pipeline.InvokeAsync(context, inner, guard.Kind == McpEndpointKind.LegacySse);
        });

        try
        {
            // MapMcp() names and describes its endpoints in conventions that run after this one: look again once they ran.
            builder.Finally(endpoint =>
            {
                if (endpoint.Metadata.OfType<McpGuardRequiredMetadata>().LastOrDefault() is { } guard
                    && McpEndpoints.Classify(null, endpoint.Metadata, endpoint.DisplayName) is var kind && kind > guard.Kind)
                {
                    guard.Kind = kind;
                }
            });
        }
        catch (NotImplementedException)
        {
            // A convention builder without finally conventions: what the endpoint showed at first is all there is.
        }

        return builder;
    }
}
