using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;

namespace McpGuard.Protocol;

/// <summary>
/// The params of <c>initialize</c>, checked against the MCP schema as the C# SDK reads them. The SDK's Streamable HTTP
/// transport binds them while it sets up the request, before it can answer with a JSON-RPC error, so params it cannot
/// bind would fail the endpoint (a 500). Refused at the front door instead, as the client's error. <c>initialize</c>
/// comes once per session, so the second read of its small params costs nothing that matters. Read with member names
/// matched exactly, as the SDK's transport does (its source-generated context), not ignoring case as its default
/// options would: what one of them cannot bind is refused.
/// </summary>
internal static class InitializeParams
{
    public const string Detail = "Invalid Request: initialize needs params with protocolVersion (a string), capabilities (an object) and clientInfo (an object with name and version strings).";

    private static readonly JsonTypeInfo<InitializeRequestParams> TypeInfo =
        (JsonTypeInfo<InitializeRequestParams>)new JsonSerializerOptions(McpJsonUtilities.DefaultOptions) { PropertyNameCaseInsensitive = false }
            .GetTypeInfo(typeof(InitializeRequestParams));

    public static bool AreValid(ReadOnlySpan<byte> json)
    {
        if (json.IsEmpty)
        {
            return false;
        }

        try
        {
            return JsonSerializer.Deserialize(json, TypeInfo) is { ProtocolVersion: not null, Capabilities: not null, ClientInfo: { Name: not null, Version: not null } };
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
