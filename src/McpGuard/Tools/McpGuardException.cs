namespace McpGuard;

/// <summary>
/// Thrown by a tool to fail the call with a stable reason the caller can branch on. With
/// <c>WithMcpGuard()</c> it becomes a tool result with <c>isError: true</c> whose first line is
/// <c>**Error code:** &lt;reason&gt;</c>, followed by <see cref="Exception.Message"/> (shown to the caller:
/// write it for them) and a suggestion.
/// </summary>
/// <example>
/// <code>
/// throw new McpGuardException("subscriber_not_found", "No subscriber has that id.",
///     suggestion: "List subscribers first, then call again with one of their ids.");
/// </code>
/// </example>
public class McpGuardException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="reason">A snake_case slug: one of <see cref="McpGuardReasons"/> or your own.</param>
    /// <param name="message">What went wrong, for the caller.</param>
    /// <param name="suggestion">What the caller should do; defaults to the catalog's suggestion for known reasons.</param>
    /// <param name="retryable">Whether retrying may succeed; defaults to the catalog's value for known reasons, else false.</param>
    /// <param name="details">Extra fields for <c>structuredContent</c> (snake_case keys; strings, numbers, booleans).</param>
    /// <param name="innerException">The cause, logged but never shown to the caller.</param>
    public McpGuardException(
        string reason,
        string message,
        string? suggestion = null,
        bool? retryable = null,
        IReadOnlyDictionary<string, object?>? details = null,
        Exception? innerException = null)
        : base(message, innerException)
    {
        McpGuardToolError.ValidateReason(reason);
        Reason = reason;
        Suggestion = suggestion;
        Retryable = retryable;
        Details = details ?? new Dictionary<string, object?>();
    }

    /// <summary>The reason slug.</summary>
    public string Reason { get; }

    /// <summary>What the caller should do, when the tool says.</summary>
    public string? Suggestion { get; }

    /// <summary>Whether retrying may succeed, when the tool says.</summary>
    public bool? Retryable { get; }

    /// <summary>Extra fields for the result's <c>structuredContent</c>.</summary>
    public IReadOnlyDictionary<string, object?> Details { get; }
}
