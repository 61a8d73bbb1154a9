namespace McpGuard;

/// <summary>How McpGuard renders an error it produces.</summary>
internal enum McpGuardErrorFormat
{
    /// <summary>
    /// A JSON-RPC 2.0 error envelope (<c>application/json</c>) with <c>error.data.reason</c> and
    /// <c>error.data.request_id</c>, sent with the reason's HTTP status. The default.
    /// </summary>
    JsonRpc,

    /// <summary>
    /// An RFC 9457 <c>application/problem+json</c> body written through ASP.NET Core's
    /// <c>IProblemDetailsService</c>, with <c>error_code</c>, <c>request_id</c> and a <c>resolve</c> object.
    /// </summary>
    ProblemDetails,

    /// <summary>
    /// For <c>tools/call</c> requests refused by a gate (suspended, rate limited, out of credit…): an HTTP 200
    /// JSON-RPC result with <c>isError: true</c>, so agents that only read tool results still learn why.
    /// Never used for 401 or <c>insufficient_scope</c> (clients need those HTTP challenges to re-authorize),
    /// nor for front-door failures; those fall back to <see cref="JsonRpc"/>.
    /// </summary>
    ToolResult,
}
