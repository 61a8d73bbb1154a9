using System.Text.Json;

namespace McpGuard.Protocol;

/// <summary>What kind of JSON-RPC message a POST carried.</summary>
internal enum McpMessageKind
{
    Request,
    Notification,
    Response,
}

/// <summary>A JSON-RPC id as it appeared on the wire: absent, a string, or an integer.</summary>
internal readonly struct JsonRpcId : IEquatable<JsonRpcId>
{
    private readonly string? _string;
    private readonly long _number;
    private readonly byte _kind; // 0 none, 1 string, 2 number

    public JsonRpcId(string value)
    {
        _string = value;
        _kind = 1;
    }

    public JsonRpcId(long value)
    {
        _number = value;
        _kind = 2;
    }

    public bool IsNone => _kind == 0;

    /// <summary>A number a JavaScript reader would round: beyond ±(2^53 - 1), the largest integer a double holds exactly.</summary>
    public bool IsUnsafeForJavaScript => _kind == 2 && (_number > MaxSafeInteger || _number < -MaxSafeInteger);

    private const long MaxSafeInteger = 9_007_199_254_740_991;

    public void WriteTo(Utf8JsonWriter writer, ReadOnlySpan<byte> propertyName)
    {
        switch (_kind)
        {
            case 1:
                writer.WriteString(propertyName, _string);
                break;
            case 2:
                writer.WriteNumber(propertyName, _number);
                break;
            default:
                writer.WriteNull(propertyName);
                break;
        }
    }

    public object? ToObject() => _kind switch
    {
        1 => _string,
        2 => _number,
        _ => null,
    };

    public bool Equals(JsonRpcId other) => _kind == other._kind && _number == other._number && string.Equals(_string, other._string, StringComparison.Ordinal);

    public override bool Equals(object? obj) => obj is JsonRpcId other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(_kind, _number, _string);

    public override string ToString() => _kind switch
    {
        1 => _string!,
        2 => _number.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => "null",
    };

    public static bool operator ==(JsonRpcId left, JsonRpcId right) => left.Equals(right);

    public static bool operator !=(JsonRpcId left, JsonRpcId right) => !left.Equals(right);
}

/// <summary>
/// The JSON-RPC envelope of one MCP POST, parsed once by the front door and kept in
/// <c>HttpContext.Features</c>. Every gate reads it from there; nothing parses the body again.
/// </summary>
internal sealed class McpEnvelope
{
    public required McpMessageKind Kind { get; init; }

    public JsonRpcId Id { get; init; }

    /// <summary>The JSON-RPC method; null for responses.</summary>
    public string? Method { get; init; }

    /// <summary><c>params.name</c> for <c>tools/call</c> and <c>prompts/get</c>.</summary>
    public string? Name { get; init; }

    /// <summary><c>params.uri</c> for <c>resources/read</c> and friends.</summary>
    public string? Uri { get; init; }

    /// <summary>
    /// The protocol version the message declares: the <c>MCP-Protocol-Version</c> header, else
    /// <c>params._meta["io.modelcontextprotocol/protocolVersion"]</c>, else <c>initialize</c>'s <c>params.protocolVersion</c>.
    /// </summary>
    public string? ProtocolVersion { get; init; }

    /// <summary>The caller's spend ceiling for this call: <c>params._meta["mcpguard/max_price_micro"]</c>, when given.</summary>
    public long? MaxPriceMicro { get; init; }

    /// <summary>The tool name when this is a <c>tools/call</c> request.</summary>
    public string? ToolName => IsToolCall ? Name : null;

    public bool IsToolCall => Kind == McpMessageKind.Request && string.Equals(Method, McpMethods.ToolsCall, StringComparison.Ordinal);

    /// <summary>The value the <c>Mcp-Name</c> header must repeat for this method, if any.</summary>
    public string? RoutingName => Method switch
    {
        McpMethods.ToolsCall or McpMethods.PromptsGet => Name,
        McpMethods.ResourcesRead or McpMethods.ResourcesSubscribe or McpMethods.ResourcesUnsubscribe => Uri,
        _ => null,
    };
}

/// <summary>The MCP method names McpGuard cares about, interned so the parser allocates none for them.</summary>
internal static class McpMethods
{
    public const string Initialize = "initialize";
    public const string Ping = "ping";
    public const string ToolsCall = "tools/call";
    public const string ToolsList = "tools/list";
    public const string ResourcesRead = "resources/read";
    public const string ResourcesList = "resources/list";
    public const string ResourcesTemplatesList = "resources/templates/list";
    public const string ResourcesSubscribe = "resources/subscribe";
    public const string ResourcesUnsubscribe = "resources/unsubscribe";
    public const string PromptsGet = "prompts/get";
    public const string PromptsList = "prompts/list";
    public const string NotificationsInitialized = "notifications/initialized";
    public const string ServerDiscover = "server/discover";
    public const string LoggingSetLevel = "logging/setLevel";

    /// <summary>
    /// Whether <paramref name="method"/> is one the 2026-07-28 revision removed (SEP-2575) and the request's
    /// <c>MCP-Protocol-Version</c> header names that revision or a later one. A server on such a revision answers the
    /// request with 404 Method not found whatever its params hold, so McpGuard does not judge params it will never read.
    /// </summary>
    public static bool IsRemovedAt(string method, string? protocolVersionHeader) =>
        method is Initialize or Ping or LoggingSetLevel or ResourcesSubscribe or ResourcesUnsubscribe
        && McpProtocolVersions.IsPerRequestMetadata(protocolVersionHeader);

    private static readonly KnownStrings Known = new(
    [
        Initialize, Ping, ToolsCall, ToolsList, ResourcesRead, ResourcesList, ResourcesSubscribe,
        ResourcesUnsubscribe, PromptsGet, PromptsList, NotificationsInitialized, ServerDiscover,
        "notifications/cancelled", "notifications/progress", "completion/complete", LoggingSetLevel,
        ResourcesTemplatesList, "subscriptions/listen",
    ]);

    /// <summary>Returns the interned name for a known method, else a new string.</summary>
    public static string Read(ref Utf8JsonReader reader) => Known.Read(ref reader);

    /// <summary>Whether <paramref name="method"/> is one of the methods McpGuard knows by name (a bounded set, for telemetry tags).</summary>
    public static bool IsKnown(string method) => Known.Contains(method);
}

/// <summary>The MCP protocol versions published so far, interned so that reading one allocates nothing.</summary>
internal static class McpProtocolVersions
{
    private static readonly KnownStrings Known = new(["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]);

    /// <summary>The first revision without sessions or the initialize handshake.</summary>
    public const string July2026 = "2026-07-28";

    /// <summary>Returns the interned string for a known version, else a new string.</summary>
    public static string Read(ref Utf8JsonReader reader) => Known.Read(ref reader);

    /// <summary>Whether <paramref name="version"/> is 2026-07-28 or later: versions are dates, so ordinal order is time order, as the SDK compares them.</summary>
    public static bool IsPerRequestMetadata(string? version) =>
        !string.IsNullOrEmpty(version) && string.CompareOrdinal(version, July2026) >= 0;
}

/// <summary>A few strings a JSON value often holds, compared as UTF-8 so that reading one of them allocates nothing.</summary>
internal sealed class KnownStrings(string[] values)
{
    private readonly byte[][] _utf8 = values.Select(System.Text.Encoding.UTF8.GetBytes).ToArray();

    /// <summary>Whether <paramref name="value"/> is one of the known strings (ordinal).</summary>
    public bool Contains(string value) => Array.IndexOf(values, value) >= 0;

    /// <summary>The current string token: the interned value when it is one of the known strings as written (no escapes), else a new string.</summary>
    public string Read(ref Utf8JsonReader reader)
    {
        if (!reader.ValueIsEscaped && !reader.HasValueSequence)
        {
            var span = reader.ValueSpan;
            for (var i = 0; i < _utf8.Length; i++)
            {
                if (span.SequenceEqual(_utf8[i]))
                {
                    return values[i];
                }
            }
        }

        return reader.GetString()!;
    }
}
