using System.Collections.Frozen;
using Microsoft.AspNetCore.Http;

namespace McpGuard.Errors;

/// <summary>
/// The one place that maps a reason slug to its HTTP status, JSON-RPC code, message, retryability and
/// client action. Writers only render what this returns. Built once per (validated) configuration.
/// </summary>
internal sealed class McpGuardErrorCatalog
{
    // Application codes sit outside the JSON-RPC reserved range -32768..-32000 (JSON-RPC 2.0 §5.1), grouped
    // by family so that every reason whose correct client action differs has its own code:
    // -311xx access, -312xx limits, -313xx money, -314xx tool availability, -315xx upstream.
    // The only code used inside -32099..-32020 (reserved by the MCP specification) is HeaderMismatch, -32020.
    private const int ParseErrorCode = -32700;
    private const int InvalidRequestCode = -32600;
    private const int InvalidParamsCode = -32602;
    private const int InternalErrorCode = -32603;
    private const int HeaderMismatchCode = -32020;

    /// <summary>Codes the MCP specification (2026-07-28) defines inside its reserved block -32099..-32020.</summary>
    private static readonly FrozenSet<int> SpecificationDefinedCodes = new[] { -32020, -32021, -32022, -32042 }.ToFrozenSet();

    /// <summary>The built-in entries, in the order the README's table lists them.</summary>
    public static IReadOnlyList<McpGuardErrorDescriptor> Defaults { get; } =
    [
        new(McpGuardReasons.ParseError, StatusCodes.Status400BadRequest, ParseErrorCode, "Parse error", false,
            McpGuardClientAction.FixRequest, "Send one JSON-RPC 2.0 message as UTF-8 encoded JSON."),
        new(McpGuardReasons.InvalidRequest, StatusCodes.Status400BadRequest, InvalidRequestCode, "Invalid Request", false,
            McpGuardClientAction.FixRequest, "Send one JSON-RPC 2.0 object per POST with \"jsonrpc\": \"2.0\", a string method and a string or integer id."),
        new(McpGuardReasons.PayloadTooLarge, StatusCodes.Status413PayloadTooLarge, InvalidRequestCode, "Payload Too Large", false,
            McpGuardClientAction.FixRequest, "Send a smaller request body."),
        new(McpGuardReasons.RequestTimeout, StatusCodes.Status408RequestTimeout, -31202, "Request Timeout", true,
            McpGuardClientAction.Retry, "Send the whole request body without pausing, then retry."),
        new(McpGuardReasons.UnsupportedMediaType, StatusCodes.Status415UnsupportedMediaType, InvalidRequestCode, "Unsupported Media Type", false,
            McpGuardClientAction.FixRequest, "Send the body with Content-Type: application/json."),
        new(McpGuardReasons.NotAcceptable, StatusCodes.Status406NotAcceptable, InvalidRequestCode, "Not Acceptable", false,
            McpGuardClientAction.FixRequest, "Send Accept: application/json, text/event-stream."),
        new(McpGuardReasons.MethodNotAllowed, StatusCodes.Status405MethodNotAllowed, InvalidRequestCode, "Method Not Allowed", false,
            McpGuardClientAction.FixRequest, "Send MCP messages with POST."),
        new(McpGuardReasons.OriginNotAllowed, StatusCodes.Status403Forbidden, -31105, "Origin not allowed", false,
            McpGuardClientAction.DoNotRetry, "This server does not accept requests from this web origin."),
        new(McpGuardReasons.HeaderMismatch, StatusCodes.Status400BadRequest, HeaderMismatchCode, "Header mismatch", false,
            McpGuardClientAction.FixRequest, "Make the Mcp-Method and Mcp-Name headers repeat the body's method and name."),
        new(McpGuardReasons.InternalError, StatusCodes.Status500InternalServerError, InternalErrorCode, "Internal error", false,
            McpGuardClientAction.DoNotRetry, "Report the request id to the server's operator; do not retry in a loop."),
        new(McpGuardReasons.Unauthorized, StatusCodes.Status401Unauthorized, -31101, "Authentication required", false,
            McpGuardClientAction.Authenticate, "Authenticate with an API key or an OAuth access token, then retry."),
        new(McpGuardReasons.InvalidToken, StatusCodes.Status401Unauthorized, -31102, "Invalid or expired credentials", false,
            McpGuardClientAction.Authenticate, "Obtain a new access token or API key, then retry."),
        new(McpGuardReasons.InsufficientScope, StatusCodes.Status403Forbidden, -31103, "Insufficient scope", false,
            McpGuardClientAction.RequestScope, "Obtain credentials with the scopes named in the WWW-Authenticate challenge, then retry."),
        new(McpGuardReasons.Suspended, StatusCodes.Status403Forbidden, -31104, "Account suspended", false,
            McpGuardClientAction.ContactSupport, "Contact the server's operator about the account.") { AllowsToolResult = true },
        new(McpGuardReasons.RateLimited, StatusCodes.Status429TooManyRequests, -31201, "Rate limit exceeded", true,
            McpGuardClientAction.BackOff, "Wait for the number of seconds in Retry-After, then retry.") { AllowsToolResult = true },
        new(McpGuardReasons.LimiterUnavailable, StatusCodes.Status503ServiceUnavailable, -31203, "Rate limiter unavailable", true,
            McpGuardClientAction.RetryLater, "The server cannot count calls right now; wait for the number of seconds in Retry-After, then retry.") { AllowsToolResult = true },
        new(McpGuardReasons.OutOfCredit, StatusCodes.Status402PaymentRequired, -31301, "Insufficient credit", false,
            McpGuardClientAction.TopUp, "Top up the account, then retry.") { AllowsToolResult = true },
        new(McpGuardReasons.CapReached, StatusCodes.Status402PaymentRequired, -31302, "Monthly spending cap reached", false,
            McpGuardClientAction.RaiseCap, "Raise the monthly cap or wait for it to reset on the 1st (UTC).") { AllowsToolResult = true },
        new(McpGuardReasons.PriceAboveLimit, StatusCodes.Status402PaymentRequired, -31306, "Price above limit", false,
            McpGuardClientAction.RaiseLimit, "The price (or, metered, the most the call can cost) is above the call's mcpguard/max_price_micro or the key's ceiling; raise the ceiling or pick a cheaper tool.") { AllowsToolResult = true },
        new(McpGuardReasons.DuplicateRequest, StatusCodes.Status409Conflict, -31303, "Request id already charged", false,
            McpGuardClientAction.FixRequest, "Send each call with its own X-Request-Id (or none, and McpGuard makes one)."),
        new(McpGuardReasons.LedgerUnavailable, StatusCodes.Status503ServiceUnavailable, -31305, "Ledger unavailable", true,
            McpGuardClientAction.RetryLater, "The server cannot reach its ledger, and nothing was charged; wait for the number of seconds in Retry-After, then retry.") { AllowsToolResult = true },
        new(McpGuardReasons.StreamableHttpRequired, StatusCodes.Status400BadRequest, -31304, "Streamable HTTP required", false,
            McpGuardClientAction.FixRequest, "Make priced calls over Streamable HTTP (a POST to the MCP endpoint), not over the legacy HTTP+SSE transport."),
        new(McpGuardReasons.ToolPaused, StatusCodes.Status503ServiceUnavailable, -31401, "Tool paused", true,
            McpGuardClientAction.RetryLater, "The publisher paused this tool; retry later or pick another.") { AllowsToolResult = true },
        new(McpGuardReasons.ToolArchived, StatusCodes.Status410Gone, -31402, "Tool archived", false,
            McpGuardClientAction.DoNotRetry, "This tool is no longer offered; pick another.") { AllowsToolResult = true },
        new(McpGuardReasons.SessionNotFound, StatusCodes.Status404NotFound, -31107, "Session not found", false,
            McpGuardClientAction.FixRequest, "Start a new session: send initialize without an Mcp-Session-Id header."),
        new(McpGuardReasons.UpstreamError, StatusCodes.Status502BadGateway, -31501, "Upstream error", true,
            McpGuardClientAction.Retry, "The server failed to answer; any charge was refunded. Retry.") { AllowsToolResult = true },
        new(McpGuardReasons.UpstreamTimeout, StatusCodes.Status504GatewayTimeout, -31502, "Upstream timeout", true,
            McpGuardClientAction.Retry, "The server did not answer in time; any charge was refunded. Retry.") { AllowsToolResult = true },
        new(McpGuardReasons.InvalidParameter, StatusCodes.Status200OK, InvalidParamsCode, "Invalid parameter", false,
            McpGuardClientAction.FixRequest, "Check the tool's input schema (tools/list), fix the arguments and call again.") { AllowsToolResult = true },
        new(McpGuardReasons.NotFound, StatusCodes.Status200OK, InvalidParamsCode, "Not found", false,
            McpGuardClientAction.FixRequest, "Check the identifier (list or search first), then call again with one that exists.") { AllowsToolResult = true },
        new(McpGuardReasons.Forbidden, StatusCodes.Status200OK, -31106, "Forbidden", false,
            McpGuardClientAction.DoNotRetry, "The caller may not do this; tell the user rather than retrying.") { AllowsToolResult = true },
        new(McpGuardReasons.Timeout, StatusCodes.Status200OK, -31503, "Timed out", true,
            McpGuardClientAction.RetryLater, "The operation took too long; retry later.") { AllowsToolResult = true },
    ];

    /// <summary>
    /// The admin API's entries (<see cref="McpGuardAdminReasons"/>): problem details only, so their codes (-316xx) are never
    /// sent, and they are not in <see cref="Defaults"/>, which lists what MCP clients can see and configuration can override.
    /// </summary>
    public static IReadOnlyList<McpGuardErrorDescriptor> AdminEntries { get; } =
    [
        new(McpGuardAdminReasons.InvalidRequest, StatusCodes.Status400BadRequest, -31601, "Invalid request", false,
            McpGuardClientAction.FixRequest, "Fix each field named in errors, then send the request again."),
        new(McpGuardAdminReasons.Unauthorized, StatusCodes.Status401Unauthorized, -31602, "Unauthorized", false,
            McpGuardClientAction.Authenticate, "Send the admin key as 'Authorization: Bearer <admin key>'."),
        new(McpGuardAdminReasons.Forbidden, StatusCodes.Status403Forbidden, -31603, "Forbidden", false,
            McpGuardClientAction.DoNotRetry, "Configure the admin API (McpGuard:Admin) or call it from an allowed origin."),
        new(McpGuardAdminReasons.NotFound, StatusCodes.Status404NotFound, -31604, "Not Found", false,
            McpGuardClientAction.FixRequest, "Check the account id, key id or tool name."),
        new(McpGuardAdminReasons.Conflict, StatusCodes.Status409Conflict, -31605, "Conflict", false,
            McpGuardClientAction.DoNotRetry, "The change contradicts the current state; the detail says which."),
        new(McpGuardAdminReasons.CreditsDisabled, StatusCodes.Status409Conflict, -31605, "Conflict", false,
            McpGuardClientAction.DoNotRetry, "Enable McpGuard:Credits to use balances, caps and the ledger."),
        new(McpGuardAdminReasons.UnsupportedMediaType, StatusCodes.Status415UnsupportedMediaType, -31601, "Unsupported Media Type", false,
            McpGuardClientAction.FixRequest, "Send the body as JSON with 'Content-Type: application/json'."),
        new(McpGuardAdminReasons.PayloadTooLarge, StatusCodes.Status413PayloadTooLarge, -31601, "Payload Too Large", false,
            McpGuardClientAction.FixRequest, "Send a smaller request body."),
        new(McpGuardAdminReasons.RequestTimeout, StatusCodes.Status408RequestTimeout, -31606, "Request Timeout", true,
            McpGuardClientAction.Retry, "Send the whole request body without pausing, then retry."),
    ];

    private static readonly FrozenDictionary<string, McpGuardErrorDescriptor> AdminByReason =
        AdminEntries.ToFrozenDictionary(d => d.Reason, StringComparer.Ordinal);

    /// <summary>The admin API's entry for <paramref name="reason"/> (one of <see cref="McpGuardAdminReasons"/>; a miss is a bug).</summary>
    public static McpGuardErrorDescriptor Admin(string reason) =>
        AdminByReason.TryGetValue(reason, out var descriptor)
            ? descriptor
            : throw new KeyNotFoundException($"McpGuard has no admin error catalog entry for reason '{reason}'.");

    private static readonly FrozenDictionary<string, McpGuardErrorDescriptor> DefaultsByReason =
        Defaults.ToFrozenDictionary(d => d.Reason, StringComparer.Ordinal);

    private readonly FrozenDictionary<string, McpGuardErrorDescriptor> _entries;
    private readonly FrozenSet<string> _messageOverridden;

    private McpGuardErrorCatalog(
        FrozenDictionary<string, McpGuardErrorDescriptor> entries,
        FrozenSet<string> messageOverridden,
        McpGuardErrorFormat defaultFormat)
    {
        _entries = entries;
        _messageOverridden = messageOverridden;
        DefaultFormat = defaultFormat;
    }

    /// <summary>The catalog with no overrides.</summary>
    public static McpGuardErrorCatalog Default { get; } = Create(new McpGuardErrorOptions());

    /// <summary>The rendering used where a reason does not choose its own.</summary>
    public McpGuardErrorFormat DefaultFormat { get; }

    /// <summary>Every entry, with overrides applied.</summary>
    public IEnumerable<McpGuardErrorDescriptor> Entries => _entries.Values;

    /// <summary>Returns the entry for a reason. Reasons come from <see cref="McpGuardReasons"/>, so a miss is a bug.</summary>
    public McpGuardErrorDescriptor this[string reason] =>
        _entries.TryGetValue(reason, out var descriptor)
            ? descriptor
            : throw new KeyNotFoundException($"McpGuard has no error catalog entry for reason '{reason}'.");

    /// <summary>Whether the entry for <paramref name="reason"/> is known.</summary>
    public static bool IsKnownReason(string reason) => DefaultsByReason.ContainsKey(reason);

    /// <summary>Whether the configured message replaces request-specific detail for this reason.</summary>
    public bool IsMessageOverridden(string reason) => _messageOverridden.Contains(reason);

    /// <summary>Builds a catalog from options that <see cref="Validate"/> accepted.</summary>
    public static McpGuardErrorCatalog Create(McpGuardErrorOptions options)
    {
        var entries = new Dictionary<string, McpGuardErrorDescriptor>(DefaultsByReason, StringComparer.Ordinal);
        var messageOverridden = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (reason, reasonOptions) in options.Reasons)
        {
            if (!entries.TryGetValue(reason, out var descriptor) || reasonOptions is null)
            {
                continue;
            }

            if (reasonOptions.Message is not null)
            {
                messageOverridden.Add(reason);
            }

            entries[reason] = descriptor with
            {
                Code = reasonOptions.Code ?? descriptor.Code,
                Message = reasonOptions.Message ?? descriptor.Message,
                Suggestion = reasonOptions.Suggestion ?? descriptor.Suggestion,
                Url = reasonOptions.Url ?? descriptor.Url,
                Format = reasonOptions.Format ?? descriptor.Format,
            };
        }

        return new McpGuardErrorCatalog(
            entries.ToFrozenDictionary(StringComparer.Ordinal),
            messageOverridden.ToFrozenSet(StringComparer.Ordinal),
            options.Format);
    }

    /// <summary>Adds every problem with the error options to <paramref name="errors"/>.</summary>
    public static void Validate(McpGuardErrorOptions options, string prefix, List<string> errors)
    {
        if (!Enum.IsDefined(options.Format))
        {
            errors.Add($"{prefix}:Format '{options.Format}' is not one of {string.Join(", ", Enum.GetNames<McpGuardErrorFormat>())}.");
        }

        foreach (var (reason, reasonOptions) in options.Reasons)
        {
            var at = $"{prefix}:Reasons:{reason}";
            if (!DefaultsByReason.ContainsKey(reason))
            {
                errors.Add($"{at}: unknown reason '{reason}'. Known reasons: {string.Join(", ", Defaults.Select(d => d.Reason))}.");
                continue;
            }

            if (reasonOptions is null)
            {
                continue;
            }

            if (reasonOptions.Code is int code && code is >= -32099 and <= -32020 && !SpecificationDefinedCodes.Contains(code))
            {
                errors.Add($"{at}:Code {code} lies in -32099..-32020, which the MCP specification reserves; it defines only {string.Join(", ", SpecificationDefinedCodes.Order())} there. Application codes belong outside -32768..-32000.");
            }

            if (reasonOptions.Message is { } message && string.IsNullOrWhiteSpace(message))
            {
                errors.Add($"{at}:Message must not be empty.");
            }

            if (reasonOptions.Format is { } format && !Enum.IsDefined(format))
            {
                errors.Add($"{at}:Format '{format}' is not one of {string.Join(", ", Enum.GetNames<McpGuardErrorFormat>())}.");
            }

            if (reasonOptions.Url is { IsAbsoluteUri: false })
            {
                errors.Add($"{at}:Url must be an absolute URI.");
            }
        }
    }
}
