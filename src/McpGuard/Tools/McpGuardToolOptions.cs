namespace McpGuard;

/// <summary>
/// How <c>WithMcpGuard()</c> turns exceptions thrown by tools into results. Mappings added here are
/// tried first, in the order added; then the built-in ones:
/// <see cref="McpGuardException"/> → its own reason; <see cref="ArgumentException"/> → <c>invalid_parameter</c>
/// (its message is shown); <see cref="System.Text.Json.JsonException"/> (an argument of the wrong type) → <c>invalid_parameter</c>;
/// <see cref="KeyNotFoundException"/> and <see cref="FileNotFoundException"/> →
/// <c>not_found</c>; <see cref="UnauthorizedAccessException"/> → <c>forbidden</c>; <see cref="TimeoutException"/>
/// and an <see cref="OperationCanceledException"/> that is not the call's own cancellation → <c>timeout</c>; anything else → <c>internal_error</c> with a generic message.
/// </summary>
/// <example>
/// <code>
/// builder.Services.AddMcpServer().WithTools&lt;MyTools&gt;().WithMcpGuard(tools =&gt;
///     tools.Map&lt;QuotaException&gt;(ex =&gt; new McpGuardException("quota_exceeded", "The daily quota is used up.", retryable: true)));
/// </code>
/// </example>
public sealed class McpGuardToolOptions
{
    internal McpGuardToolOptions()
    {
    }

    internal List<(Type Type, Func<Exception, McpGuardToolError> Map)> Mappings { get; } = [];

    /// <summary>
    /// Maps exceptions of type <typeparamref name="TException"/> (and derived types) to the <see cref="McpGuardException"/>
    /// the tool would have thrown: its reason, message, suggestion, retryable and details make the result.
    /// </summary>
    public McpGuardToolOptions Map<TException>(Func<TException, McpGuardException> map)
        where TException : Exception
    {
        ArgumentNullException.ThrowIfNull(map);
        Mappings.Add((typeof(TException), ex => McpGuardToolError.From(map((TException)ex))));
        return this;
    }
}
