namespace McpGuard.Protocol;

/// <summary>
/// The few HTTP grammar rules McpGuard applies in more than one place (options validation, the front door, the answer
/// reader, the proxy), written once so that every part reads a header the same way.
/// </summary>
internal static class HttpSyntax
{
    /// <summary>A character of an RFC 9110 token (a header name, a media type's parts).</summary>
    public static bool IsTokenChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal);

    /// <summary>A character McpGuard sends in a header value: visible ASCII, space or tab (the HTTP client sends no other).</summary>
    public static bool IsFieldValueChar(char c) => c is '\t' or (>= ' ' and < '\u007f');

    /// <summary>The media type of a <c>Content-Type</c> or <c>Accept</c> element: what comes before its parameters, trimmed.</summary>
    public static ReadOnlySpan<char> MediaType(ReadOnlySpan<char> value)
    {
        var semicolon = value.IndexOf(';');
        return (semicolon < 0 ? value : value[..semicolon]).Trim();
    }

    /// <summary>Whether a <c>Content-Type</c> is <c>text/event-stream</c> (any parameters).</summary>
    public static bool IsEventStream(string? contentType) =>
        MediaType(contentType).Equals("text/event-stream", StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether a <c>Content-Type</c> is <c>application/json</c> (any parameters).</summary>
    public static bool IsJson(string? contentType) =>
        MediaType(contentType).Equals("application/json", StringComparison.OrdinalIgnoreCase);
}
