using McpGuard;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Puts McpGuard in front of an MCP endpoint.</summary>
public static class McpGuardApplicationBuilderExtensions
{
    /// <summary>
    /// Guards every request to <see cref="McpGuardOptions.Path"/> (default <c>/mcp</c>), whatever serves it:
    /// <c>MapMcp()</c>, an endpoint of your own, or a proxy. Place it after routing, authentication
    /// and CORS, before the endpoint.
    /// </summary>
    /// <exception cref="InvalidOperationException"><c>AddMcpGuard</c> was not called.</exception>
    public static IApplicationBuilder UseMcpGuard(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        McpGuardMarkerService.EnsureRegistered(app.ApplicationServices);
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
            endpoint.RequestDelegate = context => pipeline.InvokeAsync(context, inner);
        });
        return builder;
    }
}
