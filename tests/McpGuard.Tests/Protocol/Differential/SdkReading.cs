using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;

namespace McpGuard.Tests.Protocol.Differential;

/// <summary>Which of the SDK's two JSON configurations binds a request's params.</summary>
internal enum SdkParamsReader
{
    /// <summary>
    /// What <c>MapMcp()</c> in ModelContextProtocol 2.4.0 runs: request handlers bind params with the SDK's
    /// source-generated context, which matches member names exactly.
    /// </summary>
    SourceGenerated,

    /// <summary>
    /// <see cref="McpJsonUtilities.DefaultOptions"/>, which matches member names ignoring case: what the SDK's public
    /// options (and any server built on them) read.
    /// </summary>
    DefaultOptions,
}

/// <summary>
/// How the C# MCP SDK (ModelContextProtocol 2.4.0, as <c>MapMcp()</c> runs it) reads a POST body: the message through
/// <see cref="JsonRpcMessage"/>'s converter with <see cref="McpJsonUtilities.DefaultOptions"/> (as the Streamable HTTP
/// handler's <c>ReadFromJsonAsync</c> does; its params become a <see cref="JsonObject"/> that matches names ignoring
/// case), then the request's params through the type its handler binds (<see cref="CallToolRequestParams"/>,
/// <see cref="GetPromptRequestParams"/>, <see cref="ReadResourceRequestParams"/>), and the protocol version from
/// <c>params._meta</c> the way the handler looks it up.
/// </summary>
internal sealed record SdkReading(SdkOutcome Outcome, string? Method, string? Target, RequestId Id, string? MetaProtocolVersion)
{
    private static readonly JsonSerializerOptions Options = McpJsonUtilities.DefaultOptions;
    private static readonly JsonTypeInfo<JsonRpcMessage> MessageType = (JsonTypeInfo<JsonRpcMessage>)Options.GetTypeInfo(typeof(JsonRpcMessage));

    /// <summary>The SDK's internal source-generated context (McpJsonUtilities.JsonContext), the one its handlers bind with.</summary>
    private static readonly JsonSerializerOptions SourceGeneratedOptions =
        ((JsonSerializerContext)typeof(McpJsonUtilities).GetNestedType("JsonContext", BindingFlags.NonPublic)!
            .GetProperty("Default", BindingFlags.Public | BindingFlags.Static)!.GetValue(null)!).Options;

    public static SdkReading Of(byte[] body, SdkParamsReader reader = SdkParamsReader.SourceGenerated)
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

        var paramsOptions = reader == SdkParamsReader.SourceGenerated ? SourceGeneratedOptions : Options;
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
                        RequestMethods.ToolsCall => Bind<CallToolRequestParams>(request.Params, paramsOptions).Name,
                        RequestMethods.PromptsGet => Bind<GetPromptRequestParams>(request.Params, paramsOptions).Name,
                        RequestMethods.ResourcesRead => Bind<ReadResourceRequestParams>(request.Params, paramsOptions).Uri,
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

    private static T Bind<T>(JsonNode? parameters, JsonSerializerOptions options)
        where T : class =>
        (T?)JsonSerializer.Deserialize(parameters, options.GetTypeInfo(typeof(T))) ?? throw new JsonException("no params");

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
