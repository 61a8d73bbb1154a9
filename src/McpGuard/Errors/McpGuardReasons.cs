namespace McpGuard;

/// <summary>
/// The stable, machine-readable reason slugs McpGuard puts in every error it produces
/// (<c>error.data.reason</c>, <c>error_code</c>, or the <c>**Error code:**</c> line of a tool result).
/// Clients branch on these; they never change meaning between versions. Public are the reasons a tool may fail with
/// (<see cref="McpGuardException"/>, <c>McpGuardToolOptions.Map</c>); the whole catalog is in docs/errors.md.
/// </summary>
public static class McpGuardReasons
{
    /// <summary>The body is not valid JSON (or not valid UTF-8).</summary>
    internal const string ParseError = "parse_error";

    /// <summary>The body is JSON but not a single JSON-RPC 2.0 message, or its HTTP framing (chunks, <c>Content-Length</c>) is broken.</summary>
    internal const string InvalidRequest = "invalid_request";

    /// <summary>The body is larger than the configured limit.</summary>
    internal const string PayloadTooLarge = "payload_too_large";

    /// <summary>The request body arrived more slowly than the server's minimum data rate; sending it again may succeed.</summary>
    internal const string RequestTimeout = "request_timeout";

    /// <summary>The request's <c>Content-Type</c> is not <c>application/json</c>.</summary>
    internal const string UnsupportedMediaType = "unsupported_media_type";

    /// <summary>The request's <c>Accept</c> header does not accept both <c>application/json</c> and <c>text/event-stream</c>.</summary>
    internal const string NotAcceptable = "not_acceptable";

    /// <summary>The HTTP method is not served by the guarded endpoint.</summary>
    internal const string MethodNotAllowed = "method_not_allowed";

    /// <summary>The request's <c>Origin</c> is not in the allow-list (DNS-rebinding protection).</summary>
    internal const string OriginNotAllowed = "origin_not_allowed";

    /// <summary>The <c>Mcp-Method</c> or <c>Mcp-Name</c> header disagrees with the body.</summary>
    internal const string HeaderMismatch = "header_mismatch";

    /// <summary>An unexpected failure inside the server. Not the caller's fault; do not loop on it.</summary>
    internal const string InternalError = "internal_error";

    /// <summary>No credentials were presented.</summary>
    internal const string Unauthorized = "unauthorized";

    /// <summary>The presented key or token is invalid, expired or revoked.</summary>
    internal const string InvalidToken = "invalid_token";

    /// <summary>The caller is authenticated but lacks a scope this call needs.</summary>
    internal const string InsufficientScope = "insufficient_scope";

    /// <summary>The caller's account is suspended.</summary>
    internal const string Suspended = "suspended";

    /// <summary>A rate limit was reached; retry after the advertised delay.</summary>
    public const string RateLimited = "rate_limited";

    /// <summary>The shared rate-limit store did not answer, so the call could not be counted; retry after the advertised delay.</summary>
    internal const string LimiterUnavailable = "limiter_unavailable";

    /// <summary>The ledger did not answer, so the priced call could not be charged (nothing was); retry after the advertised delay.</summary>
    internal const string LedgerUnavailable = "ledger_unavailable";

    /// <summary>The account's balance does not cover the price and no free call is left.</summary>
    internal const string OutOfCredit = "out_of_credit";

    /// <summary>
    /// The call's price (for a metered tool, its maximum) is above the spend ceiling of the call
    /// (<c>params._meta["mcpguard/max_price_micro"]</c>) or of its API key; nothing was charged or counted.
    /// </summary>
    internal const string PriceAboveLimit = "price_above_limit";

    /// <summary>The request id was already charged; each call needs its own.</summary>
    internal const string DuplicateRequest = "duplicate_request";

    /// <summary>
    /// A priced call came over the legacy HTTP+SSE transport, which answers before the call runs, so no charge could be
    /// settled by its outcome; make it over Streamable HTTP.
    /// </summary>
    internal const string StreamableHttpRequired = "streamable_http_required";

    /// <summary>The account's monthly spending cap would be exceeded.</summary>
    internal const string CapReached = "cap_reached";

    /// <summary>The tool is paused by its publisher; retry later or pick another.</summary>
    internal const string ToolPaused = "tool_paused";

    /// <summary>The tool is archived; do not retry.</summary>
    internal const string ToolArchived = "tool_archived";

    /// <summary>The <c>Mcp-Session-Id</c> names no session of this caller's that the proxy opened (start a new session).</summary>
    internal const string SessionNotFound = "session_not_found";

    /// <summary>The MCP server behind the guard failed. Any charge was refunded.</summary>
    public const string UpstreamError = "upstream_error";

    /// <summary>The MCP server behind the guard did not answer in time. Any charge was refunded.</summary>
    public const string UpstreamTimeout = "upstream_timeout";

    /// <summary>A tool argument was missing or invalid (tool result layer).</summary>
    public const string InvalidParameter = "invalid_parameter";

    /// <summary>The thing the tool was asked about does not exist (tool result layer).</summary>
    public const string NotFound = "not_found";

    /// <summary>The tool refused the operation for this caller (tool result layer).</summary>
    public const string Forbidden = "forbidden";

    /// <summary>The tool's own work timed out (tool result layer); retrying later may succeed.</summary>
    public const string Timeout = "timeout";
}

/// <summary>
/// The reasons of McpGuard's own admin API (<c>MapMcpGuardAdmin</c>). They render only as RFC 9457 problem details (the
/// catalog gives the status and the title; the problem type is the status's RFC 9110 section), never as JSON-RPC or as
/// tool results, and configuration cannot override them: the admin API speaks to operators, not to MCP clients.
/// </summary>
internal static class McpGuardAdminReasons
{
    /// <summary>A field of the request (route, query or body) is missing or wrong; the <c>errors</c> member names each.</summary>
    public const string InvalidRequest = "admin_invalid_request";

    /// <summary>No admin key, or a wrong one.</summary>
    public const string Unauthorized = "admin_unauthorized";

    /// <summary>The admin API is closed (neither a key hash nor a policy configured), or the request's Origin is not allowed.</summary>
    public const string Forbidden = "admin_forbidden";

    /// <summary>The account, key or tool is unknown.</summary>
    public const string NotFound = "admin_not_found";

    /// <summary>The change contradicts the current state (a balance below zero, a taken key id, configuration that wins).</summary>
    public const string Conflict = "admin_conflict";

    /// <summary>A money endpoint was called with credits disabled.</summary>
    public const string CreditsDisabled = "admin_credits_disabled";

    /// <summary>The body is not JSON (by its <c>Content-Type</c>).</summary>
    public const string UnsupportedMediaType = "admin_unsupported_media_type";

    /// <summary>The body is larger than an admin request may be.</summary>
    public const string PayloadTooLarge = "admin_payload_too_large";

    /// <summary>The body arrived more slowly than the server's minimum data rate.</summary>
    public const string RequestTimeout = "admin_request_timeout";
}
