using McpGuard.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace McpGuard.Redis;

/// <summary>
/// Registers McpGuard.Redis's <see cref="IMcpGuardRateLimitStore"/>, keyed by <see cref="McpGuardStores.RedisKey"/>: McpGuard
/// resolves it only when <c>McpGuard:RateLimits:Store</c> is <c>Redis</c>. It connects on first use.
/// </summary>
internal static class RedisRegistration
{
    public static void Add(IServiceCollection services) =>
        services.TryAddKeyedSingleton<IMcpGuardRateLimitStore>(
            McpGuardStores.RedisKey,
            static (sp, _) => new RedisRateLimitStore(sp.GetRequiredService<McpGuardStateProvider>()));
}
