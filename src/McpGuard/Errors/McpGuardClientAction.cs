namespace McpGuard;

/// <summary>
/// What a client should do about an error. Rendered as a snake_case string
/// (<c>resolve.action</c> in problem details, <c>action</c> in tool results).
/// </summary>
internal enum McpGuardClientAction
{
    /// <summary>Change the request; sending it again unchanged fails again.</summary>
    FixRequest,

    /// <summary>Obtain credentials (run the OAuth flow or configure an API key) and retry.</summary>
    Authenticate,

    /// <summary>Obtain a token or key with the scopes named in the challenge, then retry.</summary>
    RequestScope,

    /// <summary>Add credit to the account, then retry.</summary>
    TopUp,

    /// <summary>Raise the monthly cap or wait for it to reset, then retry.</summary>
    RaiseCap,

    /// <summary>Raise the call's (or the key's) spend ceiling, or pick a cheaper tool, then retry.</summary>
    RaiseLimit,

    /// <summary>Wait for the advertised delay (<c>Retry-After</c>), then retry.</summary>
    BackOff,

    /// <summary>Retry later, or pick another tool.</summary>
    RetryLater,

    /// <summary>Retrying the same call may succeed.</summary>
    Retry,

    /// <summary>Do not retry; tell the user.</summary>
    DoNotRetry,

    /// <summary>Do not retry; the account holder must contact the operator.</summary>
    ContactSupport,
}
