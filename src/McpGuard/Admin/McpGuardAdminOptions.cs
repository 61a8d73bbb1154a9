namespace McpGuard;

/// <summary>
/// The admin API mapped by <c>app.MapMcpGuardAdmin("/admin")</c>: top-ups, adjustments, caps, suspensions,
/// run-time API keys and tool status. Bound from <c>McpGuard:Admin</c>. Closed until one of
/// <see cref="KeyHash"/> or <see cref="Policy"/> is set: with neither, every admin request gets 403.
/// </summary>
/// <example>
/// <code>
/// "Admin": { "KeyHash": "…64 lowercase hex characters…" }
/// </code>
/// </example>
internal sealed class McpGuardAdminOptions
{
    /// <summary>
    /// The lowercase hex SHA-256 of the admin key (see <see cref="McpGuardApiKey.Hash"/>). Admin requests send the key as
    /// <c>Authorization: Bearer &lt;admin key&gt;</c>. Read on every request, so a configuration reload takes effect at once.
    /// </summary>
    public string? KeyHash { get; set; }

    /// <summary>
    /// The name of an ASP.NET Core authorization policy that protects the admin endpoints instead of the admin key
    /// (<see cref="KeyHash"/> is then ignored). Read when the endpoints are built, so changing it needs a restart.
    /// </summary>
    public string? Policy { get; set; }
}
