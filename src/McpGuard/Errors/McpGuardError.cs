using McpGuard.Protocol;

namespace McpGuard.Errors;

/// <summary>
/// One refusal or failure, ready to render: the catalog entry plus what is specific to this request.
/// Gates return it; <see cref="McpGuardErrorWriter"/> turns it into the response.
/// </summary>
internal sealed class McpGuardError
{
    public McpGuardError(McpGuardErrorDescriptor descriptor, string? detail = null)
    {
        Descriptor = descriptor;
        Detail = detail;
    }

    public McpGuardErrorDescriptor Descriptor { get; }

    /// <summary>A request-specific message (e.g. which envelope field was wrong); replaces the catalog message unless configuration overrides it.</summary>
    public string? Detail { get; }

    /// <summary>The JSON-RPC id to echo when the envelope could not be fully accepted but its id was read.</summary>
    public JsonRpcId Id { get; init; }

    /// <summary>Whole seconds until a retry can succeed; sent as <c>Retry-After</c> and <c>retry_after</c>.</summary>
    public long? RetryAfterSeconds { get; init; }

    /// <summary>A <c>WWW-Authenticate</c> challenge to send with the response.</summary>
    public string? Challenge { get; init; }

    /// <summary>The <c>Allow</c> header for 405 responses.</summary>
    public string? Allow { get; init; }

    /// <summary>Reason-specific fields rendered next to <c>reason</c> and <c>request_id</c> (snake_case keys).</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> Data { get; init; } = [];

    /// <summary>This error, saying that the call's charge was given back: <c>refunded: true</c> and <c>refunded_micro</c>.</summary>
    public McpGuardError WithRefund(long refundedMicro) => new(Descriptor, Detail)
    {
        Id = Id,
        RetryAfterSeconds = RetryAfterSeconds,
        Challenge = Challenge,
        Allow = Allow,
        Data = [.. Data, new("refunded", true), new("refunded_micro", refundedMicro)],
    };
}

/// <summary>
/// Thrown by an endpoint McpGuard owns (the proxy) that could not serve the call, for a reason in the catalog: the
/// settlement refunds the charge as for any failure, and the pipeline answers with <see cref="Error"/> instead of
/// <c>internal_error</c>, unless the response has already started.
/// </summary>
internal sealed class McpGuardEndpointException(McpGuardError error, Exception? inner = null)
    : Exception(error.Detail ?? error.Descriptor.Message, inner)
{
    public McpGuardError Error { get; } = error;
}
