using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.PostgreSql;

/// <summary>Registers McpGuard.PostgreSql's services (to be built: the four stores keyed by McpGuardStores.PostgreSqlKey).</summary>
internal static class PostgreSqlRegistration
{
    public static void Add(IServiceCollection services)
    {
    }
}
