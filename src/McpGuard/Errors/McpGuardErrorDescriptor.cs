namespace McpGuard.Errors;

/// <summary>One catalog entry: everything a writer needs to render a reason, and nothing request-specific.</summary>
internal sealed record McpGuardErrorDescriptor(
    string Reason,
    int StatusCode,
    int Code,
    string Message,
    bool Retryable,
    McpGuardClientAction Action,
    string Suggestion)
{
    /// <summary>The reason may be rendered in-band as a tool result (gate refusals of <c>tools/call</c>).</summary>
    public bool AllowsToolResult { get; init; }

    /// <summary>The configured rendering for this reason, when it overrides the default.</summary>
    public McpGuardErrorFormat? Format { get; init; }

    /// <summary>A page that helps the client resolve the error.</summary>
    public Uri? Url { get; init; }

    /// <summary>The action as written on the wire (snake_case).</summary>
    public string ActionName { get; } = ActionToWire(Action);

    internal static string ActionToWire(McpGuardClientAction action) => action switch
    {
        McpGuardClientAction.FixRequest => "fix_request",
        McpGuardClientAction.Authenticate => "authenticate",
        McpGuardClientAction.RequestScope => "request_scope",
        McpGuardClientAction.TopUp => "top_up",
        McpGuardClientAction.RaiseCap => "raise_cap",
        McpGuardClientAction.RaiseLimit => "raise_limit",
        McpGuardClientAction.BackOff => "back_off",
        McpGuardClientAction.RetryLater => "retry_later",
        McpGuardClientAction.Retry => "retry",
        McpGuardClientAction.DoNotRetry => "do_not_retry",
        McpGuardClientAction.ContactSupport => "contact_support",
        _ => throw new ArgumentOutOfRangeException(nameof(action), action, null),
    };
}
