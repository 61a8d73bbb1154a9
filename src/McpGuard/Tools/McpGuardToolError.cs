namespace McpGuard;

/// <summary>What a tool's exception becomes: the tool result a caller sees.</summary>
internal sealed class McpGuardToolError
{
    /// <summary>Creates a tool error.</summary>
    /// <param name="reason">A snake_case slug: one of <see cref="McpGuardReasons"/> or your own.</param>
    /// <param name="message">A message safe to show the caller (never an exception's raw text unless you wrote it for them).</param>
    public McpGuardToolError(string reason, string message)
    {
        ValidateReason(reason);
        ArgumentException.ThrowIfNullOrWhiteSpace(message);
        Reason = reason;
        Message = message;
    }

    /// <summary>The reason slug, the result's first line.</summary>
    public string Reason { get; }

    /// <summary>The message shown to the caller.</summary>
    public string Message { get; }

    /// <summary>What the caller should do; defaults to the catalog's suggestion for known reasons.</summary>
    public string? Suggestion { get; init; }

    /// <summary>Whether retrying may succeed; defaults to the catalog's value for known reasons, else false.</summary>
    public bool? Retryable { get; init; }

    /// <summary>Extra fields for <c>structuredContent</c>.</summary>
    public IReadOnlyDictionary<string, object?> Details { get; init; } = new Dictionary<string, object?>();

    /// <summary>The result a tool's <see cref="McpGuardException"/> (thrown, or returned by a mapping) becomes.</summary>
    internal static McpGuardToolError From(McpGuardException exception) => new(exception.Reason, exception.Message)
    {
        Suggestion = exception.Suggestion,
        Retryable = exception.Retryable,
        Details = exception.Details,
    };

    internal static void ValidateReason(string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        foreach (var c in reason)
        {
            if (!char.IsAsciiLetterLower(c) && !char.IsAsciiDigit(c) && c != '_')
            {
                throw new ArgumentException($"A reason is a snake_case slug of a-z, 0-9 and '_' (got '{reason}').", nameof(reason));
            }
        }
    }
}
