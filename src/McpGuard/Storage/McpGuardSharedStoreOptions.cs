namespace McpGuard;

/// <summary>PostgreSQL for McpGuard's stores (<c>McpGuard:PostgreSql</c>; package McpGuard.PostgreSql).</summary>
/// <example>
/// <code>
/// "McpGuard": {
///   "Store": "PostgreSql",
///   "PostgreSql": { "ConnectionString": "Host=db;Database=app;Username=mcpguard;Password=..." }
/// }
/// </code>
/// </example>
internal sealed class McpGuardPostgreSqlOptions
{
    /// <summary>An Npgsql connection string. Required when <c>McpGuard:Store</c> is <c>PostgreSql</c>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>The schema McpGuard's tables live in, created on start. Default <c>mcpguard</c>.</summary>
    public string Schema { get; set; } = "mcpguard";
}

/// <summary>Redis for McpGuard's rate-limit counters (<c>McpGuard:Redis</c>; package McpGuard.Redis).</summary>
/// <example>
/// <code>
/// "McpGuard": {
///   "RateLimits": { "Store": "Redis" },
///   "Redis": { "Configuration": "redis-1:6379,redis-2:6379" }
/// }
/// </code>
/// </example>
internal sealed class McpGuardRedisOptions
{
    /// <summary>A StackExchange.Redis configuration string. Required when <c>McpGuard:RateLimits:Store</c> is <c>Redis</c>.</summary>
    public string? Configuration { get; set; }

    /// <summary>Prefix of every key McpGuard writes. Default <c>mcpguard:</c>.</summary>
    public string KeyPrefix { get; set; } = "mcpguard:";
}
