using McpGuard;
using McpGuard.Proxy;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds McpGuard.Proxy to McpGuard.</summary>
public static class McpGuardProxyBuilderExtensions
{
    /// <summary>
    /// Adds what <c>app.MapMcpGuardProxy()</c> needs: YARP's <c>IHttpForwarder</c> and McpGuard's proxy, which forwards
    /// guarded requests to <c>McpGuard:Upstream:Url</c>. The app does not start without that URL.
    /// </summary>
    /// <example>
    /// <code>
    /// builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")).AddMcpGuardProxy();
    /// // appsettings.json: "McpGuard": { "Upstream": { "Url": "http://127.0.0.1:3001/mcp" } }
    /// app.MapMcpGuardProxy("/mcp");
    /// </code>
    /// </example>
    public static McpGuardBuilder AddMcpGuardProxy(this McpGuardBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddHttpForwarder();
        services.TryAddSingleton<UpstreamProxy>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<McpGuardOptions>, UpstreamRequired>());
        return builder;
    }
}
