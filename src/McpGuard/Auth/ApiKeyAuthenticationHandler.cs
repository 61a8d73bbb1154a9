using System.Security.Cryptography;
using System.Text.Encodings.Web;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace McpGuard.Auth;

/// <summary>
/// McpGuard's API-key scheme (<see cref="McpGuardSchemes.ApiKey"/>): a key sent as <c>Authorization: Bearer &lt;key&gt;</c>
/// (when it starts with the configured prefix) or in <c>Auth:ApiKeys:HeaderName</c>. The key is found by its SHA-256:
/// in configuration first (compared in constant time, what it grants compiled once), then in the API key store (keys
/// created at run time). A revoked or expired key fails; the log names the key id, never the key. Without a key of this
/// shape the scheme has no result, so it composes with any other scheme of the app.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    McpGuardStateProvider states,
    IMcpGuardApiKeyStore keyStore,
    TimeProvider clock,
    McpGuard.Telemetry.McpGuardTelemetry telemetry,
    ILogger<AuthenticationGate> log)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggerFactory, encoder)
{
    // One log category for everything authentication says, whichever scheme says it (a singleton: the handler is per request).
    private readonly ILogger _log = log;

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var auth = states.Current.Auth;
        if (!auth.KeysEnabled || AuthenticationGate.ReadApiKey(Request, auth) is not { IsEmpty: false } credential)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        var requestId = Context.Features.Get<McpGuardFeature>()?.RequestId ?? Context.TraceIdentifier;
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        if (!Credentials.TryHash(credential.Span, hash))
        {
            AuthenticationGate.Log.KeyRejected(_log, "too long", "(none)", requestId);
            return Task.FromResult(AuthenticateResult.Fail(AuthenticationGate.InvalidKeyMessage));
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

        return configured is not null
            ? Task.FromResult(Accept(configured.Key, configured.Grant, requestId))
            : FindStoredKeyAsync(hash.ToArray(), requestId);
    }

    private async Task<AuthenticateResult> FindStoredKeyAsync(byte[] hash, string requestId)
    {
        McpGuardApiKey? key;
        using (var call = telemetry.StoreCall("api_keys", "find"))
        {
            try
            {
                key = await keyStore.FindAsync(hash, Context.RequestAborted);
            }
            catch (Exception ex) when (!Context.RequestAborted.IsCancellationRequested)
            {
                call.Fail(ex);
                throw;
            }
        }

        if (key is null)
        {
            AuthenticationGate.Log.KeyRejected(_log, "unknown", "(none)", requestId);
            return AuthenticateResult.Fail(AuthenticationGate.InvalidKeyMessage);
        }

        return Accept(key, new ApiKeyGrant(key), requestId);
    }

    private AuthenticateResult Accept(McpGuardApiKey key, ApiKeyGrant grant, string requestId)
    {
        if (key.Revoked)
        {
            AuthenticationGate.Log.KeyRejected(_log, "revoked", key.Id, requestId);
            return AuthenticateResult.Fail(AuthenticationGate.InvalidKeyMessage);
        }

        if (key.ExpiresAt is { } expiresAt && expiresAt <= clock.GetUtcNow())
        {
            AuthenticationGate.Log.KeyRejected(_log, "expired", key.Id, requestId);
            return AuthenticateResult.Fail(AuthenticationGate.InvalidKeyMessage);
        }

        return AuthenticateResult.Success(new AuthenticationTicket(grant.CreatePrincipal(key, requestId), Scheme.Name));
    }
}
