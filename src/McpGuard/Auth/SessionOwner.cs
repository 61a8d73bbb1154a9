using System.Security.Claims;

namespace McpGuard.Auth;

/// <summary>
/// The rule for the principal McpGuard puts on <c>HttpContext.User</c>: the first claim an MCP server reads to
/// bind a stateful session to its user (the C# SDK's <c>MapMcp()</c> reads <see cref="ClaimTypes.NameIdentifier"/>,
/// else <c>sub</c>, else <see cref="ClaimTypes.Upn"/>, and refuses a session to a principal with none) holds the
/// caller's account, so one account can never use another's session and every account can have one. An API key's
/// principal has <c>sub</c> = account already; a token whose <c>sub</c> is missing or names something other than
/// the account gets a nameidentifier claim, from the token's issuer, ahead of its own claims.
/// </summary>
internal static class SessionOwner
{
    /// <summary>The principal as it is when its session owner is the account; otherwise a copy led by a nameidentifier claim.</summary>
    public static ClaimsPrincipal NamedByAccount(ClaimsPrincipal principal, string account)
    {
        var owner = principal.FindFirst(ClaimTypes.NameIdentifier) ?? principal.FindFirst("sub") ?? principal.FindFirst(ClaimTypes.Upn);
        if (owner?.Value == account || principal.Identity is not ClaimsIdentity identity)
        {
            return principal;
        }

        var issuer = identity.Claims.FirstOrDefault()?.Issuer ?? ClaimsIdentity.DefaultIssuer;
        var named = new ClaimsIdentity(
            [new Claim(ClaimTypes.NameIdentifier, account, ClaimValueTypes.String, issuer), .. identity.Claims],
            identity.AuthenticationType,
            identity.NameClaimType,
            identity.RoleClaimType);
        return new ClaimsPrincipal(named);
    }
}
