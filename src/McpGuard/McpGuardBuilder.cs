using Microsoft.Extensions.DependencyInjection;

namespace McpGuard;

/// <summary>Returned by <c>AddMcpGuard</c>; the optional parts of McpGuard hang off it.</summary>
public sealed class McpGuardBuilder
{
    internal McpGuardBuilder(IServiceCollection services) => Services = services;

    /// <summary>The application's services.</summary>
    public IServiceCollection Services { get; }
}
