namespace McpGuard.Telemetry;

/// <summary>McpGuard's metrics and traces (<c>McpGuard:Telemetry</c>).</summary>
internal sealed class McpGuardTelemetryOptions
{
    /// <summary>
    /// Whether the caller's account id is a tag on <c>mcpguard.requests</c>, <c>mcpguard.credits.charged</c> and
    /// <c>mcpguard.credits.refunded</c> and on each request's span. Off by default: every account would make its own time
    /// series, and a metrics backend pays for each one. Turn it on only for a small, known set of accounts.
    /// </summary>
    public bool AccountTags { get; set; }
}
