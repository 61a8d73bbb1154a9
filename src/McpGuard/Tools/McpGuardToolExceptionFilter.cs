using McpGuard.Auth;
using System.Buffers;
using System.Text.Json;
using McpGuard.Errors;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Tools;

/// <summary>
/// A C# SDK call-tool filter that turns exceptions thrown by tools into <c>isError: true</c> results with a
/// stable <c>**Error code:**</c> line, instead of the SDK's opaque "An error occurred invoking 'x'.".
/// </summary>
/// <remarks>
/// <b>The rule:</b> it translates only exceptions of the tool's own making. Every exception type the MCP SDK itself
/// declares (any type from a <c>ModelContextProtocol</c> assembly) is the SDK's to handle and passes through unchanged:
/// <see cref="McpProtocolException"/> and its kind become JSON-RPC errors (<c>UrlElicitationRequiredException</c>
/// included), <see cref="InputRequiredException"/> becomes an input-required result (multi round-trip requests), and a
/// plain <see cref="McpException"/> becomes the SDK's own error result with its message, as its author chose. Deciding
/// by assembly rather than by a list means a signal type a later SDK adds reaches the SDK too, instead of silently
/// becoming <c>internal_error</c>. Cancellation of the call itself is left alone as well.
/// </remarks>
internal sealed partial class McpGuardToolExceptionFilter(McpGuardToolOptions options)
{
    private const string GenericInternalMessage = "The tool failed unexpectedly.";

    public McpRequestHandler<CallToolRequestParams, CallToolResult> Wrap(McpRequestHandler<CallToolRequestParams, CallToolResult> next) =>
        async (request, cancellationToken) =>
        {
            CallToolResult result;
            try
            {
                result = await next(request, cancellationToken);
            }
            catch (Exception ex) when (IsSdkSignal(ex))
            {
                throw;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex)
            {
                result = Translate(request, ex);
            }

            return await ChargedResults.SettleAsync(request, result);
        };

    private CallToolResult Translate(RequestContext<CallToolRequestParams> request, Exception exception)
    {
        var services = request.Services;
        // The principal travels with the message even where handlers run outside the HTTP request; the request feature does not.
        var caller = McpGuardCallerIdentity.Find(request.User);
        var catalog = services?.GetService<McpGuardStateProvider>()?.Current.Catalog ?? McpGuardErrorCatalog.Default;
        var logger = (ILogger?)services?.GetService<ILoggerFactory>()?.CreateLogger<McpGuardToolExceptionFilter>() ?? NullLogger.Instance;

        var error = Map(exception);
        var descriptor = Describe(catalog, error);
        var toolName = request.Params?.Name ?? "(unknown)";
        var requestId = caller?.RequestId ?? McpGuardFeature.AnonymousRequest.Value?.RequestId;
        if (descriptor.Reason == McpGuardReasons.InternalError)
        {
            Log.ToolFailed(logger, exception, toolName, requestId);
        }
        else
        {
            Log.ToolRefused(logger, exception, toolName, descriptor.Reason, requestId);
        }

        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            McpGuardErrorWriter.WriteStructured(writer, descriptor, requestId, [.. error.Details], retryAfter: null);
            writer.WriteEndObject();
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return new CallToolResult
        {
            IsError = true,
            Content = [new TextContentBlock { Text = McpGuardErrorWriter.ToolResultText(descriptor.Reason, error.Message, descriptor.Suggestion) }],
            StructuredContent = document.RootElement.Clone(),
        };
    }

    /// <summary>Whether the exception is one the MCP SDK declares, and so gives a meaning of its own.</summary>
    internal static bool IsSdkSignal(Exception exception) =>
        exception.GetType().Assembly.GetName().Name is { } assembly
        && (assembly == SdkAssembly || assembly.StartsWith(SdkAssembly + ".", StringComparison.Ordinal));

    /// <summary>ModelContextProtocol, ModelContextProtocol.Core, ModelContextProtocol.AspNetCore…</summary>
    private const string SdkAssembly = "ModelContextProtocol";

    /// <summary>The user's mappings first, in order; then the built-in ones.</summary>
    internal McpGuardToolError Map(Exception exception)
    {
        foreach (var (type, map) in options.Mappings)
        {
            if (type.IsInstanceOfType(exception))
            {
                return map(exception);
            }
        }

        return exception switch
        {
            McpGuardException guard => McpGuardToolError.From(guard),
            ArgumentException argument => new McpGuardToolError(McpGuardReasons.InvalidParameter, argument.Message),
            JsonException => new McpGuardToolError(McpGuardReasons.InvalidParameter, "An argument does not have the type the tool's input schema asks for."),
            KeyNotFoundException or FileNotFoundException => new McpGuardToolError(McpGuardReasons.NotFound, "The requested item was not found."),
            UnauthorizedAccessException => new McpGuardToolError(McpGuardReasons.Forbidden, "This operation is not permitted for the caller."),
            TimeoutException or OperationCanceledException => new McpGuardToolError(McpGuardReasons.Timeout, "The operation timed out."),
            _ => new McpGuardToolError(McpGuardReasons.InternalError, GenericInternalMessage),
        };
    }

    private static McpGuardErrorDescriptor Describe(McpGuardErrorCatalog catalog, McpGuardToolError error)
    {
        var known = McpGuardErrorCatalog.IsKnownReason(error.Reason) ? catalog[error.Reason] : null;
        var retryable = error.Retryable ?? known?.Retryable ?? false;
        var action = known?.Action ?? (retryable ? McpGuardClientAction.RetryLater : McpGuardClientAction.FixRequest);
        if (known is not null && error.Retryable is bool overridden && overridden != known.Retryable)
        {
            action = overridden ? McpGuardClientAction.RetryLater : McpGuardClientAction.DoNotRetry;
        }

        return new McpGuardErrorDescriptor(
            error.Reason,
            known?.StatusCode ?? StatusCodes.Status200OK,
            known?.Code ?? 0,
            error.Message,
            retryable,
            action,
            error.Suggestion ?? known?.Suggestion ?? (retryable ? "Retry later." : "Fix the call and try again."));
    }

    private static partial class Log
    {
        [LoggerMessage(3001, LogLevel.Error, "Tool '{Tool}' failed during request {RequestId}; the caller sees internal_error.", EventName = "ToolFailed")]
        public static partial void ToolFailed(ILogger logger, Exception exception, string tool, string? requestId);

        [LoggerMessage(3002, LogLevel.Information, "Tool '{Tool}' refused the call during request {RequestId}: {Reason}.", EventName = "ToolRefused")]
        public static partial void ToolRefused(ILogger logger, Exception exception, string tool, string reason, string? requestId);
    }
}
