using System.Collections.Frozen;
using System.Security.Claims;
using System.Security.Cryptography;
using McpGuard.Errors;
using McpGuard.Protocol;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace McpGuard.Auth;

/// <summary>
/// Authenticates the caller with an API key or a JWT, chosen by the credential's shape. Every failure with a
/// credential is the same 401 <c>invalid_token</c> to the client (no oracle telling which check failed);
/// the log says which, naming the key id but never the secret. The credential is removed from the request
/// before the endpoint runs, so it is never forwarded upstream.
/// </summary>
internal sealed partial class AuthenticationGate(
    TimeProvider timeProvider,
    IOptionsMonitor<JwtBearerOptions> jwtOptions,
    ILoggerFactory loggerFactory,
    ILogger<AuthenticationGate> logger,
    IMcpGuardApiKeyStore keyStore)
{
    private static readonly AuthenticationScheme JwtAuthenticationScheme = new(JwtScheme, displayName: null, typeof(JwtBearerHandler));

    internal const string JwtScheme = "McpGuard.Jwt";
    internal const string ApiKeyAuthenticationType = "McpGuard.ApiKey";
    internal const string InvalidKeyMessage = "invalid or expired API key";
    internal const string InvalidTokenMessage = "invalid or expired token";

    public async ValueTask<McpGuardError?> CheckAsync(HttpContext context, McpGuardFeature feature)
    {
        var state = feature.State;
        var auth = state.Auth;
        if (!auth.Enabled)
        {
            return null;
        }

        var anonymous = IsAnonymous(auth, feature.Envelope);
        var credential = ReadCredential(context.Request, auth, out var fromKeyHeader);
        if (credential.IsEmpty)
        {
            return anonymous
                ? null
                : new McpGuardError(state.Catalog[McpGuardReasons.Unauthorized], auth.KeysEnabled ? InvalidKeyMessage : "Authentication required: send an OAuth access token as a Bearer token.")
                {
                    Challenge = Challenges.Unauthorized(auth, error: null, description: null, ChallengeScopes(auth, feature)),
                };
        }

        Authenticated? authenticated;
        string failureMessage;
        if (auth.KeysEnabled && (fromKeyHeader || credential.Span.StartsWith(auth.KeyPrefix, StringComparison.Ordinal)))
        {
            authenticated = await AuthenticateKeyAsync(credential.Span, auth, feature.RequestId, context.RequestAborted);
            failureMessage = InvalidKeyMessage;
        }
        else if (auth.JwtEnabled && LooksLikeJwt(credential.Span))
        {
            authenticated = await AuthenticateJwtAsync(context, auth.AccountClaim, feature.RequestId);
            failureMessage = InvalidTokenMessage;
        }
        else
        {
            Log.CredentialShapeUnknown(logger, feature.RequestId);
            authenticated = null;
            failureMessage = auth.KeysEnabled ? InvalidKeyMessage : InvalidTokenMessage;
        }

        if (authenticated is not { } who)
        {
            return new McpGuardError(state.Catalog[McpGuardReasons.InvalidToken], failureMessage)
            {
                Challenge = Challenges.Unauthorized(auth, "invalid_token", failureMessage, ChallengeScopes(auth, feature)),
            };
        }

        feature.Caller = who.Caller;
        if (McpGuardCallerIdentity.Find(who.Principal) is null)
        {
            // A token's principal comes from JwtBearer; McpGuard's tool filters find the caller on an identity of its own.
            who.Principal.AddIdentity(new McpGuardCallerIdentity(who.Caller, feature.RequestId, authenticationType: null, nameType: null));
        }

        context.User = who.Principal;
        context.Request.Headers.Remove(HeaderNames.Authorization);
        if (auth.KeyHeader is not null)
        {
            context.Request.Headers.Remove(auth.KeyHeader);
        }

        return null;
    }

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
    internal static string[] ChallengeScopes(AuthState auth, McpGuardFeature feature)
    {
        var required = auth.RequiredScopes(feature.Envelope);
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

    /// <summary>
    /// Finds the key by the SHA-256 of the credential: configuration first (compared in constant time, with what the
    /// key grants compiled once), then the key store (keys created at run time). Completes synchronously for a
    /// configured key; the hash is copied to the heap only when the store has to be asked.
    /// </summary>
    private ValueTask<Authenticated?> AuthenticateKeyAsync(ReadOnlySpan<char> credential, AuthState auth, string requestId, CancellationToken cancellationToken)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        if (!Credentials.TryHash(credential, hash))
        {
            Log.KeyRejected(logger, "too long", "(none)", requestId);
            return ValueTask.FromResult<Authenticated?>(null);
        }

        // Compare against every configured key in constant time, without stopping at a match.
        AuthState.ConfiguredKey? configured = null;
        foreach (var candidate in auth.Keys)
        {
            if (CryptographicOperations.FixedTimeEquals(candidate.Hash, hash))
            {
                configured = candidate;
            }
        }

        if (configured is not null)
        {
            return ValueTask.FromResult(Accept(configured.Key, configured.Grant, requestId));
        }

        return FindStoredKeyAsync(hash.ToArray(), requestId, cancellationToken);
    }

    private async ValueTask<Authenticated?> FindStoredKeyAsync(byte[] hash, string requestId, CancellationToken cancellationToken)
    {
        var key = await keyStore.FindAsync(hash, cancellationToken);
        if (key is null)
        {
            Log.KeyRejected(logger, "unknown", "(none)", requestId);
            return null;
        }

        return Accept(key, new ApiKeyGrant(key), requestId);
    }

    private Authenticated? Accept(McpGuardApiKey key, ApiKeyGrant grant, string requestId)
    {
        if (key.Revoked)
        {
            Log.KeyRejected(logger, "revoked", key.Id, requestId);
            return null;
        }

        if (key.ExpiresAt is { } expiresAt && expiresAt <= timeProvider.GetUtcNow())
        {
            Log.KeyRejected(logger, "expired", key.Id, requestId);
            return null;
        }

        return new Authenticated(grant.Caller, grant.CreatePrincipal(key, requestId));
    }

    private async ValueTask<Authenticated?> AuthenticateJwtAsync(HttpContext context, string accountClaim, string requestId)
    {
        // A fresh handler per call, outside IAuthenticationService: nothing is cached on the request and the
        // app's own authentication (if any) is untouched.
        var handler = new JwtBearerHandler(jwtOptions, loggerFactory, UrlEncoder.Default);
        await handler.InitializeAsync(JwtAuthenticationScheme, context);
        var result = await handler.AuthenticateAsync();
        if (!result.Succeeded || result.Principal is null)
        {
            // The exception type says why (expired, bad signature, wrong audience…); its message may carry token parts.
            // McpGuard's own refusals say why in a message that names claims, never their values.
            Log.TokenRejected(logger, result.Failure is JwtContentRefusedException refused ? refused.Message : result.Failure?.GetType().Name ?? "no token", requestId);
            return null;
        }

        var principal = result.Principal;
        var account = principal.FindFirst(accountClaim)?.Value;
        if (string.IsNullOrEmpty(account))
        {
            Log.TokenRejected(logger, $"no '{accountClaim}' claim", requestId);
            return null;
        }

        var scopes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var claim in principal.FindAll(c => c.Type is "scope" or "scp"))
        {
            scopes.UnionWith(claim.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        }

        return new Authenticated(new McpGuardCaller(account, null, scopes.ToFrozenSet(StringComparer.Ordinal), McpGuardCredentialKind.Jwt), SessionOwner.NamedByAccount(principal, account));
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

    /// <summary>Who the caller is (kept on the request feature) and the principal the request carries (<c>HttpContext.User</c>).</summary>
    private readonly record struct Authenticated(McpGuardCaller Caller, ClaimsPrincipal Principal);

    private static partial class Log
    {
        [LoggerMessage(4001, LogLevel.Information, "API key rejected ({Why}) for request {RequestId}; key id {KeyId}.", EventName = "KeyRejected")]
        public static partial void KeyRejected(ILogger logger, string why, string keyId, string requestId);

        [LoggerMessage(4002, LogLevel.Information, "Bearer token rejected ({Why}) for request {RequestId}.", EventName = "TokenRejected")]
        public static partial void TokenRejected(ILogger logger, string why, string requestId);

        [LoggerMessage(4003, LogLevel.Information, "Credential for request {RequestId} is neither an API key nor a JWT.", EventName = "CredentialShapeUnknown")]
        public static partial void CredentialShapeUnknown(ILogger logger, string requestId);
    }
}
