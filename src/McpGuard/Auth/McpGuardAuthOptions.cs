namespace McpGuard;

/// <summary>
/// Authentication: API keys and OAuth bearer tokens (JWT), and the RFC 9728 protected-resource metadata
/// that MCP clients use to discover how to obtain a token. Bound from <c>McpGuard:Auth</c>.
/// Authentication is on when API keys or JWTs are enabled.
/// </summary>
/// <example>
/// <code>
/// "Auth": {
///   "Resource": "https://mcp.example.com/mcp",
///   "AuthorizationServers": [ "https://auth.example.com" ],
///   "ApiKeys": { "Enabled": true, "Prefix": "mcpg", "Keys": [ { "Id": "k1", "Hash": "…", "Account": "alice", "Scopes": [ "tools:basic" ] } ] },
///   "Jwt": { "Enabled": true, "Issuer": "https://auth.example.com", "Authority": "https://auth.example.com" }
/// }
/// </code>
/// </example>
internal sealed class McpGuardAuthOptions
{
    /// <summary>
    /// The canonical URI of the guarded MCP endpoint (RFC 8707), e.g. <c>https://mcp.example.com/mcp</c>: the
    /// metadata's <c>resource</c> and the audience tokens must carry. Taken from configuration, never from the
    /// request, so it is right behind a TLS-terminating proxy. No trailing slash. Required when authentication is on.
    /// </summary>
    public string? Resource { get; set; }

    /// <summary>Authorization servers that issue tokens for this resource (metadata <c>authorization_servers</c>). Required for JWTs.</summary>
    public IList<string> AuthorizationServers { get; } = [];

    /// <summary>Scopes to advertise (<c>scopes_supported</c>). Default: every scope named in <c>Tools</c> and <c>Methods</c>.</summary>
    public IList<string> ScopesSupported { get; } = [];

    /// <summary>A human-readable name for the resource (metadata <c>resource_name</c>).</summary>
    public string? ResourceName { get; set; }

    /// <summary>A page documenting the resource (metadata <c>resource_documentation</c>).</summary>
    public string? ResourceDocumentation { get; set; }

    /// <summary>
    /// MCP methods that may be called without credentials (for example <c>ping</c>), or <c>*</c> for every method (keys
    /// then only identify callers who send one). A call that needs a scope still needs credentials. Messages without a
    /// method (a client's JSON-RPC response, a session's <c>GET</c> stream and <c>DELETE</c>) may come without credentials
    /// exactly when <c>initialize</c> may. Default: none; every MCP request needs credentials.
    /// </summary>
    public IList<string> AnonymousMethods { get; } = [];

    /// <summary>With <c>WithMcpGuard()</c>, <c>tools/list</c> shows a caller only the tools its scopes allow. Default true.</summary>
    public bool FilterToolList { get; set; } = true;

    /// <summary>API keys.</summary>
    public McpGuardApiKeyOptions ApiKeys { get; } = new();

    /// <summary>OAuth bearer tokens (JWT).</summary>
    public McpGuardJwtOptions Jwt { get; } = new();

    /// <summary>
    /// The app's own authentication schemes (for example the one <c>AddJwtBearer()</c> registered) that authenticate
    /// callers instead of McpGuard's JWT validation, tried in order; the first that succeeds names the caller, its
    /// account from <c>Jwt:AccountClaim</c> and its scopes from <c>scope</c>/<c>scp</c>. API keys still go to McpGuard's
    /// own scheme. Cannot be combined with <c>Jwt:Enabled</c>. Default: none.
    /// </summary>
    public IList<string> Schemes { get; } = [];
}

/// <summary>API keys, sent as <c>Authorization: Bearer &lt;prefix&gt;_&lt;secret&gt;</c> (or in <see cref="HeaderName"/>).</summary>
internal sealed class McpGuardApiKeyOptions
{
    /// <summary>Accept API keys. Default false.</summary>
    public bool Enabled { get; set; }

    /// <summary>The prefix every key starts with, before an underscore (<c>mcpg</c> → <c>mcpg_…</c>). It tells keys from tokens. Default <c>mcpg</c>.</summary>
    public string Prefix { get; set; } = "mcpg";

    /// <summary>An extra header that may carry the key, such as <c>X-Api-Key</c>. Default none: only <c>Authorization: Bearer</c>.</summary>
    public string? HeaderName { get; set; }

    /// <summary>Keys known from configuration, stored as SHA-256 hashes only.</summary>
    public IList<McpGuardApiKeyEntry> Keys { get; } = [];
}

/// <summary>One configured API key. The plaintext is never stored; see <see cref="McpGuardApiKey.Hash"/>.</summary>
internal sealed class McpGuardApiKeyEntry
{
    /// <summary>A stable id for logs and admin (never the secret).</summary>
    public string Id { get; set; } = "";

    /// <summary>Lowercase hex SHA-256 of the whole key string (UTF-8).</summary>
    public string Hash { get; set; } = "";

    /// <summary>The billing party the key belongs to.</summary>
    public string Account { get; set; } = "";

    /// <summary>The scopes the key grants.</summary>
    public IList<string> Scopes { get; } = [];

    /// <summary>When the key stops working, if ever.</summary>
    public DateTimeOffset? ExpiresAt { get; set; }

    /// <summary>A revoked key never works again.</summary>
    public bool Revoked { get; set; }

    /// <summary>The most one call made with this key may cost, in micro-units (<c>price_above_limit</c> above it). Default: no ceiling.</summary>
    public long? MaxPriceMicro { get; set; }
}

/// <summary>
/// OAuth access tokens as JWTs, validated by ASP.NET Core's JwtBearer handler: signature, issuer, lifetime and
/// an audience equal to <see cref="McpGuardAuthOptions.Resource"/>.
/// </summary>
internal sealed class McpGuardJwtOptions
{
    /// <summary>Accept JWT bearer tokens. Default false.</summary>
    public bool Enabled { get; set; }

    /// <summary>The expected <c>iss</c>. Required unless <see cref="Authority"/> supplies it through discovery.</summary>
    public string? Issuer { get; set; }

    /// <summary>An OpenID Connect authority whose discovery document and signing keys validate tokens.</summary>
    public string? Authority { get; set; }

    /// <summary>A base64 symmetric signing key (HS256, at least 32 bytes) for local development and tests.</summary>
    public string? SigningKey { get; set; }

    /// <summary>The expected <c>aud</c>. Default: <see cref="McpGuardAuthOptions.Resource"/>.</summary>
    public string? Audience { get; set; }

    /// <summary>The claim that names the account. Default <c>sub</c>.</summary>
    public string AccountClaim { get; set; } = "sub";

    /// <summary>Allowed clock skew for lifetime checks. Default 30 seconds.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Let the handler fetch metadata over plain HTTP (development only). Default false.</summary>
    public bool AllowInsecureMetadata { get; set; }
}
