using System.Security.Claims;
using System.Text.Encodings.Web;
using McpGuard.Auth;
using McpGuard.Errors;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace McpGuard.Admin;

/// <summary>
/// The admin key scheme (<see cref="McpGuardSchemes.AdminKey"/>): <c>Authorization: Bearer &lt;admin key&gt;</c> whose
/// SHA-256 is <c>McpGuard:Admin:KeyHash</c> (read on every request, so a reload takes effect at once), compared in
/// constant time. The user it signs in is named <c>admin key</c>. Its challenge is the admin API's answer to a refused
/// request: 401 problem+json with a <c>Bearer realm="mcpguard-admin"</c> challenge, or 403 when the admin API is not
/// configured at all (no key can open it, so there is nothing to ask for). Never the app's default scheme.
/// </summary>
internal sealed class AdminKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    McpGuardStateProvider states)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggerFactory, encoder)
{
    internal const string PolicyName = "McpGuard.Admin";
    internal const string ActorName = "admin key";
    internal const string Challenge = "Bearer realm=\"mcpguard-admin\"";
    internal const string InvalidKeyChallenge = "Bearer realm=\"mcpguard-admin\", error=\"invalid_token\"";

    private readonly ILogger _audit = loggerFactory.CreateLogger(AdminApi.LoggerCategory);

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (states.Current.Options.Admin.KeyHash is not { } keyHash || !TryReadKey(out var key))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (!Credentials.Matches(key.Span, keyHash))
        {
            return Task.FromResult(AuthenticateResult.Fail("The admin key is wrong."));
        }

        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, ActorName)], Scheme.Name);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), Scheme.Name)));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.CacheControl = "no-store";
        if (states.Current.Options.Admin.KeyHash is null)
        {
            AdminApi.Log.Refused(_audit, Request.Method, Request.Path, "not configured");
            return AdminApi.Problem(Context, McpGuardAdminReasons.Forbidden,
                "The admin API is not configured: set McpGuard:Admin:KeyHash to the SHA-256 of an admin key, or McpGuard:Admin:Policy to an authorization policy.")
                .ExecuteAsync(Context);
        }

        var sent = TryReadKey(out _);
        AdminApi.Log.Refused(_audit, Request.Method, Request.Path, sent ? "wrong admin key" : "no admin key");
        Response.Headers.WWWAuthenticate = sent ? InvalidKeyChallenge : Challenge;
        return AdminApi.Problem(Context, McpGuardAdminReasons.Unauthorized, "The admin API needs the admin key: send 'Authorization: Bearer <admin key>'.")
            .ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        // The admin policy asks only for an authenticated admin key user; an app that widens it gets McpGuard's 403.
        Response.Headers.CacheControl = "no-store";
        AdminApi.Log.Refused(_audit, Request.Method, Request.Path, "forbidden by policy");
        return AdminApi.Problem(Context, McpGuardAdminReasons.Forbidden, "The admin key may not do this.").ExecuteAsync(Context);
    }

    private bool TryReadKey(out ReadOnlyMemory<char> key) => Credentials.TryReadBearer(Request, out key) && !key.IsEmpty;
}
