using System.Collections.Frozen;
using System.Security.Claims;
using McpGuard.Errors;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace McpGuard.Auth;

/// <summary>
/// Authenticates the caller through ASP.NET Core authentication, with the scheme the credential's shape names: an API
/// key (<see cref="McpGuardSchemes.ApiKey"/>), a JWT (McpGuard's own JwtBearer scheme, <see cref="McpGuardSchemes.Jwt"/>),
/// or, when <c>Auth:Schemes</c> names the app's own schemes, those, in order. Every failure with a credential is the
/// same 401 <c>invalid_token</c> to the client (no oracle telling which check failed); the log says which, naming the
/// key id but never the secret. The credential is removed from the request before the endpoint runs, so it is never
/// forwarded upstream.
/// </summary>
internal sealed partial class AuthenticationGate(ILogger<AuthenticationGate> logger)
{
    internal const string ApiKeyAuthenticationType = McpGuardSchemes.ApiKey;
    internal const string InvalidKeyMessage = "invalid or expired API key";
    internal const string InvalidTokenMessage = "invalid or expired token";

    /// <summary>The caller of this request (null: anonymous, or authentication off), or the refusal.</summary>
    public async ValueTask<GateResult<McpGuardCaller>> AuthenticateAsync(HttpContext context, McpGuardState state, McpEnvelope? envelope, string requestId)
    {
        var auth = state.Auth;
        if (!auth.Enabled)
        {
            return default;
        }

        var credential = ReadCredential(context.Request, auth, out var fromKeyHeader);
        string[] schemes;
        string failureMessage;
        if (auth.KeysEnabled && !credential.IsEmpty && (fromKeyHeader || credential.Span.StartsWith(auth.KeyPrefix, StringComparison.Ordinal)))
        {
            schemes = McpGuardSchemes.ApiKeyOnly;
            failureMessage = InvalidKeyMessage;
        }
        else if (auth.JwtEnabled && !credential.IsEmpty && LooksLikeJwt(credential.Span))
        {
            schemes = McpGuardSchemes.JwtOnly;
            failureMessage = InvalidTokenMessage;
        }
        else if (auth.Schemes.Length > 0)
        {
            // The app's own schemes judge whatever came (a token of any shape, a cookie, nothing at all).
            schemes = auth.Schemes;
            failureMessage = InvalidTokenMessage;
        }
        else if (!credential.IsEmpty)
        {
            Log.CredentialShapeUnknown(logger, requestId);
            return Refuse(state, envelope, auth.KeysEnabled ? InvalidKeyMessage : InvalidTokenMessage);
        }
        else
        {
            return Unauthenticated(state, envelope);
        }

        foreach (var scheme in schemes)
        {
            var result = await context.AuthenticateAsync(scheme);
            if (result.Succeeded)
            {
                return Accept(context, state, envelope, result.Principal, scheme, requestId);
            }

            if (scheme != McpGuardSchemes.ApiKey && !credential.IsEmpty)
            {
                // The exception type says why (expired, bad signature, wrong audience…); its message may carry token parts.
                // McpGuard's own refusals say why in a message that names claims, never their values. (The API-key scheme
                // logs its own refusals, naming the key id.)
                Log.TokenRejected(logger, result.Failure is JwtContentRefusedException refused ? refused.Message : Why(scheme, result.Failure?.GetType().Name ?? "no result"), requestId);
            }
        }

        return credential.IsEmpty ? Unauthenticated(state, envelope) : Refuse(state, envelope, failureMessage);
    }

    private GateResult<McpGuardCaller> Accept(HttpContext context, McpGuardState state, McpEnvelope? envelope, ClaimsPrincipal principal, string scheme, string requestId)
    {
        var auth = state.Auth;
        McpGuardCaller caller;
        if (McpGuardCallerIdentity.Find(principal) is { } identity)
        {
            caller = identity.Caller;
        }
        else
        {
            // A token's principal (McpGuard's JwtBearer scheme, or the app's own): the account and scopes come from its claims.
            if (AccountOf(principal, auth.AccountClaim) is not { Length: > 0 } account)
            {
                Log.TokenRejected(logger, Why(scheme, $"no '{auth.AccountClaim}' claim"), requestId);
                return Refuse(state, envelope, InvalidTokenMessage);
            }

            caller = new McpGuardCaller(account, null, ScopesOf(principal), McpGuardCredentialKind.Jwt);
            principal = SessionOwner.NamedByAccount(principal, account);
            principal.AddIdentity(new McpGuardCallerIdentity(caller, requestId, authenticationType: null, nameType: null));
        }

        context.User = principal;
        context.Request.Headers.Remove(HeaderNames.Authorization);
        if (auth.KeyHeader is not null)
        {
            context.Request.Headers.Remove(auth.KeyHeader);
        }

        return new(caller, null);
    }

    private static string Why(string scheme, string why) =>
        scheme == McpGuardSchemes.Jwt ? why : $"scheme {scheme}: {why}";

    /// <summary>
    /// The account a token names: the configured claim, or, for <c>sub</c>, the <c>nameidentifier</c> claim that an app's
    /// JwtBearer makes of it when it maps inbound claims (its default).
    /// </summary>
    internal static string? AccountOf(ClaimsPrincipal principal, string accountClaim) =>
        principal.FindFirst(accountClaim)?.Value
        ?? (accountClaim == "sub" ? principal.FindFirst(ClaimTypes.NameIdentifier)?.Value : null);

    /// <summary>The scopes a token grants: space-separated <c>scope</c> or <c>scp</c> claims (or the name an app's JwtBearer maps <c>scp</c> to).</summary>
    internal static FrozenSet<string> ScopesOf(ClaimsPrincipal principal)
    {
        var scopes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var claim in principal.Claims)
        {
            if (claim.Type is "scope" or "scp" or MappedScopeClaim)
            {
                scopes.UnionWith(claim.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries));
            }
        }

        return scopes.ToFrozenSet(StringComparer.Ordinal);
    }

    private const string MappedScopeClaim = "http://schemas.microsoft.com/identity/claims/scope";

    private static GateResult<McpGuardCaller> Unauthenticated(McpGuardState state, McpEnvelope? envelope)
    {
        var auth = state.Auth;
        if (IsAnonymous(auth, envelope))
        {
            return default;
        }

        return new McpGuardError(state.Catalog[McpGuardReasons.Unauthorized], auth.KeysEnabled ? InvalidKeyMessage : "Authentication required: send an OAuth access token as a Bearer token.")
        {
            Challenge = Challenges.Unauthorized(auth, error: null, description: null, ChallengeScopes(auth, envelope)),
        };
    }

    private static GateResult<McpGuardCaller> Refuse(McpGuardState state, McpEnvelope? envelope, string message) =>
        new McpGuardError(state.Catalog[McpGuardReasons.InvalidToken], message)
        {
            Challenge = Challenges.Unauthorized(state.Auth, "invalid_token", message, ChallengeScopes(state.Auth, envelope)),
        };

    /// <summary>
    /// Whether the message may come without credentials. A method message may when its method is in
    /// <c>Auth:AnonymousMethods</c>. A message without a method (a JSON-RPC response the client posts, the session's
    /// <c>GET</c> stream, its <c>DELETE</c>) belongs to a session, so it may exactly when a session could be opened without
    /// credentials (<c>initialize</c> is anonymous); the server's own session-owner check then keeps a keyed caller's
    /// session from an anonymous caller (the C# SDK answers 403). With credentials, every message is authenticated.
    /// </summary>
    internal static bool IsAnonymous(AuthState auth, McpEnvelope? envelope) =>
        envelope is { Method: { } method }
            ? auth.IsAnonymous(method)
            : auth.IsAnonymous(McpMethods.Initialize);

    /// <summary>The scopes a challenge names: this call's, else every scope the resource supports.</summary>
    internal static string[] ChallengeScopes(AuthState auth, McpEnvelope? envelope)
    {
        var required = auth.RequiredScopes(envelope);
        return required.Length > 0 ? required : auth.ScopesSupported;
    }

    /// <summary>The credential as sent (a slice of the header, no copy); empty when there is none.</summary>
    private static ReadOnlyMemory<char> ReadCredential(HttpRequest request, AuthState auth, out bool fromKeyHeader)
    {
        fromKeyHeader = false;
        if (Credentials.TryReadBearer(request, out var bearer))
        {
            return bearer;
        }

        if (auth.KeyHeader is not null && request.Headers[auth.KeyHeader] is { Count: 1 } keyHeader && !string.IsNullOrWhiteSpace(keyHeader[0]))
        {
            fromKeyHeader = true;
            return keyHeader[0].AsMemory().Trim();
        }

        return default;
    }

    /// <summary>The credential if it has an API key's shape: a key header's value, or a Bearer token with the key prefix.</summary>
    internal static ReadOnlyMemory<char> ReadApiKey(HttpRequest request, AuthState auth)
    {
        var credential = ReadCredential(request, auth, out var fromKeyHeader);
        return fromKeyHeader || credential.Span.StartsWith(auth.KeyPrefix, StringComparison.Ordinal) ? credential : default;
    }

    /// <summary>Three dot-separated base64url segments.</summary>
    internal static bool LooksLikeJwt(ReadOnlySpan<char> credential)
    {
        var dots = 0;
        foreach (var c in credential)
        {
            if (c == '.')
            {
                dots++;
            }
            else if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_'))
            {
                return false;
            }
        }

        return dots == 2;
    }

    internal static partial class Log
    {
        [LoggerMessage(4001, LogLevel.Information, "API key rejected ({Why}) for request {RequestId}; key id {KeyId}.", EventName = "KeyRejected")]
        public static partial void KeyRejected(ILogger logger, string why, string keyId, string requestId);

        [LoggerMessage(4002, LogLevel.Information, "Bearer token rejected ({Why}) for request {RequestId}.", EventName = "TokenRejected")]
        public static partial void TokenRejected(ILogger logger, string why, string requestId);

        [LoggerMessage(4003, LogLevel.Information, "Credential for request {RequestId} is neither an API key nor a JWT.", EventName = "CredentialShapeUnknown")]
        public static partial void CredentialShapeUnknown(ILogger logger, string requestId);
    }
}
