using System.Security.Claims;

namespace McpGuard.Auth;

/// <summary>
/// The identity McpGuard puts on the request's principal: its claims for the app (for an API key, <c>sub</c>,
/// <c>mcpguard:key_id</c> and one <c>scope</c> per scope), and, for McpGuard's own tool filters, the caller the gates
/// decided on and the request id. The principal is the one thing the MCP SDK hands to a handler with each message
/// even when the handler runs outside the HTTP request (<c>PerSessionExecutionContext</c>), so the filters find the
/// caller here rather than through <c>IHttpContextAccessor</c>.
/// </summary>
internal sealed class McpGuardCallerIdentity : ClaimsIdentity
{
    public McpGuardCallerIdentity(McpGuardCaller caller, string requestId, string? authenticationType, string? nameType)
        : base(authenticationType, nameType, roleType: null)
    {
        Caller = caller;
        RequestId = requestId;
    }

    private McpGuardCallerIdentity(McpGuardCallerIdentity other)
        : base(other)
    {
        Caller = other.Caller;
        RequestId = other.RequestId;
        Request = other.Request;
    }

    public McpGuardCaller Caller { get; }

    public string RequestId { get; }

    /// <summary>
    /// The guarded request this identity was made for, set by the pipeline once the caller is known: how McpGuard's tool
    /// filters find its charge wherever the SDK runs them (the principal travels with the message).
    /// </summary>
    internal McpGuard.Protocol.McpGuardFeature? Request { get; set; }

    public override ClaimsIdentity Clone() => new McpGuardCallerIdentity(this);

    /// <summary>The caller McpGuard authenticated for the request that carries <paramref name="user"/>, if any.</summary>
    public static McpGuardCallerIdentity? Find(ClaimsPrincipal? user)
    {
        if (user is null)
        {
            return null;
        }

        foreach (var identity in user.Identities)
        {
            if (identity is McpGuardCallerIdentity caller)
            {
                return caller;
            }
        }

        return null;
    }
}
