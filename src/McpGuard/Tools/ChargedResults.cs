using System.Text.Json;
using System.Text.Json.Nodes;
using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Protocol;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Tools;

/// <summary>
/// What <c>WithMcpGuard()</c> does to a priced call's result before the SDK writes it: a metered tool's reported units
/// (<c>_meta["mcpguard/units"]</c>, taken out) are captured at the tool's rate, and the charge the call stands on is put in
/// the result's <c>_meta["mcpguard/charge"]</c>, so that an agent on any SDK can keep its books from the results alone.
/// </summary>
internal static class ChargedResults
{
    /// <summary>Where a metered tool reports the units it used (a whole number, 0 or more); read and removed by the guard.</summary>
    public const string UnitsMeta = "mcpguard/units";

    /// <summary>Where a charged result says what it cost: <c>charged_micro</c>, <c>balance_micro</c>, <c>request_id</c>.</summary>
    public const string ChargeMeta = "mcpguard/charge";

    public static async ValueTask<CallToolResult> SettleAsync(RequestContext<CallToolRequestParams> request, CallToolResult result)
    {
        var feature = McpGuardCallerIdentity.Find(request.User)?.Request ?? McpGuardFeature.AnonymousRequest.Value;
        if (feature is null || request.Services?.GetService<CreditGate>() is not { } credits)
        {
            // Not behind the guard: the result goes out as the tool made it.
            return result;
        }

        var refunded = result.IsError == true && feature.State.Credits.RefundToolInternalErrors && IsInternalError(result.StructuredContent);
        result.Meta = await SettleAsync(feature, credits, result.Meta, refunded);
        return result;
    }

    /// <summary>
    /// Settles a priced call's result by its <c>_meta</c> (the C# SDK's object, or the proxy's reading of the upstream's
    /// JSON): takes out <c>mcpguard/units</c>, captures a metered call's reservation at the tool's rate, and adds
    /// <c>mcpguard/charge</c>. Returns the <c>_meta</c> to send (null when it ends up empty). <paramref name="refunded"/>: the
    /// settlement gives this call's charge back (a tool <c>internal_error</c> with <c>RefundToolInternalErrors</c>), so there
    /// is nothing to capture or show.
    /// </summary>
    public static async ValueTask<JsonObject?> SettleAsync(McpGuardFeature feature, CreditGate credits, JsonObject? meta, bool refunded)
    {
        // Only McpGuard says what a call cost: a charge the tool (or the upstream) wrote itself goes.
        meta?.Remove(ChargeMeta);
        var units = TakeUnits(meta);
        if (meta is { Count: 0 })
        {
            meta = null;
        }

        if (feature.Charge is not { } ticket || ticket.Refunded || refunded)
        {
            return meta;
        }

        if (ticket.Meter is not null)
        {
            await credits.CaptureAsync(feature, units);
            if (ticket.CapturedMicro is null)
            {
                // Not captured (the ledger failed, or the hold was released meanwhile): the call is not billed, so no charge to show.
                return meta;
            }
        }

        meta ??= [];
        meta[ChargeMeta] = new JsonObject
        {
            ["charged_micro"] = ticket.ChargedMicro,
            ["balance_micro"] = ticket.BalanceAfterMicro,
            ["request_id"] = feature.RequestId,
        };
        return meta;
    }

    /// <summary>The units a metered tool reported, taken out of the result's <c>_meta</c>; null when none (or not a whole number, 0 or more).</summary>
    private static long? TakeUnits(JsonObject? meta)
    {
        if (meta is null || !meta.TryGetPropertyValue(UnitsMeta, out var node))
        {
            return null;
        }

        meta.Remove(UnitsMeta);

        // The C# SDK's node holds the tool's own number (an int, a long…), the proxy's a JSON element: read both as JSON.
        return node is JsonValue && JsonSerializer.SerializeToElement(node, McpGuardJsonNode.Default.JsonNode) is { ValueKind: JsonValueKind.Number } element
            && element.TryGetInt64(out var units) && units >= 0 ? units : null;
    }

    /// <summary>Whether a tool result's <c>structuredContent</c>, as the proxy reads it, is McpGuard's <c>internal_error</c>.</summary>
    public static bool IsInternalError(JsonNode? structuredContent) =>
        structuredContent is JsonObject structured && structured["reason"] is JsonValue reason
        && reason.TryGetValue<string>(out var text) && text == McpGuardReasons.InternalError;

    /// <summary>Whether a tool result's <c>structuredContent</c> is McpGuard's <c>internal_error</c> (as the settlement reads it).</summary>
    public static bool IsInternalError(JsonElement? structuredContent) =>
        structuredContent is { ValueKind: JsonValueKind.Object } structured
        && structured.TryGetProperty("reason", out var reason) && reason.ValueKind == JsonValueKind.String && reason.ValueEquals(McpGuardReasons.InternalError);
}

/// <summary>Serialization metadata for reading a <see cref="JsonNode"/> as JSON without reflection.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(JsonNode))]
internal sealed partial class McpGuardJsonNode : System.Text.Json.Serialization.JsonSerializerContext;
