using McpGuard.Protocol;

namespace McpGuard.Telemetry;

/// <summary>
/// Tag values with bounded cardinality: a caller chooses the method and tool names it sends, so a metric or a count keyed
/// by them as sent would grow without limit. Names McpGuard knows (its MCP methods, the tools in configuration) are kept;
/// anything else is <see cref="Other"/>.
/// </summary>
internal static class TelemetryNames
{
    /// <summary>The value that stands for every name outside the bounded set (as OpenTelemetry's conventions write it).</summary>
    public const string Other = "_OTHER";

    /// <summary>The method tag for a request that is no single JSON-RPC message (a GET stream, a DELETE, a batch, or one the front door refused unread).</summary>
    public const string NoMethod = "_NONE";

    /// <summary>The request's MCP method, bounded: a method McpGuard knows, else <see cref="Other"/>; <see cref="NoMethod"/> when there is none.</summary>
    public static string Method(McpEnvelope? envelope) => envelope?.Method switch
    {
        null => NoMethod,
        { } method when McpMethods.IsKnown(method) => method,
        _ => Other,
    };

    /// <summary>The called tool, bounded: a tool named in <c>McpGuard:Tools</c>, else <see cref="Other"/>; null when the request calls no tool.</summary>
    public static string? Tool(McpEnvelope? envelope, McpGuardState state) => envelope?.ToolName switch
    {
        null => null,
        { } tool when state.Options.Tools.ContainsKey(tool) => tool,
        _ => Other,
    };
}
