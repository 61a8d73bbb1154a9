using McpGuard.Telemetry;

namespace McpGuard;

/// <summary>
/// McpGuard's configuration, bound from the section passed to <c>AddMcpGuard</c> (conventionally <c>"McpGuard"</c>).
/// Validated at start-up; every problem is reported at once.
/// </summary>
/// <example>
/// <code>
/// "McpGuard": {
///   "Path": "/mcp",
///   "MaxRequestBodySize": 1048576,
///   "AllowedOrigins": [ "https://app.example.com" ],
///   "RequestIdHeader": "X-Request-Id",
///   "Errors": { "Format": "JsonRpc" }
/// }
/// </code>
/// </example>
internal sealed class McpGuardOptions
{
    /// <summary>The MCP endpoint <c>app.UseMcpGuard()</c> guards. Default <c>/mcp</c>. Ignored by <c>RequireMcpGuard()</c>, which guards the endpoint it is attached to.</summary>
    public string Path { get; set; } = "/mcp";

    /// <summary>The largest request body accepted, in bytes; a larger one gets 413. Default 1 MiB.</summary>
    public long MaxRequestBodySize { get; set; } = 1024 * 1024;

    /// <summary>The deepest JSON nesting accepted in a body; deeper is a parse error. Default 64.</summary>
    public int MaxJsonDepth { get; set; } = 64;

    /// <summary>
    /// Web origins allowed to call the endpoint (exact <c>scheme://host[:port]</c>, or <c>*</c> for any).
    /// A request that carries an <c>Origin</c> header not in this list gets 403 (DNS-rebinding protection).
    /// Requests without <c>Origin</c> (non-browser clients) are not affected. Default: empty, so no browser origin is allowed.
    /// </summary>
    public IList<string> AllowedOrigins { get; } = [];

    /// <summary>
    /// The header that carries the request id on every response (and is read from the request when well-formed).
    /// Default <c>X-Request-Id</c>.
    /// </summary>
    public string RequestIdHeader { get; set; } = "X-Request-Id";

    /// <summary>
    /// Where McpGuard keeps what changes at run time (API keys created by the admin API, account suspensions, tool
    /// statuses and the credit ledger): <see cref="McpGuardStoreKind.Sqlite"/> (the default), one file at
    /// <see cref="SqlitePath"/>, or <see cref="McpGuardStoreKind.InMemory"/>, gone on restart. A store you register
    /// yourself (for example <c>services.AddSingleton&lt;IMcpGuardLedgerStore, MyLedger&gt;()</c>) replaces McpGuard's.
    /// </summary>
    public McpGuardStoreKind? Store { get; set; }

    /// <summary>The SQLite file, absolute or relative to the content root. Created and migrated on start. Default <c>mcpguard-ledger.db</c>.</summary>
    public string? SqlitePath { get; set; }

    /// <summary>PostgreSQL, when <see cref="Store"/> is <see cref="McpGuardStoreKind.PostgreSql"/> (package McpGuard.PostgreSql).</summary>
    public McpGuardPostgreSqlOptions PostgreSql { get; } = new();

    /// <summary>Redis, when <c>RateLimits:Store</c> is <see cref="McpGuardRateLimitStoreKind.Redis"/> (package McpGuard.Redis).</summary>
    public McpGuardRedisOptions Redis { get; } = new();

    /// <summary>The MCP server <c>MapMcpGuardProxy()</c> forwards to (package McpGuard.Proxy).</summary>
    public McpGuardUpstreamOptions Upstream { get; } = new();

    /// <summary>
    /// The longest McpGuard waits for a shared store (Redis, PostgreSQL, or a store of your own) to answer one call
    /// before treating it as unavailable. Between 100 ms and 1 minute. Default 2 seconds.
    /// </summary>
    public TimeSpan StoreTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Error rendering and catalog overrides.</summary>
    public McpGuardErrorOptions Errors { get; } = new();

    /// <summary>Authentication: API keys, JWT bearer tokens, protected-resource metadata.</summary>
    public McpGuardAuthOptions Auth { get; } = new();

    /// <summary>Spend and credit gates: prices, balances, caps, the ledger.</summary>
    public McpGuardCreditOptions Credits { get; } = new();

    /// <summary>Rate limits: policies, the default policy, which methods count.</summary>
    public McpGuardRateLimitOptions RateLimits { get; } = new();

    /// <summary>Metrics and traces (meter and activity source <c>McpGuard</c>).</summary>
    public McpGuardTelemetryOptions Telemetry { get; } = new();

    /// <summary>The admin API (<c>MapMcpGuardAdmin</c>): how it is protected.</summary>
    public McpGuardAdminOptions Admin { get; } = new();

    /// <summary>Per-tool policies (scopes, rate limit), keyed by tool name.</summary>
    public IDictionary<string, McpGuardToolPolicy> Tools { get; } = new Dictionary<string, McpGuardToolPolicy>(StringComparer.Ordinal);

    /// <summary>Per-method policies (scopes) for MCP methods other than <c>tools/call</c>, keyed by method.</summary>
    public IDictionary<string, McpGuardMethodPolicy> Methods { get; } = new Dictionary<string, McpGuardMethodPolicy>(StringComparer.Ordinal);

    /// <summary>Accounts known from configuration, keyed by account id.</summary>
    public IDictionary<string, McpGuardAccountOptions> Accounts { get; } = new Dictionary<string, McpGuardAccountOptions>(StringComparer.Ordinal);
}
