using McpGuard.Errors;
using McpGuard.Protocol;
using Microsoft.Extensions.Logging;

namespace McpGuard.Auth;

/// <summary>
/// After authentication: refuses suspended accounts (403 <c>suspended</c>), then calls whose required scopes
/// the caller lacks (403 <c>insufficient_scope</c> with a step-up challenge naming every scope the call needs).
/// </summary>
internal sealed partial class AuthorizationGate(IMcpGuardAccountStatusStore accounts, McpGuard.Telemetry.McpGuardTelemetry telemetry, ILogger<AuthorizationGate> logger)
{
    public async ValueTask<McpGuardError?> CheckAsync(McpGuardFeature feature)
    {
        var state = feature.State;
        var auth = state.Auth;
        if (feature.Caller is not { } caller)
        {
            // An anonymous method passes without credentials only when the call needs no scope.
            if (auth.Enabled && auth.RequiredScopes(feature.Envelope) is { Length: > 0 } needed)
            {
                return new McpGuardError(state.Catalog[McpGuardReasons.Unauthorized], auth.KeysEnabled ? AuthenticationGate.InvalidKeyMessage : "Authentication required: this call needs a scope.")
                {
                    Challenge = Challenges.Unauthorized(auth, error: null, description: null, needed),
                };
            }

            return null;
        }

        bool suspended;
        using (var call = telemetry.StoreCall("account_status", "get"))
        {
            try
            {
                suspended = await auth.IsSuspendedAsync(caller.Account, accounts, CancellationToken.None);
            }
            catch (Exception ex)
            {
                call.Fail(ex);
                throw;
            }
        }

        if (suspended)
        {
            Log.Suspended(logger, caller.Account, feature.RequestId);
            return new McpGuardError(state.Catalog[McpGuardReasons.Suspended], "Account suspended: contact the server's operator.");
        }

        var required = auth.RequiredScopes(feature.Envelope);
        if (!caller.HasAll(required))
        {
            var scope = string.Join(' ', required);
            Log.InsufficientScope(logger, caller.Account, scope, feature.RequestId);
            return new McpGuardError(state.Catalog[McpGuardReasons.InsufficientScope], $"Insufficient scope: this call needs {scope}.")
            {
                Challenge = Challenges.InsufficientScope(auth, required),
                Data = [new("scope", scope)],
            };
        }

        return null;
    }

    private static partial class Log
    {
        [LoggerMessage(4101, LogLevel.Information, "Account {Account} is suspended; request {RequestId} refused.", EventName = "Suspended")]
        public static partial void Suspended(ILogger logger, string account, string requestId);

        [LoggerMessage(4102, LogLevel.Information, "Account {Account} lacks scope '{Scope}' for request {RequestId}.", EventName = "InsufficientScope")]
        public static partial void InsufficientScope(ILogger logger, string account, string scope, string requestId);
    }
}
