namespace McpGuard;

/// <summary>
/// The MCP server <c>MapMcpGuardProxy()</c> forwards guarded requests to (<c>McpGuard:Upstream</c>; package
/// McpGuard.Proxy, and the gateway).
/// </summary>
/// <example>
/// <code>
/// "McpGuard": {
///   "Upstream": {
///     "Url": "http://127.0.0.1:3001/mcp",
///     "Credential": { "Header": "Authorization", "EnvironmentVariable": "UPSTREAM_TOKEN" }
///   }
/// }
/// </code>
/// </example>
internal sealed class McpGuardUpstreamOptions
{
    /// <summary>The upstream's Streamable HTTP endpoint, an absolute <c>http</c> or <c>https</c> URL. Required by the proxy.</summary>
    public string? Url { get; set; }

    /// <summary>How long connecting to the upstream may take before the call gets 502 <c>upstream_error</c>. Default 5 seconds.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long the upstream may stay silent while answering a POST or DELETE (before its response headers, or between
    /// two chunks of its body) before the call gets 504 <c>upstream_timeout</c>. A GET stream may stay silent for as long
    /// as the client keeps it open. Default 100 seconds.
    /// </summary>
    public TimeSpan ResponseTimeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>A credential the proxy adds to every request it forwards (the caller's own never goes upstream).</summary>
    public McpGuardUpstreamCredentialOptions Credential { get; } = new();

    /// <summary>How <c>tools/list</c> shows a paused tool: <c>Mark</c> (the default) or <c>Hide</c>.</summary>
    public McpGuardToolListing PausedTools { get; set; } = McpGuardToolListing.Mark;

    /// <summary>How <c>tools/list</c> shows an archived tool: <c>Hide</c> (the default) or <c>Mark</c>.</summary>
    public McpGuardToolListing ArchivedTools { get; set; } = McpGuardToolListing.Hide;
}

/// <summary>A header the proxy adds to every forwarded request, its value from configuration or from an environment variable.</summary>
internal sealed class McpGuardUpstreamCredentialOptions
{
    /// <summary>The header's name, for example <c>Authorization</c> or <c>X-Api-Key</c>. No credential is added when unset.</summary>
    public string? Header { get; set; }

    /// <summary>The header's value. Set this or <see cref="EnvironmentVariable"/>, not both.</summary>
    public string? Value { get; set; }

    /// <summary>The environment variable holding the header's value, read at start and on each configuration reload.</summary>
    public string? EnvironmentVariable { get; set; }
}

/// <summary>How a tools/list answer that passes through the proxy shows a tool that cannot be called now.</summary>
internal enum McpGuardToolListing
{
    /// <summary>Listed, with <c>"_meta": { "mcpguard/status": "paused" }</c> (or <c>archived</c>).</summary>
    Mark,

    /// <summary>Left out of the list.</summary>
    Hide,
}
