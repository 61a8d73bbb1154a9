using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Redis;

/// <summary>Registers McpGuard.Redis's services (to be built: the store keyed by McpGuardStores.RedisKey).</summary>
internal static class RedisRegistration
{
    public static void Add(IServiceCollection services)
    {
    }
}
