using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;

namespace McpGuard.Tests.Protocol.Differential;

/// <summary>
/// How the C# MCP SDK (ModelContextProtocol 2.4.0, as <c>MapMcp()</c> runs it) reads a POST body: the message through
/// <see cref="JsonRpcMessage"/>'s converter with <see cref="McpJsonUtilities.DefaultOptions"/> (as the Streamable HTTP
/// handler's <c>ReadFromJsonAsync</c> does), then the request's params through the type its handler deserializes
/// (<see cref="CallToolRequestParams"/>, <see cref="GetPromptRequestParams"/>, <see cref="ReadResourceRequestParams"/>),
/// and the protocol version from <c>params._meta</c> the way the handler looks it up.
/// </summary>
internal sealed record SdkReading(SdkOutcome Outcome, string? Method, string? Target, RequestId Id, string? MetaProtocolVersion)
{
    private static readonly JsonSerializerOptions Options = McpJsonUtilities.DefaultOptions;
    private static readonly JsonTypeInfo<JsonRpcMessage> MessageType = (JsonTypeInfo<JsonRpcMessage>)Options.GetTypeInfo(typeof(JsonRpcMessage));

    public static SdkReading Of(byte[] body)
    {
        JsonRpcMessage? message;
        try
        {
            message = JsonSerializer.Deserialize(new MemoryStream(body), MessageType);
        }
        catch (Exception)
        {
            // The handler answers 400 (JsonException) or fails (anything else); no request handler runs either way.
            return new SdkReading(SdkOutcome.Refused, null, null, default, null);
        }

        switch (message)
        {
            case JsonRpcRequest request:
            {
                var meta = MetaVersion(request.Params);
                string? target;
                try
                {
                    target = request.Method switch
                    {
                        RequestMethods.ToolsCall => JsonSerializer.Deserialize<CallToolRequestParams>(request.Params, Options)?.Name ?? throw new JsonException("no params"),
                        RequestMethods.PromptsGet => JsonSerializer.Deserialize<GetPromptRequestParams>(request.Params, Options)?.Name ?? throw new JsonException("no params"),
                        RequestMethods.ResourcesRead => JsonSerializer.Deserialize<ReadResourceRequestParams>(request.Params, Options)?.Uri ?? throw new JsonException("no params"),
                        _ => null,
                    };
                }
                catch (Exception)
                {
                    // The handler cannot bind its params: it answers with an error and runs nothing.
                    return new SdkReading(SdkOutcome.Refused, request.Method, null, request.Id, meta);
                }

                return new SdkReading(SdkOutcome.Request, request.Method, target, request.Id, meta);
            }

            case JsonRpcNotification notification:
                return new SdkReading(SdkOutcome.Notification, notification.Method, null, default, MetaVersion(notification.Params));

            default:
                return new SdkReading(SdkOutcome.Response, null, null, default, null);
        }
    }

    /// <summary>The handler's own look-up of <c>params._meta["io.modelcontextprotocol/protocolVersion"]</c>; null when it finds none or cannot read it.</summary>
    private static string? MetaVersion(JsonNode? parameters)
    {
        try
        {
            return parameters is JsonObject paramsObject
                && paramsObject["_meta"] is JsonObject meta
                && meta["io.modelcontextprotocol/protocolVersion"] is JsonValue value
                && value.TryGetValue(out string? version)
                && !string.IsNullOrEmpty(version)
                ? version
                : null;
        }
        catch (Exception)
        {
            return null;
        }
    }
}

internal enum SdkOutcome
{
    /// <summary>The SDK runs no handler for the body.</summary>
    Refused,

    /// <summary>The SDK dispatches a request to the handler of <see cref="SdkReading.Method"/>, for <see cref="SdkReading.Target"/>.</summary>
    Request,

    /// <summary>The SDK dispatches a notification.</summary>
    Notification,

    /// <summary>The body is a response (or an error) to one of the server's requests.</summary>
    Response,
}
