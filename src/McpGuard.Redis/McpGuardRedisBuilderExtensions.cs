using McpGuard;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds McpGuard.Redis to McpGuard.</summary>
public static class McpGuardRedisBuilderExtensions
{
    /// <summary>
    /// Makes Redis available for McpGuard's rate-limit counters. It is used when <c>McpGuard:RateLimits:Store</c> is
    /// <c>Redis</c>, with <c>McpGuard:Redis:Configuration</c> (a StackExchange.Redis configuration string); otherwise
    /// the counters stay in process, so an app can add this once and choose in configuration.
    /// </summary>
    /// <example>
    /// <code>
    /// builder.Services.AddMcpGuard().AddMcpGuardRedis();
    /// // appsettings.json: "McpGuard": { "RateLimits": { "Store": "Redis" }, "Redis": { "Configuration": "localhost:6379" } }
    /// </code>
    /// </example>
    public static McpGuardBuilder AddMcpGuardRedis(this McpGuardBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        McpGuard.Redis.RedisRegistration.Add(builder.Services);
        return builder;
    }
}
