using System.Collections.Frozen;

namespace McpGuard.Auth;

/// <summary>How a caller proved who it is.</summary>
internal enum McpGuardCredentialKind
{
    ApiKey,
    Jwt,
}

/// <summary>
/// The authenticated caller of a request, kept on the request feature for every later gate. Immutable, so one
/// configured API key's caller serves all of its requests; the request's own <c>ClaimsPrincipal</c> is <c>HttpContext.User</c>.
/// </summary>
internal sealed class McpGuardCaller(string account, string? keyId, FrozenSet<string> scopes, McpGuardCredentialKind kind)
{
    public string Account { get; } = account;

    /// <summary>The API key's id (never its secret); null for tokens.</summary>
    public string? KeyId { get; } = keyId;

    public FrozenSet<string> Scopes { get; } = scopes;

    public McpGuardCredentialKind Kind { get; } = kind;

    /// <summary>The spend ceiling per call of the caller's API key, if it has one.</summary>
    public long? MaxPriceMicro { get; init; }

    public bool HasAll(string[] required)
    {
        foreach (var scope in required)
        {
            if (!Scopes.Contains(scope))
            {
                return false;
            }
        }

        return true;
    }
}
