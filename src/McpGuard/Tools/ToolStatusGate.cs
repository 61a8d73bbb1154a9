using McpGuard.Errors;
using McpGuard.Protocol;

namespace McpGuard.Tools;

/// <summary>
/// Refuses calls of a paused tool (503 <c>tool_paused</c>, retryable) or an archived one (410 <c>tool_archived</c>)
/// before anything is counted or charged. A status set through the admin API (the tool-status store) overrides the
/// configured one (<c>McpGuard:Tools:&lt;tool&gt;:Status</c>). Works whether or not credits are on.
/// </summary>
internal sealed class ToolStatusGate(IMcpGuardToolStatusStore statuses, McpGuard.Telemetry.McpGuardTelemetry telemetry)
{
    public async ValueTask<McpGuardError?> CheckAsync(McpGuardFeature feature)
    {
        if (feature.Envelope?.ToolName is not { } tool)
        {
            return null;
        }

        var state = feature.State;
        McpGuardToolStatus status;
        using (var call = telemetry.StoreCall("tool_status", "get"))
        {
            try
            {
                status = await StatusAsync(statuses, state, tool);
            }
            catch (Exception ex)
            {
                call.Fail(ex);
                throw;
            }
        }

        return status switch
        {
            McpGuardToolStatus.Paused => new McpGuardError(state.Catalog[McpGuardReasons.ToolPaused], $"Tool paused: '{tool}' is paused by its publisher.") { Data = [new("tool", tool)] },
            McpGuardToolStatus.Archived => new McpGuardError(state.Catalog[McpGuardReasons.ToolArchived], $"Tool archived: '{tool}' is no longer offered.") { Data = [new("tool", tool)] },
            _ => null,
        };
    }

    /// <summary>The name a status goes by on the wire (the admin API, a listed tool's <c>mcpguard/status</c>).</summary>
    internal static string Name(McpGuardToolStatus status) => status switch
    {
        McpGuardToolStatus.Paused => "paused",
        McpGuardToolStatus.Archived => "archived",
        _ => "live",
    };

    /// <summary>The tool's status now: the store's override (the admin API), else <c>McpGuard:Tools:&lt;tool&gt;:Status</c>.</summary>
    internal static async ValueTask<McpGuardToolStatus> StatusAsync(IMcpGuardToolStatusStore statuses, McpGuardState state, string tool) =>
        await statuses.GetStatusAsync(tool, CancellationToken.None)
            ?? (state.Credits.ToolStatuses.TryGetValue(tool, out var configured) ? configured : McpGuardToolStatus.Live);
}
