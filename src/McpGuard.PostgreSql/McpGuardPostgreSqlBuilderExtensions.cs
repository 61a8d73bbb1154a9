using McpGuard;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds McpGuard.PostgreSql to McpGuard.</summary>
public static class McpGuardPostgreSqlBuilderExtensions
{
    /// <summary>
    /// Makes PostgreSQL available for McpGuard's stores (the ledger, API keys, account and tool statuses). It is used when
    /// <c>McpGuard:Store</c> is <c>PostgreSql</c>, with <c>McpGuard:PostgreSql:ConnectionString</c>; otherwise the stores
    /// stay McpGuard's own, so an app can add this once and choose in configuration.
    /// </summary>
    /// <example>
    /// <code>
    /// builder.Services.AddMcpGuard().AddMcpGuardPostgreSql();
    /// // appsettings.json: "McpGuard": { "Store": "PostgreSql", "PostgreSql": { "ConnectionString": "Host=db;Database=app;Username=mcpguard" } }
    /// </code>
    /// </example>
    public static McpGuardBuilder AddMcpGuardPostgreSql(this McpGuardBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        McpGuard.PostgreSql.PostgreSqlRegistration.Add(builder.Services);
        return builder;
    }
}
