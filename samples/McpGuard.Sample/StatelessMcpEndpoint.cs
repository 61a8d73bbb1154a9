using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Options;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Sample;

/// <summary>
/// A minimal Streamable HTTP endpoint for the C# SDK's stateless <see cref="StreamableHttpServerTransport"/>:
/// one POST, one short-lived server. It stands in for <c>MapMcp()</c> from ModelContextProtocol.AspNetCore,
/// which this environment lacks; McpGuard guards either the same way.
/// </summary>
public static class StatelessMcpEndpoint
{
    private const string ProtocolVersionHeader = "MCP-Protocol-Version";
    private const string FirstPerRequestMetadataVersion = "2026-07-28";

    private static readonly JsonTypeInfo<JsonRpcMessage> MessageTypeInfo =
        (JsonTypeInfo<JsonRpcMessage>)McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(JsonRpcMessage));

    /// <summary>Maps POST <paramref name="pattern"/> to a stateless MCP server built from the registered <see cref="McpServerOptions"/>.</summary>
    public static RouteHandlerBuilder MapStatelessMcp(this IEndpointRouteBuilder endpoints, string pattern) =>
        endpoints.MapPost(pattern, HandleAsync);

    private static async Task HandleAsync(HttpContext context, IOptionsFactory<McpServerOptions> optionsFactory, ILoggerFactory loggerFactory)
    {
        var message = await JsonSerializer.DeserializeAsync(context.Request.Body, MessageTypeInfo, context.RequestAborted);
        if (message is null)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }

        var protocolVersion = context.Request.Headers[ProtocolVersionHeader].ToString();
        message.Context ??= new JsonRpcMessageContext();
        if (context.User.Identity?.IsAuthenticated == true)
        {
            message.Context.User = context.User;
        }

        if (protocolVersion.Length > 0)
        {
            message.Context.ProtocolVersion = protocolVersion;
        }

        var options = optionsFactory.Create(Options.DefaultName);
        options.ScopeRequests = false;

        await using var transport = new StreamableHttpServerTransport(loggerFactory) { Stateless = true };
        await using var server = McpServer.Create(transport, options, loggerFactory, context.RequestServices);
        var serverRun = server.RunAsync(context.RequestAborted);

        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache,no-store";

        var perRequestMetadata = string.CompareOrdinal(protocolVersion, FirstPerRequestMetadataVersion) >= 0;
        var wrote = await transport.HandlePostRequestAsync(
            message,
            context.Response.Body,
            perRequestMetadata ? first => MapStatus(context, first) : null,
            context.RequestAborted);
        if (!wrote)
        {
            context.Response.ContentType = null;
            context.Response.StatusCode = StatusCodes.Status202Accepted;
        }

        await transport.DisposeAsync();
        try
        {
            await serverRun;
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>From 2026-07-28 some JSON-RPC errors carry an HTTP status too; it must be set before the first byte.</summary>
    private static ValueTask MapStatus(HttpContext context, JsonRpcMessage? first)
    {
        if (first is JsonRpcError { Error: { } error } && !context.Response.HasStarted)
        {
            context.Response.StatusCode = (McpErrorCode)error.Code switch
            {
                McpErrorCode.MethodNotFound => StatusCodes.Status404NotFound,
                McpErrorCode.MissingRequiredClientCapability or McpErrorCode.UnsupportedProtocolVersion or McpErrorCode.HeaderMismatch => StatusCodes.Status400BadRequest,
                _ => context.Response.StatusCode,
            };
        }

        return default;
    }
}
