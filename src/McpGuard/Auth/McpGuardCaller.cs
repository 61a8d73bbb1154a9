using System.Collections.Frozen;
using System.Security.Claims;

namespace McpGuard.Auth;

/// <summary>How a caller proved who it is.</summary>
internal enum McpGuardCredentialKind
{
    ApiKey,
    Jwt,
}

/// <summary>The authenticated caller of one request, kept on the request feature for every later gate.</summary>
internal sealed class McpGuardCaller(string account, string? keyId, FrozenSet<string> scopes, McpGuardCredentialKind kind, ClaimsPrincipal principal)
{
    public string Account { get; } = account;

    /// <summary>The API key's id (never its secret); null for tokens.</summary>
    public string? KeyId { get; } = keyId;

    public FrozenSet<string> Scopes { get; } = scopes;

    public McpGuardCredentialKind Kind { get; } = kind;

    public ClaimsPrincipal Principal { get; } = principal;

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
