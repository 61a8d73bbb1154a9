namespace McpGuard;

/// <summary>
/// How errors are rendered, and per-reason overrides of the built-in catalog.
/// Bound from <c>McpGuard:Errors</c>.
/// </summary>
/// <example>
/// <code>
/// "Errors": {
///   "Format": "JsonRpc",
///   "Reasons": {
///     "out_of_credit": { "Code": -32402, "Format": "ToolResult" },
///     "rate_limited":  { "Message": "Slow down" }
///   }
/// }
/// </code>
/// </example>
internal sealed class McpGuardErrorOptions
{
    /// <summary>The rendering used for every reason that does not choose its own. Default <see cref="McpGuardErrorFormat.JsonRpc"/>.</summary>
    public McpGuardErrorFormat Format { get; set; } = McpGuardErrorFormat.JsonRpc;

    /// <summary>
    /// Overrides keyed by reason slug (see <see cref="McpGuardReasons"/>). Unknown slugs are a configuration error.
    /// </summary>
    public IDictionary<string, McpGuardReasonOptions> Reasons { get; } =
        new Dictionary<string, McpGuardReasonOptions>(StringComparer.Ordinal);
}

/// <summary>An override of one catalog entry. Every property is optional.</summary>
internal sealed class McpGuardReasonOptions
{
    /// <summary>
    /// The JSON-RPC error code to send instead of the default. Codes in -32099..-32020 that the MCP
    /// specification does not define are refused.
    /// </summary>
    public int? Code { get; set; }

    /// <summary>The message to send instead of the default (<c>error.message</c>, problem <c>title</c>).</summary>
    public string? Message { get; set; }

    /// <summary>What the client should do, in words (<c>resolve.message</c>, the tool result's suggestion line).</summary>
    public string? Suggestion { get; set; }

    /// <summary>A page that helps the client resolve the error (<c>resolve.url</c>).</summary>
    public Uri? Url { get; set; }

    /// <summary>The rendering for this reason only.</summary>
    public McpGuardErrorFormat? Format { get; set; }
}
