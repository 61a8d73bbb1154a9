using System.Globalization;
using System.Security.Cryptography;
using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Errors;
using McpGuard.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace McpGuard.Admin;

/// <summary>
/// The admin API's handlers behind <c>MapMcpGuardAdmin</c>: accounts (top-up, adjustment, cap, suspension, ledger), run-time
/// API keys and tool status, each through its store interface. Authorization is the route group's policy (the admin key
/// scheme, <see cref="McpGuardSchemes.AdminKey"/>, or <c>McpGuard:Admin:Policy</c>); <see cref="FilterAsync"/> then
/// checks the origin, the credits switch and every input problem, so a handler only runs on valid input and a refused
/// request changes nothing. Money moves are ledger rows; every other change is an audit log line (category
/// <c>McpGuard.Admin</c>, events 7001+), which never holds a key's plaintext.
/// </summary>
internal sealed partial class AdminApi(
    McpGuardStateProvider states,
    IMcpGuardLedgerStore ledger,
    IMcpGuardApiKeyStore keys,
    IMcpGuardAccountStatusStore accountStatus,
    IMcpGuardToolStatusStore toolStatus,
    RecentTraffic traffic,
    TimeProvider clock,
    ILoggerFactory loggers)
{
    internal const string LoggerCategory = "McpGuard.Admin";

    /// <summary>The most tools, and the most accounts, the usage figures list (the largest by charged amount).</summary>
    internal const int MaxUsageRows = 50;

    private readonly ILogger _logger = loggers.CreateLogger(LoggerCategory);

    /// <summary>
    /// The group's filter, after authorization and before every handler: no-store, the origin, the credits switch (for the
    /// endpoints marked <see cref="AdminNeedsCredits"/>), then the route id and each bound input with its validation. Every
    /// input problem is answered at once, in one 400.
    /// </summary>
    public async ValueTask<object?> FilterAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        context.Response.Headers.CacheControl = "no-store";
        var state = states.Current;
        if (context.Request.Headers.Origin is { Count: > 0 } origin && !state.IsOriginAllowed(origin, context.Request)
            && !(origin.Count == 1 && McpGuardState.IsOwnOrigin(origin[0]!, context.Request) && ByAdminKey(context)))
        {
            // A browser page on another origin (say, one riding an admin's cookie under a policy) may not drive the admin API.
            Log.Refused(_logger, context.Request.Method, context.Request.Path, "origin not allowed");
            return Problem(context, McpGuardAdminReasons.Forbidden,
                $"Origin '{origin}' may not call the admin API; allowed origins are set in McpGuard:AllowedOrigins.");
        }

        var metadata = context.GetEndpoint()?.Metadata;
        if (metadata?.GetMetadata<AdminNeedsCredits>() is not null && !state.Credits.Enabled)
        {
            return Problem(context, McpGuardAdminReasons.CreditsDisabled,
                "Credits are disabled (McpGuard:Credits:Enabled is false): balances, caps and the ledger are not in use. Keys, suspensions and tool statuses work without them.");
        }

        var errors = new AdminErrors();
        if (metadata?.GetMetadata<AdminAccountRoute>() is not null && !AdminInput.IsAccountId(context.Request.RouteValues["id"] as string ?? ""))
        {
            errors.Add("id", $"Must be {AdminInput.AccountId}.");
        }

        foreach (var argument in invocation.Arguments)
        {
            if (argument is not IAdminInput input)
            {
                continue;
            }

            switch (input.Failure)
            {
                case AdminBodyFailure.UnsupportedMediaType:
                    return Problem(context, McpGuardAdminReasons.UnsupportedMediaType, "Send the body as JSON with 'Content-Type: application/json'.");
                case AdminBodyFailure.TooLarge:
                    return Problem(context, McpGuardAdminReasons.PayloadTooLarge,
                        $"An admin request body is at most {AdminInput.MaxBodyBytes.ToString(CultureInfo.InvariantCulture)} bytes.");
                case AdminBodyFailure.TooSlow:
                    return Problem(context, McpGuardAdminReasons.RequestTimeout,
                        "The request body arrived too slowly; send it without pausing, then retry. Nothing was changed.");
                case AdminBodyFailure.ClientGone:
                    return Results.Empty;
            }

            errors.Add(input.Errors);
            if (input.Value is { } value)
            {
                await AdminValidation.ValidateAsync(value, context.RequestServices, errors, context.RequestAborted);
            }
        }

        if (errors.Any)
        {
            return Problem(context, McpGuardAdminReasons.InvalidRequest, "See errors for what is wrong with each field; nothing was changed.", errors);
        }

        return await next(invocation);
    }

    // POST /accounts/{id}/topup
    public async Task<Results<JsonHttpResult<AdminMoveBody>, ProblemHttpResult>> TopUpAsync(HttpContext context, string id, TopUpRequest request)
    {
        var amount = request.AmountMicro!.Value;
        var now = clock.GetUtcNow();
        var tooLarge = $"A top-up of {amount} would take account '{id}' past the largest balance a ledger can hold.";
        var before = await ledger.GetAccountAsync(id, FreeCalls(id), now, context.RequestAborted);
        if ((before?.BalanceMicro ?? 0) > long.MaxValue - amount)
        {
            return Problem(context, McpGuardAdminReasons.Conflict, tooLarge);
        }

        McpGuardLedgerEntry entry;
        try
        {
            entry = await ledger.TopUpAsync(id, amount, request.Note, now, CancellationToken.None);
        }
        catch (OverflowException)
        {
            return Problem(context, McpGuardAdminReasons.Conflict, tooLarge);
        }

        var account = await AccountAsync(id, now, context.RequestAborted);
        Log.ToppedUp(_logger, Actor(context), id, entry.AmountMicro, entry.Id, entry.BalanceAfterMicro);
        return TypedResults.Json(new AdminMoveBody(AdminLedgerRowBody.From(entry), account!), AdminJsonContext.Default.AdminMoveBody);
    }

    // POST /accounts/{id}/adjust
    public async Task<Results<JsonHttpResult<AdminMoveBody>, ProblemHttpResult>> AdjustAsync(HttpContext context, string id, AdjustRequest request)
    {
        var amount = request.AmountMicro!.Value;
        var note = request.Note!;
        var now = clock.GetUtcNow();
        if (await ledger.GetAccountAsync(id, FreeCalls(id), now, context.RequestAborted) is not { } before)
        {
            return UnknownAccount(context, id);
        }

        if (Refusal(before.BalanceMicro, amount, id) is { } refusal)
        {
            return Problem(context, McpGuardAdminReasons.Conflict, refusal);
        }

        McpGuardLedgerEntry entry;
        try
        {
            entry = await ledger.AdjustAsync(id, amount, note, now, CancellationToken.None);
        }
        catch (Exception ex) when (ex is InvalidOperationException or OverflowException)
        {
            // The balance may have moved between the check above and the adjustment; any other failure is the store's.
            var current = await ledger.GetAccountAsync(id, FreeCalls(id), now, context.RequestAborted);
            if (Refusal(current?.BalanceMicro ?? 0, amount, id) is not { } raced)
            {
                throw;
            }

            return Problem(context, McpGuardAdminReasons.Conflict, raced);
        }

        var account = await AccountAsync(id, now, context.RequestAborted);
        Log.Adjusted(_logger, Actor(context), id, entry.AmountMicro, entry.Id, entry.BalanceAfterMicro, note);
        return TypedResults.Json(new AdminMoveBody(AdminLedgerRowBody.From(entry), account!), AdminJsonContext.Default.AdminMoveBody);

        static string? Refusal(long balance, long amount, string id) =>
            balance + amount < 0 ? $"An adjustment of {amount} would take account '{id}' below zero (balance {balance})."
            : amount > 0 && balance > long.MaxValue - amount ? $"An adjustment of {amount} would take account '{id}' past the largest balance a ledger can hold."
            : null;
    }

    // GET /accounts/{id}
    public async Task<Results<JsonHttpResult<AdminAccountBody>, ProblemHttpResult>> GetAccountAsync(HttpContext context, string id) =>
        await AccountAsync(id, clock.GetUtcNow(), context.RequestAborted) is { } account
            ? TypedResults.Json(account, AdminJsonContext.Default.AdminAccountBody)
            : UnknownAccount(context, id);

    // PUT /accounts/{id}/cap
    public async Task<Results<JsonHttpResult<AdminAccountBody>, ProblemHttpResult>> SetCapAsync(HttpContext context, string id, SetCapRequest request)
    {
        var cap = request.MonthlyCapMicro;
        var now = clock.GetUtcNow();
        if (await ledger.GetAccountAsync(id, FreeCalls(id), now, context.RequestAborted) is not { } before)
        {
            return UnknownAccount(context, id);
        }

        await ledger.SetMonthlyCapAsync(id, cap, CancellationToken.None);
        var account = await AccountAsync(id, now, context.RequestAborted);
        Log.CapSet(_logger, Actor(context), id, Micro(cap), Micro(before.MonthlyCapMicro));
        return TypedResults.Json(account!, AdminJsonContext.Default.AdminAccountBody);
    }

    // POST /accounts/{id}/suspend and /reactivate: the account status store; with credits on, the account must be in the ledger.
    public async Task<Results<JsonHttpResult<AdminAccountBody>, JsonHttpResult<AdminAccountStatusBody>, ProblemHttpResult>> SetSuspendedAsync(
        HttpContext context, string id, bool suspended)
    {
        var now = clock.GetUtcNow();
        var state = states.Current;
        if (state.Credits.Enabled && await ledger.GetAccountAsync(id, FreeCalls(id), now, context.RequestAborted) is null)
        {
            return UnknownAccount(context, id);
        }

        if (!suspended && state.Auth.SuspendedAccounts.Contains(id))
        {
            // The guard refuses accounts suspended in configuration whatever the store says: reactivating only in the
            // store would answer "active" while every call is still refused.
            return Problem(context, McpGuardAdminReasons.Conflict,
                $"Account '{id}' is suspended by configuration (McpGuard:Accounts:{id}:Suspended); set it to false there to reactivate the account.");
        }

        await accountStatus.SetSuspendedAsync(id, suspended, CancellationToken.None);
        if (suspended)
        {
            Log.Suspended(_logger, Actor(context), id);
        }
        else
        {
            Log.Reactivated(_logger, Actor(context), id);
        }

        return state.Credits.Enabled && await AccountAsync(id, now, context.RequestAborted) is { } account
            ? TypedResults.Json(account, AdminJsonContext.Default.AdminAccountBody)
            : TypedResults.Json(new AdminAccountStatusBody(id, suspended ? "suspended" : "active"), AdminJsonContext.Default.AdminAccountStatusBody);
    }

    // GET /accounts/{id}/ledger?limit=50&before=<cursor>
    public async Task<Results<JsonHttpResult<AdminLedgerPageBody>, ProblemHttpResult>> GetLedgerAsync(HttpContext context, string id, AdminLedgerQuery query)
    {
        if (await ledger.GetAccountAsync(id, FreeCalls(id), clock.GetUtcNow(), context.RequestAborted) is null)
        {
            return UnknownAccount(context, id);
        }

        var page = await ledger.GetLedgerAsync(id, query.Before, query.Limit, context.RequestAborted);
        return TypedResults.Json(
            new AdminLedgerPageBody([.. page.Entries.Select(AdminLedgerRowBody.From)], page.NextCursor),
            AdminJsonContext.Default.AdminLedgerPageBody);
    }

    // GET /ledger/verify
    public async Task<Results<JsonHttpResult<AdminLedgerCheckBody>, ProblemHttpResult>> VerifyLedgerAsync(HttpContext context)
    {
        if (ledger is not LedgerEngine engine)
        {
            return Problem(context, McpGuardAdminReasons.Conflict,
                $"The ledger store is the app's own ({ledger.GetType().Name}): McpGuard verifies its built-in ledger only.");
        }

        var check = await engine.VerifyAsync(context.RequestAborted);
        if (check.Differences.Count > 0)
        {
            Log.LedgerDifferences(_logger, Actor(context), check.Differences.Count, check.AccountsChecked, check.AsOfId);
        }

        return TypedResults.Json(
            new AdminLedgerCheckBody(check.AccountsChecked, check.RowsChecked, check.AsOfId, [.. check.Differences.Select(AdminLedgerDifferenceBody.From)]),
            AdminJsonContext.Default.AdminLedgerCheckBody);
    }

    // GET /usage?window=hour|day: the ledger's usage and refund rows of the window, added up by the store.
    public async Task<Results<JsonHttpResult<AdminUsageBody>, ProblemHttpResult>> GetUsageAsync(HttpContext context, AdminWindowQuery window)
    {
        var (from, to) = window.Aligned(clock.GetUtcNow());
        if (ledger is not ILedgerTotals store)
        {
            return Problem(context, McpGuardAdminReasons.Conflict,
                $"The ledger store is the app's own ({ledger.GetType().Name}): usage figures are added up by McpGuard's own stores only (Sqlite, InMemory, PostgreSql).");
        }

        var totals = await store.GetTotalsAsync(from, to, window.Bucket, context.RequestAborted);
        var all = new AdminUsageFigures();
        var buckets = new AdminUsageBucketBody[(int)(window.Length.Ticks / window.Bucket.Ticks)];
        for (var i = 0; i < buckets.Length; i++)
        {
            buckets[i] = new AdminUsageBucketBody((from + TimeSpan.FromTicks(window.Bucket.Ticks * i)).UtcDateTime);
        }

        var tools = new Dictionary<string, AdminUsageToolBody>(StringComparer.Ordinal);
        var accounts = new Dictionary<string, AdminUsageAccountBody>(StringComparer.Ordinal);
        foreach (var total in totals)
        {
            if (total.Kind is not (McpGuardLedgerEntryKind.Usage or McpGuardLedgerEntryKind.Capture or McpGuardLedgerEntryKind.Refund))
            {
                continue;
            }

            var index = (int)((total.BucketStart - from).Ticks / window.Bucket.Ticks);
            if (index < 0 || index >= buckets.Length)
            {
                continue;
            }

            all.Add(total);
            buckets[index].Add(total);
            var tool = total.Tool ?? "";
            (tools.TryGetValue(tool, out var byTool) ? byTool : tools[tool] = new AdminUsageToolBody(tool)).Add(total);
            (accounts.TryGetValue(total.Account, out var byAccount) ? byAccount : accounts[total.Account] = new AdminUsageAccountBody(total.Account)).Add(total);
        }

        return TypedResults.Json(
            new AdminUsageBody(
                window.Name,
                (int)window.Bucket.TotalSeconds,
                from.UtcDateTime,
                to.UtcDateTime,
                all,
                buckets,
                [.. Largest(tools.Values, t => t.Tool)],
                tools.Count,
                [.. Largest(accounts.Values, a => a.Account)],
                accounts.Count),
            AdminJsonContext.Default.AdminUsageBody);

        static IEnumerable<T> Largest<T>(IEnumerable<T> rows, Func<T, string> name)
            where T : AdminUsageFigures =>
            rows.OrderByDescending(r => r.ChargedMicro).ThenByDescending(r => r.ChargedCalls + r.FreeCalls).ThenBy(name, StringComparer.Ordinal).Take(MaxUsageRows);
    }

    // GET /traffic?window=hour|day: this instance's requests, from RecentTraffic (not shared between instances).
    public JsonHttpResult<AdminTrafficBody> GetTraffic(AdminWindowQuery window)
    {
        var snapshot = traffic.Snapshot(window.Length, window.Bucket);
        var refusals = new Dictionary<string, long>(StringComparer.Ordinal);
        var tools = new SortedDictionary<string, (long Passed, long Refused)>(StringComparer.Ordinal);
        var methods = new SortedDictionary<string, (long Passed, long Refused)>(StringComparer.Ordinal);
        foreach (var (key, count) in snapshot.Totals)
        {
            var passed = key.Outcome == RecentTraffic.Passed;
            if (!passed)
            {
                refusals[key.Outcome] = refusals.GetValueOrDefault(key.Outcome) + count;
            }

            Count(methods, key.Method, passed, count);
            if (key.Tool is { } tool)
            {
                Count(tools, tool, passed, count);
            }
        }

        return TypedResults.Json(
            new AdminTrafficBody(
                window.Name,
                (int)window.Bucket.TotalSeconds,
                "instance",
                snapshot.Buckets.Sum(b => b.Passed),
                snapshot.Buckets.Sum(b => b.Refused),
                [.. snapshot.Buckets.Select(b => new AdminTrafficBucketBody(b.Start.UtcDateTime, b.Passed, b.Refused))],
                [.. refusals.OrderByDescending(r => r.Value).ThenBy(r => r.Key, StringComparer.Ordinal).Select(r => new AdminTrafficReasonBody(r.Key, r.Value))],
                [.. tools.Select(t => new AdminTrafficToolBody(t.Key, t.Value.Passed, t.Value.Refused))],
                [.. methods.Select(m => new AdminTrafficMethodBody(m.Key, m.Value.Passed, m.Value.Refused))]),
            AdminJsonContext.Default.AdminTrafficBody);

        static void Count(SortedDictionary<string, (long Passed, long Refused)> counts, string name, bool passed, long count)
        {
            var (p, r) = counts.GetValueOrDefault(name);
            counts[name] = passed ? (p + count, r) : (p, r + count);
        }
    }

    // GET /tools: the tools of McpGuard:Tools, with their price, scopes and status (configured, and in force).
    public async Task<JsonHttpResult<AdminToolsBody>> GetToolsAsync(HttpContext context)
    {
        var state = states.Current;
        var tools = new List<AdminToolInfoBody>();
        foreach (var (name, policy) in state.Options.Tools.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var configured = policy?.Status ?? McpGuardToolStatus.Live;
            var current = await toolStatus.GetStatusAsync(name, context.RequestAborted) ?? configured;
            tools.Add(new AdminToolInfoBody(
                name,
                policy?.Meter?.MaxMicro ?? policy?.Price ?? state.Options.Credits.DefaultPrice,
                [.. policy?.Scopes ?? []],
                McpGuard.Tools.ToolStatusGate.Name(configured),
                McpGuard.Tools.ToolStatusGate.Name(current))
            {
                PerUnitMicro = policy?.Meter?.PerUnitMicro,
            });
        }

        return TypedResults.Json(new AdminToolsBody(tools, state.Options.Credits.DefaultPrice), AdminJsonContext.Default.AdminToolsBody);
    }

    // POST /keys
    public async Task<Results<JsonHttpResult<AdminCreatedKeyBody>, ProblemHttpResult>> CreateKeyAsync(HttpContext context, CreateKeyRequest request)
    {
        var keyOptions = states.Current.Options.Auth.ApiKeys;
        if (!keyOptions.Enabled)
        {
            return Problem(context, McpGuardAdminReasons.Conflict, "API keys are disabled (McpGuard:Auth:ApiKeys:Enabled is false), so a new key could not be used.");
        }

        var account = request.Account!;
        string[] scopes = [.. request.Scopes!.OfType<string>().Distinct(StringComparer.Ordinal)];
        DateTimeOffset? expiresAt = request.ExpiresAt is { } text && AdminInput.TryParseTime(text, out var time) ? time : null;
        var id = request.Id ?? "key_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        if (keyOptions.Keys.Any(k => string.Equals(k.Id, id, StringComparison.Ordinal)))
        {
            return Problem(context, McpGuardAdminReasons.Conflict, $"Key id '{id}' is taken by a key in configuration (McpGuard:Auth:ApiKeys:Keys).");
        }

        var (plaintext, hash) = McpGuardApiKey.Generate(keyOptions.Prefix);
        var key = new McpGuardApiKey(id, account, scopes, expiresAt, maxPriceMicro: request.MaxPriceMicro);
        try
        {
            await keys.AddAsync(key, Convert.FromHexString(hash), CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
            // The store refuses a taken id (the secret is 256 random bits, so it is never the hash that clashes).
            return Problem(context, McpGuardAdminReasons.Conflict, $"Key id '{id}' is taken by a key created earlier.");
        }

        Log.KeyCreated(_logger, Actor(context), id, account, string.Join(' ', scopes), expiresAt?.ToString("O", CultureInfo.InvariantCulture) ?? "never");
        return TypedResults.Json(
            new AdminCreatedKeyBody(id, plaintext, account, scopes, expiresAt?.UtcDateTime) { MaxPriceMicro = request.MaxPriceMicro },
            AdminJsonContext.Default.AdminCreatedKeyBody,
            statusCode: StatusCodes.Status201Created);
    }

    // POST /keys/{id}/revoke
    public async Task<Results<JsonHttpResult<AdminRevokedKeyBody>, ProblemHttpResult>> RevokeKeyAsync(HttpContext context, string id)
    {
        if (states.Current.Options.Auth.ApiKeys.Keys.Any(k => string.Equals(k.Id, id, StringComparison.Ordinal)))
        {
            return Problem(context, McpGuardAdminReasons.Conflict, $"Key '{id}' comes from configuration; set Revoked to true on it in McpGuard:Auth:ApiKeys:Keys.");
        }

        if (!await keys.RevokeAsync(id, CancellationToken.None))
        {
            return Problem(context, McpGuardAdminReasons.NotFound, $"Unknown key '{id}'.");
        }

        Log.KeyRevoked(_logger, Actor(context), id);
        return TypedResults.Json(new AdminRevokedKeyBody(id, Revoked: true), AdminJsonContext.Default.AdminRevokedKeyBody);
    }

    // POST /tools/{name}/pause, /archive, /restore (null: back to the status in configuration).
    public async Task<Results<JsonHttpResult<AdminToolBody>, ProblemHttpResult>> SetToolStatusAsync(HttpContext context, string name, McpGuardToolStatus? status)
    {
        var configured = states.Current.Options.Tools.TryGetValue(name, out var policy) ? policy?.Status ?? McpGuardToolStatus.Live : (McpGuardToolStatus?)null;
        if (configured is null && await toolStatus.GetStatusAsync(name, context.RequestAborted) is null)
        {
            return Problem(context, McpGuardAdminReasons.NotFound, $"Unknown tool '{name}': list it under McpGuard:Tools to manage its status.");
        }

        await toolStatus.SetStatusAsync(name, status, CancellationToken.None);
        var effective = McpGuard.Tools.ToolStatusGate.Name(status ?? configured ?? McpGuardToolStatus.Live);
        Log.ToolStatusSet(_logger, Actor(context), name, effective, status is null ? "restored to configuration" : "override");
        return TypedResults.Json(new AdminToolBody(name, effective), AdminJsonContext.Default.AdminToolBody);
    }

    /// <summary>
    /// A problem+json answer: status and title from the error catalog, the request's own detail. Written by the app's
    /// <see cref="IProblemDetailsService"/> when it registered one (McpGuard registers none); without one the framework
    /// writes it as JSON, and the trace id the default writer adds is added here so that the body is the same.
    /// </summary>
    internal static ProblemHttpResult Problem(HttpContext context, string reason, string detail, AdminErrors? errors = null)
    {
        var descriptor = McpGuardErrorCatalog.Admin(reason);
        var problem = errors is null ? new ProblemDetails() : new HttpValidationProblemDetails(errors.ToDictionary());
        problem.Status = descriptor.StatusCode;
        problem.Title = descriptor.Message;
        problem.Detail = detail;
        return TypedResults.Problem(ProblemJson.WithTraceId(context, problem));
    }

    /// <summary>
    /// Whether the request proved it holds the admin key (the admin key scheme authenticated it). Such a caller may send its
    /// page's own origin from any host name: a page that rebinds its name to this server (DNS rebinding) gets through the
    /// same-origin comparison but cannot know the key. Under an app's policy the credentials may be ambient (a cookie, a
    /// client certificate, the caller's address), so there the origin must be allowed by name.
    /// </summary>
    private static bool ByAdminKey(HttpContext context) =>
        context.User.Identities.Any(identity => identity.IsAuthenticated && identity.AuthenticationType == McpGuardSchemes.AdminKey);

    private static ProblemHttpResult UnknownAccount(HttpContext context, string id) =>
        Problem(context, McpGuardAdminReasons.NotFound, $"Unknown account '{id}'.");

    private int FreeCalls(string account) => states.Current.Credits.FreeCallsFor(account);

    private async ValueTask<AdminAccountBody?> AccountAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var state = states.Current;
        if (await ledger.GetAccountAsync(id, state.Credits.FreeCallsFor(id), now, cancellationToken) is not { } account)
        {
            return null;
        }

        var suspended = await state.Auth.IsSuspendedAsync(id, accountStatus, cancellationToken);
        return new AdminAccountBody(account.Id, account.BalanceMicro, account.MonthlyCapMicro, account.SpentThisMonthMicro, account.FreeCallsLeft,
            suspended ? "suspended" : "active");
    }

    /// <summary>Who made the change, for the audit log: the admin key scheme's user, or the policy's.</summary>
    private string Actor(HttpContext context) =>
        context.User.Identity?.Name is { Length: > 0 } name ? name : $"policy {states.Current.Options.Admin.Policy}";

    private static string Micro(long? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "none";

    internal static partial class Log
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

        [LoggerMessage(7009, LogLevel.Error, "Admin ({Actor}) verified the ledger: {Count} of {Accounts} accounts have a balance that is not what their rows add up to (as of row {AsOfId}).", EventName = "LedgerDifferences")]
        public static partial void LedgerDifferences(ILogger logger, string actor, int count, int accounts, long asOfId);

        [LoggerMessage(7101, LogLevel.Warning, "Admin request {Method} {Path} refused: {Why}.", EventName = "AdminRefused")]
        public static partial void Refused(ILogger logger, string method, PathString path, string why);

        [LoggerMessage(7102, LogLevel.Debug, "The client disconnected while sending admin request {Method} {Path}; nothing was changed.", EventName = "AdminClientDisconnected")]
        public static partial void ClientDisconnected(ILogger logger, string method, PathString path);
    }
}

/// <summary>Endpoint metadata: the endpoint needs the credit ledger (credits off → 409 before anything else is read).</summary>
internal sealed class AdminNeedsCredits
{
    public static readonly AdminNeedsCredits Instance = new();
}

/// <summary>Endpoint metadata: the route's <c>{id}</c> is an account id, checked with the body.</summary>
internal sealed class AdminAccountRoute
{
    public static readonly AdminAccountRoute Instance = new();
}
