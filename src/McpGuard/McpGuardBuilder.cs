using Microsoft.Extensions.DependencyInjection;

namespace McpGuard;

/// <summary>
/// Returned by <c>AddMcpGuard</c>. To keep McpGuard's state somewhere of your own, register your implementation of
/// <see cref="IMcpGuardApiKeyStore"/>, <see cref="IMcpGuardAccountStatusStore"/>, <see cref="IMcpGuardToolStatusStore"/> or
/// <see cref="IMcpGuardLedgerStore"/> as a singleton in <see cref="Services"/>: it replaces McpGuard's own.
/// </summary>
public sealed class McpGuardBuilder
{
    internal McpGuardBuilder(IServiceCollection services) => Services = services;

    /// <summary>The application's services.</summary>
    public IServiceCollection Services { get; }
}
