using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Serialization.Metadata;
using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Errors;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;

namespace McpGuard.Admin;

/// <summary>
/// The admin API behind <c>MapMcpGuardAdmin</c>: accounts (top-up, adjustment, cap, suspension, ledger), run-time API
/// keys and tool status, all on the ledger store. Every request is checked by <see cref="Protect"/> first (the admin
/// key, or the configured authorization policy); input is validated in full before the store is touched, so a
/// refused request changes nothing. Money moves are ledger rows; every other change is an audit log line
/// (category <c>McpGuard.Admin</c>, events 7001+), which never holds a key's plaintext.
/// </summary>
internal sealed partial class AdminApi(
    McpGuardStateProvider states,
    IMcpGuardLedgerStore ledger,
    IMcpGuardApiKeyStore keys,
    IMcpGuardAccountStatusStore accountStatus,
    IMcpGuardToolStatusStore toolStatus,
    TimeProvider clock,
    ILoggerFactory loggers)
{
    internal const string LoggerCategory = "McpGuard.Admin";
    internal const string Challenge = "Bearer realm=\"mcpguard-admin\"";
    internal const string InvalidKeyChallenge = "Bearer realm=\"mcpguard-admin\", error=\"invalid_token\"";

    private static readonly object ActorKey = new();

    private readonly ILogger _logger = loggers.CreateLogger(LoggerCategory);

    /// <summary>
    /// The group convention: when <c>McpGuard:Admin:Policy</c> is set (read as the endpoints are built), the endpoint
    /// requires that policy; otherwise every request must carry the admin key. Either way the request then passes
    /// the origin and credits checks before the handler runs.
    /// </summary>
    public void Protect(EndpointBuilder endpoint)
    {
        var policy = states.Current.Options.Admin.Policy;
        if (policy is not null)
        {
            endpoint.Metadata.Add(new AuthorizeAttribute(policy));
        }

        var inner = endpoint.RequestDelegate
            ?? throw new InvalidOperationException($"The admin endpoint '{endpoint.DisplayName}' has no request delegate.");
        endpoint.RequestDelegate = context => InvokeAsync(context, inner, policy);
    }

    private async Task InvokeAsync(HttpContext context, RequestDelegate inner, string? policy)
    {
        var response = context.Response;
        response.Headers.CacheControl = "no-store";
        var state = states.Current;
        string actor;
        if (policy is not null)
        {
            // The authorization middleware enforced the policy before the endpoint ran (the endpoint middleware refuses to
            // run an endpoint with authorization metadata when no authorization middleware did).
            actor = context.User.Identity?.Name is { Length: > 0 } name ? name : $"policy {policy}";
        }
        else if (state.Options.Admin.KeyHash is not { } keyHash)
        {
            Log.Refused(_logger, context.Request.Method, context.Request.Path, "not configured");
            await ProblemAsync(context, StatusCodes.Status403Forbidden, "Forbidden",
                "The admin API is not configured: set McpGuard:Admin:KeyHash to the SHA-256 of an admin key, or McpGuard:Admin:Policy to an authorization policy.");
            return;
        }
        else
        {
            var sent = Credentials.TryReadBearer(context.Request, out var credential) && !credential.IsEmpty;
            if (!sent || !Credentials.Matches(credential.Span, keyHash))
            {
                Log.Refused(_logger, context.Request.Method, context.Request.Path, sent ? "wrong admin key" : "no admin key");
                response.Headers.WWWAuthenticate = sent ? InvalidKeyChallenge : Challenge;
                await ProblemAsync(context, StatusCodes.Status401Unauthorized, "Unauthorized",
                    "The admin API needs the admin key: send 'Authorization: Bearer <admin key>'.");
                return;
            }

            actor = "admin key";
        }

        if (context.Request.Headers.Origin is { Count: > 0 } origin && !state.IsOriginAllowed(origin, context.Request))
        {
            // A browser page on another origin (say, one riding an admin's cookie under a policy) may not drive the admin API.
            Log.Refused(_logger, context.Request.Method, context.Request.Path, "origin not allowed");
            await ProblemAsync(context, StatusCodes.Status403Forbidden, "Forbidden",
                $"Origin '{origin}' may not call the admin API; allowed origins are set in McpGuard:AllowedOrigins.");
            return;
        }

        context.Items[ActorKey] = actor;
        await inner(context);
    }

    // POST /accounts/{id}/topup {"amount_micro": > 0, "note": string?}
    public async Task TopUpAsync(HttpContext context)
    {
        if (!await CreditsOnAsync(context))
        {
            return;
        }

        var errors = new AdminErrors();
        var id = AccountFromRoute(context, errors);
        var (body, failure) = await AdminInput.ReadObjectAsync(context, errors);
        if (await BodyFailedAsync(context, failure))
        {
            return;
        }

        var amount = AdminInput.RequiredLong(body, "amount_micro", static a => a > 0, AdminInput.PositiveAmount, errors);
        var note = AdminInput.String(body, "note", required: false, AdminInput.IsNote, AdminInput.OptionalNote, errors);
        if (errors.Any)
        {
            await InvalidAsync(context, errors);
            return;
        }

                var now = clock.GetUtcNow();
        var tooLarge = $"A top-up of {amount} would take account '{id}' past the largest balance a ledger can hold.";
        var before = await ledger.GetAccountAsync(id!, FreeCalls(id!), now, context.RequestAborted);
        if ((before?.BalanceMicro ?? 0) > long.MaxValue - amount!.Value)
        {
            await ConflictAsync(context, tooLarge);
            return;
        }

        McpGuardLedgerEntry entry;
        try
        {
            entry = await ledger.TopUpAsync(id!, amount.Value, note, now, CancellationToken.None);
        }
        catch (OverflowException)
        {
            await ConflictAsync(context, tooLarge);
            return;
        }

        var account = await AccountAsync(id!, now, context.RequestAborted);
        Log.ToppedUp(_logger, Actor(context), id!, entry.AmountMicro, entry.Id, entry.BalanceAfterMicro);
        await JsonAsync(context, StatusCodes.Status200OK, new AdminMoveBody(AdminLedgerRowBody.From(entry), account!), AdminJsonContext.Default.AdminMoveBody);
    }

    // POST /accounts/{id}/adjust {"amount_micro": != 0, "note": string}
    public async Task AdjustAsync(HttpContext context)
    {
        if (!await CreditsOnAsync(context))
        {
            return;
        }

        var errors = new AdminErrors();
        var id = AccountFromRoute(context, errors);
        var (body, failure) = await AdminInput.ReadObjectAsync(context, errors);
        if (await BodyFailedAsync(context, failure))
        {
            return;
        }

        var amount = AdminInput.RequiredLong(body, "amount_micro", static a => a != 0, AdminInput.NonZeroAmount, errors);
        var note = AdminInput.String(body, "note", required: true, AdminInput.IsRequiredNote, AdminInput.RequiredNote, errors);
        if (errors.Any)
        {
            await InvalidAsync(context, errors);
            return;
        }

                var now = clock.GetUtcNow();
        if (await FindAccountAsync(context, id!, now) is not { } before)
        {
            return;
        }

        if (Refusal(before.BalanceMicro, amount!.Value, id!) is { } refusal)
        {
            await ConflictAsync(context, refusal);
            return;
        }

        McpGuardLedgerEntry entry;
        try
        {
            entry = await ledger.AdjustAsync(id!, amount.Value, note!, now, CancellationToken.None);
        }
        catch (Exception ex) when (ex is InvalidOperationException or OverflowException)
        {
            // The balance may have moved between the check above and the adjustment; any other failure is the store's.
            var current = await ledger.GetAccountAsync(id!, FreeCalls(id!), now, context.RequestAborted);
            if (Refusal(current?.BalanceMicro ?? 0, amount.Value, id!) is not { } raced)
            {
                throw;
            }

            await ConflictAsync(context, raced);
            return;
        }

        var account = await AccountAsync(id!, now, context.RequestAborted);
        Log.Adjusted(_logger, Actor(context), id!, entry.AmountMicro, entry.Id, entry.BalanceAfterMicro, note!);
        await JsonAsync(context, StatusCodes.Status200OK, new AdminMoveBody(AdminLedgerRowBody.From(entry), account!), AdminJsonContext.Default.AdminMoveBody);

        static string? Refusal(long balance, long amount, string id) =>
            balance + amount < 0 ? $"An adjustment of {amount} would take account '{id}' below zero (balance {balance})."
            : amount > 0 && balance > long.MaxValue - amount ? $"An adjustment of {amount} would take account '{id}' past the largest balance a ledger can hold."
            : null;
    }

    // GET /accounts/{id}
    public async Task GetAccountAsync(HttpContext context)
    {
        if (!await CreditsOnAsync(context))
        {
            return;
        }

        var errors = new AdminErrors();
        var id = AccountFromRoute(context, errors);
        if (errors.Any)
        {
            await InvalidAsync(context, errors);
            return;
        }

        if (await AccountAsync(id!, clock.GetUtcNow(), context.RequestAborted) is not { } account)
        {
            await UnknownAccountAsync(context, id!);
            return;
        }

        await JsonAsync(context, StatusCodes.Status200OK, account, AdminJsonContext.Default.AdminAccountBody);
    }

    // PUT /accounts/{id}/cap {"monthly_cap_micro": >= 0 or null}
    public async Task SetCapAsync(HttpContext context)
    {
        if (!await CreditsOnAsync(context))
        {
            return;
        }

        var errors = new AdminErrors();
        var id = AccountFromRoute(context, errors);
        var (body, failure) = await AdminInput.ReadObjectAsync(context, errors);
        if (await BodyFailedAsync(context, failure))
        {
            return;
        }

        var (_, cap) = AdminInput.RequiredNullableLong(body, "monthly_cap_micro", static c => c >= 0, AdminInput.Cap, errors);
        if (errors.Any)
        {
            await InvalidAsync(context, errors);
            return;
        }

                var now = clock.GetUtcNow();
        if (await FindAccountAsync(context, id!, now) is not { } before)
        {
            return;
        }

        await ledger.SetMonthlyCapAsync(id!, cap, CancellationToken.None);
        var account = await AccountAsync(id!, now, context.RequestAborted);
        Log.CapSet(_logger, Actor(context), id!, Micro(cap), Micro(before.MonthlyCapMicro));
        await JsonAsync(context, StatusCodes.Status200OK, account!, AdminJsonContext.Default.AdminAccountBody);
    }

    // POST /accounts/{id}/suspend
    public Task SuspendAsync(HttpContext context) => SetSuspendedAsync(context, suspended: true);

    // POST /accounts/{id}/reactivate
    public Task ReactivateAsync(HttpContext context) => SetSuspendedAsync(context, suspended: false);

    private async Task SetSuspendedAsync(HttpContext context, bool suspended)
    {
        var errors = new AdminErrors();
        var id = AccountFromRoute(context, errors);
        if (errors.Any)
        {
            await InvalidAsync(context, errors);
            return;
        }

                var now = clock.GetUtcNow();
        if (states.Current.Credits.Enabled && await FindAccountAsync(context, id!, now) is null)
        {
            return;
        }

        if (!suspended && states.Current.Auth.SuspendedAccounts.Contains(id!))
        {
            // The guard refuses accounts suspended in configuration whatever the ledger says: reactivating only in the
            // ledger would answer "active" while every call is still refused.
            await ConflictAsync(context,
                $"Account '{id}' is suspended by configuration (McpGuard:Accounts:{id}:Suspended); set it to false there to reactivate the account.");
            return;
        }

        await accountStatus.SetSuspendedAsync(id!, suspended, CancellationToken.None);
        var account = states.Current.Credits.Enabled ? await AccountAsync(id!, now, context.RequestAborted) : null;
        if (suspended)
        {
            Log.Suspended(_logger, Actor(context), id!);
        }
        else
        {
            Log.Reactivated(_logger, Actor(context), id!);
        }

        if (account is not null)
        {
            await JsonAsync(context, StatusCodes.Status200OK, account, AdminJsonContext.Default.AdminAccountBody);
        }
        else
        {
            await JsonAsync(context, StatusCodes.Status200OK, new AdminAccountStatusBody(id!, suspended ? "suspended" : "active"), AdminJsonContext.Default.AdminAccountStatusBody);
        }
    }

    // GET /accounts/{id}/ledger?limit=50&before=<cursor>
    public async Task GetLedgerAsync(HttpContext context)
    {
        if (!await CreditsOnAsync(context))
        {
            return;
        }

        var errors = new AdminErrors();
        var id = AccountFromRoute(context, errors);
        var limit = AdminInput.Query(context.Request, "limit", static l => l is >= 1 and <= AdminInput.MaxLedgerPage, AdminInput.Limit, errors) ?? 50;
        var before = AdminInput.Query(context.Request, "before", static b => b > 0, AdminInput.Cursor, errors);
        if (errors.Any)
        {
            await InvalidAsync(context, errors);
            return;
        }

        if (await FindAccountAsync(context, id!, clock.GetUtcNow()) is null)
        {
            return;
        }

        var page = await ledger.GetLedgerAsync(id!, before, (int)limit, context.RequestAborted);
        await JsonAsync(
            context,
            StatusCodes.Status200OK,
            new AdminLedgerPageBody([.. page.Entries.Select(AdminLedgerRowBody.From)], page.NextCursor),
            AdminJsonContext.Default.AdminLedgerPageBody);
    }

    // POST /keys {"account": string, "scopes": [string], "expires_at": time?, "id": string?}
    public async Task CreateKeyAsync(HttpContext context)
    {
        var errors = new AdminErrors();
        var (body, failure) = await AdminInput.ReadObjectAsync(context, errors);
        if (await BodyFailedAsync(context, failure))
        {
            return;
        }

        var now = clock.GetUtcNow();
        var account = AdminInput.String(body, "account", required: true, AdminInput.IsAccountId, AdminInput.AccountId, errors);
        var scopes = AdminInput.ScopeList(body, errors);
        var (_, expiresAt) = AdminInput.FutureTime(body, "expires_at", now, errors);
        var id = AdminInput.String(body, "id", required: false, AdminInput.IsKeyId, AdminInput.KeyId + ", or null", errors);
        if (errors.Any)
        {
            await InvalidAsync(context, errors);
            return;
        }

        var options = states.Current.Options;
        var keyOptions = options.Auth.ApiKeys;
        if (!keyOptions.Enabled)
        {
            await ConflictAsync(context, "API keys are disabled (McpGuard:Auth:ApiKeys:Enabled is false), so a new key could not be used.");
            return;
        }

        id ??= "key_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        if (keyOptions.Keys.Any(k => string.Equals(k.Id, id, StringComparison.Ordinal)))
        {
            await ConflictAsync(context, $"Key id '{id}' is taken by a key in configuration (McpGuard:Auth:ApiKeys:Keys).");
            return;
        }

                var (plaintext, hash) = McpGuardApiKey.Generate(keyOptions.Prefix);
        var key = new McpGuardApiKey(id, account!, scopes!, expiresAt);
        try
        {
            await keys.AddAsync(key, Convert.FromHexString(hash), CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
            // The store refuses a taken id (the secret is 256 random bits, so it is never the hash that clashes).
            await ConflictAsync(context, $"Key id '{id}' is taken by a key created earlier.");
            return;
        }

        Log.KeyCreated(_logger, Actor(context), id, account!, string.Join(' ', scopes!), expiresAt?.ToString("O", CultureInfo.InvariantCulture) ?? "never");
        await JsonAsync(
            context,
            StatusCodes.Status201Created,
            new AdminCreatedKeyBody(id, plaintext, account!, scopes!, expiresAt?.UtcDateTime),
            AdminJsonContext.Default.AdminCreatedKeyBody);
    }

    // POST /keys/{id}/revoke
    public async Task RevokeKeyAsync(HttpContext context)
    {
        var id = (string)context.Request.RouteValues["id"]!;
        if (states.Current.Options.Auth.ApiKeys.Keys.Any(k => string.Equals(k.Id, id, StringComparison.Ordinal)))
        {
            await ConflictAsync(context, $"Key '{id}' comes from configuration; set Revoked to true on it in McpGuard:Auth:ApiKeys:Keys.");
            return;
        }

        if (!await keys.RevokeAsync(id, CancellationToken.None))
        {
            await ProblemAsync(context, StatusCodes.Status404NotFound, "Not Found", $"Unknown key '{id}'.");
            return;
        }

        Log.KeyRevoked(_logger, Actor(context), id);
        await JsonAsync(context, StatusCodes.Status200OK, new AdminRevokedKeyBody(id, Revoked: true), AdminJsonContext.Default.AdminRevokedKeyBody);
    }

    // POST /tools/{name}/pause
    public Task PauseToolAsync(HttpContext context) => SetToolStatusAsync(context, McpGuardToolStatus.Paused);

    // POST /tools/{name}/archive
    public Task ArchiveToolAsync(HttpContext context) => SetToolStatusAsync(context, McpGuardToolStatus.Archived);

    // POST /tools/{name}/restore: back to the status in configuration.
    public Task RestoreToolAsync(HttpContext context) => SetToolStatusAsync(context, null);

    private async Task SetToolStatusAsync(HttpContext context, McpGuardToolStatus? status)
    {
        var tool = (string)context.Request.RouteValues["name"]!;
                var configured = states.Current.Options.Tools.TryGetValue(tool, out var policy) ? policy?.Status ?? McpGuardToolStatus.Live : (McpGuardToolStatus?)null;
        if (configured is null && await toolStatus.GetStatusAsync(tool, context.RequestAborted) is null)
        {
            await ProblemAsync(context, StatusCodes.Status404NotFound, "Not Found",
                $"Unknown tool '{tool}': list it under McpGuard:Tools to manage its status.");
            return;
        }

        await toolStatus.SetStatusAsync(tool, status, CancellationToken.None);
        var effective = status ?? configured ?? McpGuardToolStatus.Live;
        var name = effective switch
        {
            McpGuardToolStatus.Paused => "paused",
            McpGuardToolStatus.Archived => "archived",
            _ => "live",
        };
        Log.ToolStatusSet(_logger, Actor(context), tool, name, status is null ? "restored to configuration" : "override");
        await JsonAsync(context, StatusCodes.Status200OK, new AdminToolBody(tool, name), AdminJsonContext.Default.AdminToolBody);
    }

    /// <summary>The money endpoints need the credit ledger; keys, suspensions and tool statuses do not.</summary>
    private async ValueTask<bool> CreditsOnAsync(HttpContext context)
    {
        if (states.Current.Credits.Enabled)
        {
            return true;
        }

        await ProblemAsync(context, StatusCodes.Status409Conflict, "Conflict",
            "Credits are disabled (McpGuard:Credits:Enabled is false): balances, caps and the ledger are not in use. Keys, suspensions and tool statuses work without them.");
        return false;
    }

    private int FreeCalls(string account) => states.Current.Credits.FreeCallsFor(account);

    /// <summary>The account as the store has it; null, with the 404 answered, when the store has never seen it.</summary>
    private async ValueTask<McpGuardAccount?> FindAccountAsync(HttpContext context, string id, DateTimeOffset now)
    {
        var account = await ledger.GetAccountAsync(id, FreeCalls(id), now, context.RequestAborted);
        if (account is null)
        {
            await UnknownAccountAsync(context, id);
        }

        return account;
    }

    private async ValueTask<AdminAccountBody?> AccountAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var state = states.Current;
        if (await ledger.GetAccountAsync(id, state.Credits.FreeCallsFor(id), now, cancellationToken) is not { } account)
        {
            return null;
        }

        var suspended = state.Auth.SuspendedAccounts.Contains(id) || await accountStatus.IsSuspendedAsync(id, cancellationToken);
        return new AdminAccountBody(account.Id, account.BalanceMicro, account.MonthlyCapMicro, account.SpentThisMonthMicro, account.FreeCallsLeft,
            suspended ? "suspended" : "active");
    }

    private static string? AccountFromRoute(HttpContext context, AdminErrors errors)
    {
        var id = (string)context.Request.RouteValues["id"]!;
        if (AdminInput.IsAccountId(id))
        {
            return id;
        }

        errors.Add("id", $"Must be {AdminInput.AccountId}.");
        return null;
    }

    private static string Actor(HttpContext context) => context.Items[ActorKey] as string ?? "unknown";

    private static string Micro(long? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "none";

    private async Task<bool> BodyFailedAsync(HttpContext context, AdminBodyFailure failure)
    {
        switch (failure)
        {
            case AdminBodyFailure.UnsupportedMediaType:
                await ProblemAsync(context, StatusCodes.Status415UnsupportedMediaType, "Unsupported Media Type", "Send the body as JSON with 'Content-Type: application/json'.");
                return true;
            case AdminBodyFailure.TooLarge:
                await ProblemAsync(context, StatusCodes.Status413PayloadTooLarge, "Payload Too Large",
                    $"An admin request body is at most {AdminInput.MaxBodyBytes.ToString(CultureInfo.InvariantCulture)} bytes.");
                return true;
            case AdminBodyFailure.TooSlow:
                await ProblemAsync(context, StatusCodes.Status408RequestTimeout, "Request Timeout",
                    "The request body arrived too slowly; send it without pausing, then retry. Nothing was changed.");
                return true;
            case AdminBodyFailure.ClientGone:
                Log.ClientDisconnected(_logger, context.Request.Method, context.Request.Path);
                return true;
            default:
                return false;
        }
    }

    private static Task InvalidAsync(HttpContext context, AdminErrors errors) =>
        ProblemAsync(context, StatusCodes.Status400BadRequest, "Invalid request", "See errors for what is wrong with each field; nothing was changed.", errors);

    private static Task UnknownAccountAsync(HttpContext context, string id) =>
        ProblemAsync(context, StatusCodes.Status404NotFound, "Not Found", $"Unknown account '{id}'.");

    private static Task ConflictAsync(HttpContext context, string detail) =>
        ProblemAsync(context, StatusCodes.Status409Conflict, "Conflict", detail);

    /// <summary>Writes problem+json through <see cref="IProblemDetailsService"/> (falling back to plain JSON when no writer accepts the request).</summary>
    private static Task ProblemAsync(HttpContext context, int status, string title, string detail, AdminErrors? errors = null)
    {
        var problem = errors is null ? new ProblemDetails() : new HttpValidationProblemDetails(errors.ToDictionary());
        problem.Status = status;
        problem.Title = title;
        problem.Detail = detail;
        return McpGuardProblems.WriteAsync(context, problem);
    }

    private static Task JsonAsync<T>(HttpContext context, int status, T value, JsonTypeInfo<T> type)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(value, type, contentType: null, context.RequestAborted);
    }

    private static partial class Log
    {
        [LoggerMessage(7001, LogLevel.Information, "Admin ({Actor}) topped up account {Account} by {AmountMicro} (ledger row {EntryId}); balance now {BalanceMicro}.", EventName = "AccountToppedUp")]
        public static partial void ToppedUp(ILogger logger, string actor, string account, long amountMicro, long entryId, long balanceMicro);

        [LoggerMessage(7002, LogLevel.Information, "Admin ({Actor}) adjusted account {Account} by {AmountMicro} (ledger row {EntryId}); balance now {BalanceMicro}. Note: {Note}", EventName = "AccountAdjusted")]
        public static partial void Adjusted(ILogger logger, string actor, string account, long amountMicro, long entryId, long balanceMicro, string note);

        [LoggerMessage(7003, LogLevel.Information, "Admin ({Actor}) set account {Account}'s monthly cap to {CapMicro} (was {PreviousCapMicro}).", EventName = "MonthlyCapSet")]
        public static partial void CapSet(ILogger logger, string actor, string account, string capMicro, string previousCapMicro);

        [LoggerMessage(7004, LogLevel.Information, "Admin ({Actor}) suspended account {Account}.", EventName = "AccountSuspended")]
        public static partial void Suspended(ILogger logger, string actor, string account);

        [LoggerMessage(7005, LogLevel.Information, "Admin ({Actor}) reactivated account {Account}.", EventName = "AccountReactivated")]
        public static partial void Reactivated(ILogger logger, string actor, string account);

        [LoggerMessage(7006, LogLevel.Information, "Admin ({Actor}) created API key {KeyId} for account {Account} with scopes '{Scopes}', expiring {ExpiresAt}.", EventName = "KeyCreated")]
        public static partial void KeyCreated(ILogger logger, string actor, string keyId, string account, string scopes, string expiresAt);

        [LoggerMessage(7007, LogLevel.Information, "Admin ({Actor}) revoked API key {KeyId}.", EventName = "KeyRevoked")]
        public static partial void KeyRevoked(ILogger logger, string actor, string keyId);

        [LoggerMessage(7008, LogLevel.Information, "Admin ({Actor}) set tool {Tool} to {Status} ({Change}).", EventName = "ToolStatusSet")]
        public static partial void ToolStatusSet(ILogger logger, string actor, string tool, string status, string change);

        [LoggerMessage(7101, LogLevel.Warning, "Admin request {Method} {Path} refused: {Why}.", EventName = "AdminRefused")]
        public static partial void Refused(ILogger logger, string method, PathString path, string why);

        [LoggerMessage(7102, LogLevel.Debug, "The client disconnected while sending admin request {Method} {Path}; nothing was changed.", EventName = "AdminClientDisconnected")]
        public static partial void ClientDisconnected(ILogger logger, string method, PathString path);
    }
}
