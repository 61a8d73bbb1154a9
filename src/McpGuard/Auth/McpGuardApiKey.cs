namespace McpGuard;

/// <summary>An API key as a store knows it: never the secret, only what the key grants.</summary>
/// <param name="Id">A stable id for logs and admin.</param>
/// <param name="Account">The billing party the key belongs to.</param>
/// <param name="Scopes">The scopes the key grants.</param>
public sealed record McpGuardApiKey(string Id, string Account, IReadOnlyList<string> Scopes)
{
    /// <summary>When the key stops working, if ever.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>A revoked key never works again.</summary>
    public bool Revoked { get; init; }
}
