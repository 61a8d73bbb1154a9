using System.Collections.Frozen;
using System.Security.Claims;

namespace McpGuard.Auth;

/// <summary>
/// What an API key grants, in the shape the gates want: its scopes as a set, the caller the gates see, and the
/// principal a request made with it carries. Configured keys compile this once; keys from a store, on each request
/// (a store may hand back a changed key at any time).
/// </summary>
internal sealed class ApiKeyGrant
{
    public ApiKeyGrant(McpGuardApiKey key)
    {
        Scopes = key.Scopes.ToFrozenSet(StringComparer.Ordinal);
        Caller = new McpGuardCaller(key.Account, key.Id, Scopes, McpGuardCredentialKind.ApiKey) { MaxPriceMicro = key.MaxPriceMicro };
    }

    public FrozenSet<string> Scopes { get; }

    /// <summary>The caller every request made with the key gets (immutable, so shared).</summary>
    public McpGuardCaller Caller { get; }

    /// <summary>
    /// A new principal for one request (the app may change it, so none is shared): <c>sub</c> (the account),
    /// <c>mcpguard:key_id</c>, then one <c>scope</c> claim per scope, authentication type
    /// <see cref="AuthenticationGate.ApiKeyAuthenticationType"/>, name claim <c>sub</c>, carrying the caller and the
    /// request id for McpGuard's tool filters. Each claim is created with the identity as its subject, so the identity
    /// keeps it instead of storing a copy.
    /// </summary>
    public ClaimsPrincipal CreatePrincipal(McpGuardApiKey key, string requestId)
    {
        var identity = new McpGuardCallerIdentity(Caller, requestId, AuthenticationGate.ApiKeyAuthenticationType, "sub");
        identity.AddClaim(NewClaim("sub", key.Account, identity));
        identity.AddClaim(NewClaim("mcpguard:key_id", key.Id, identity));
        foreach (var scope in Scopes)
        {
            identity.AddClaim(NewClaim("scope", scope, identity));
        }

        return new ClaimsPrincipal(identity);
    }

    private static Claim NewClaim(string type, string value, ClaimsIdentity identity) =>
        new(type, value, ClaimValueTypes.String, ClaimsIdentity.DefaultIssuer, ClaimsIdentity.DefaultIssuer, identity);
}
