using System.Globalization;
using System.Text.Json;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc;

namespace McpGuard.Errors;

/// <summary>
/// The single writer that turns an <see cref="McpGuardError"/> into a response, in the rendering the
/// configuration chooses: a JSON-RPC error envelope, RFC 9457 problem details, or an in-band tool result.
/// It only renders what the catalog says; it decides nothing about statuses or codes.
/// </summary>
internal sealed class McpGuardErrorWriter
{
    private const string JsonContentType = "application/json; charset=utf-8";

    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true };

    /// <summary>
    /// Replaces what the endpoint had put on a response that has not started (status, headers) with the error, keeping
    /// the request id header the guard set first.
    /// </summary>
    public Task ReplaceResponseAsync(HttpContext context, McpGuardError error)
    {
        var feature = context.Features.GetRequiredFeature<McpGuardFeature>();
        context.Response.Clear();
        context.Response.Headers[feature.State.RequestIdHeader] = feature.RequestId;
        if (feature.Charge is { Refunded: true, Free: false } charge)
        {
            // The endpoint did not serve a charged call: the caller sees that its charge was given back, and how much.
            error = error.WithRefund(charge.ChargedMicro);
        }

        return WriteAsync(context, error);
    }

#pragma warning disable CA1822 // A service resolved from DI: the instance is what the gates are given.
    public async Task WriteAsync(HttpContext context, McpGuardError error)
#pragma warning restore CA1822
    {
        var feature = context.Features.Get<McpGuardFeature>()
            ?? throw new InvalidOperationException("McpGuard's request feature is missing; errors can only be written inside the guard pipeline.");
        var catalog = feature.State.Catalog;
        var descriptor = error.Descriptor;
        var message = catalog.IsMessageOverridden(descriptor.Reason) ? descriptor.Message : error.Detail ?? descriptor.Message;

        var response = context.Response;
        response.StatusCode = descriptor.StatusCode;
        var headers = response.Headers;
        headers.CacheControl = "no-store";
        if (error.RetryAfterSeconds is long retryAfter)
        {
            headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        }

        if (error.Challenge is not null)
        {
            headers.WWWAuthenticate = error.Challenge;
        }

        if (error.Allow is not null)
        {
            headers.Allow = error.Allow;
        }

        switch (ResolveFormat(catalog, descriptor, feature.Envelope))
        {
            case McpGuardErrorFormat.ProblemDetails:
                if (await TryWriteProblemAsync(context, error, descriptor, message, feature.RequestId))
                {
                    return;
                }

                break;
            case McpGuardErrorFormat.ToolResult:
                response.StatusCode = StatusCodes.Status200OK;
                await WriteToolResultAsync(response, error, descriptor, message, feature);
                return;
        }

        await WriteJsonRpcAsync(response, error, descriptor, message, feature);
    }

    /// <summary>
    /// The rendering for this error: the reason's own choice, else the default; the in-band tool result only
    /// for <c>tools/call</c> requests and reasons that allow it, else JSON-RPC.
    /// </summary>
    internal static McpGuardErrorFormat ResolveFormat(McpGuardErrorCatalog catalog, McpGuardErrorDescriptor descriptor, McpEnvelope? envelope)
    {
        var format = descriptor.Format ?? catalog.DefaultFormat;
        if (format == McpGuardErrorFormat.ToolResult && !(descriptor.AllowsToolResult && envelope is { IsToolCall: true }))
        {
            return McpGuardErrorFormat.JsonRpc;
        }

        return format;
    }

    private static async Task WriteJsonRpcAsync(HttpResponse response, McpGuardError error, McpGuardErrorDescriptor descriptor, string message, McpGuardFeature feature)
    {
        response.ContentType = JsonContentType;
        await using (var writer = new Utf8JsonWriter(response.BodyWriter, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("jsonrpc"u8, "2.0"u8);
            (feature.Envelope?.Id ?? error.Id).WriteTo(writer, "id"u8);
            writer.WriteStartObject("error"u8);
            writer.WriteNumber("code"u8, descriptor.Code);
            writer.WriteString("message"u8, message);
            writer.WriteStartObject("data"u8);
            writer.WriteString("reason"u8, descriptor.Reason);
            writer.WriteString("request_id"u8, feature.RequestId);
            WriteData(writer, error);
            writer.WriteEndObject();
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync();
    }

    private static async Task WriteToolResultAsync(HttpResponse response, McpGuardError error, McpGuardErrorDescriptor descriptor, string message, McpGuardFeature feature)
    {
        response.ContentType = JsonContentType;
        await using (var writer = new Utf8JsonWriter(response.BodyWriter, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("jsonrpc"u8, "2.0"u8);
            feature.Envelope!.Id.WriteTo(writer, "id"u8);
            writer.WriteStartObject("result"u8);
            writer.WriteStartArray("content"u8);
            writer.WriteStartObject();
            writer.WriteString("type"u8, "text"u8);
            writer.WriteString("text"u8, ToolResultText(descriptor.Reason, message, descriptor.Suggestion));
            writer.WriteEndObject();
            writer.WriteEndArray();
            writer.WriteStartObject("structuredContent"u8);
            WriteStructured(writer, descriptor, feature.RequestId, error.Data, error.RetryAfterSeconds);
            writer.WriteEndObject();
            writer.WriteBoolean("isError"u8, true);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync();
    }

    /// <summary>The text block of an in-band error: a stable first line to branch on, then the message and what to do.</summary>
    internal static string ToolResultText(string reason, string message, string suggestion) =>
        $"**Error code:** {reason}\n{message}\n{suggestion}";

    /// <summary>The <c>structuredContent</c> of an in-band error, shared with the tool exception filter.</summary>
    internal static void WriteStructured(Utf8JsonWriter writer, McpGuardErrorDescriptor descriptor, string? requestId, IReadOnlyList<KeyValuePair<string, object?>> data, long? retryAfter)
    {
        writer.WriteString("reason"u8, descriptor.Reason);
        if (requestId is not null)
        {
            writer.WriteString("request_id"u8, requestId);
        }

        writer.WriteBoolean("retryable"u8, descriptor.Retryable);
        writer.WriteString("action"u8, descriptor.ActionName);
        if (retryAfter is long seconds)
        {
            writer.WriteNumber("retry_after"u8, seconds);
        }

        foreach (var (key, value) in data)
        {
            writer.WritePropertyName(key);
            WriteValue(writer, value);
        }
    }

    private static async Task<bool> TryWriteProblemAsync(HttpContext context, McpGuardError error, McpGuardErrorDescriptor descriptor, string message, string requestId)
    {
        var problem = new ProblemDetails
        {
            Status = descriptor.StatusCode,
            Title = message,
            Detail = descriptor.Suggestion,
        };
        problem.Extensions["error_code"] = descriptor.Reason;
        problem.Extensions["request_id"] = requestId;
        problem.Extensions["retryable"] = descriptor.Retryable;
        if (error.RetryAfterSeconds is long retryAfter)
        {
            problem.Extensions["retry_after"] = retryAfter;
        }

        foreach (var (key, value) in error.Data)
        {
            // Times render as in the other formats ("2026-06-01T00:00:00Z"), not as System.Text.Json's "+00:00".
            problem.Extensions[key] = value is DateTimeOffset time ? FormatTime(time) : value;
        }

        var resolve = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["message"] = descriptor.Suggestion,
            ["action"] = descriptor.ActionName,
        };
        if (descriptor.Url is not null)
        {
            resolve["url"] = descriptor.Url.AbsoluteUri;
        }

        problem.Extensions["resolve"] = resolve;

        return await ProblemJson.TryWriteAsync(context, problem);
    }

    private static void WriteData(Utf8JsonWriter writer, McpGuardError error)
    {
        if (error.RetryAfterSeconds is long seconds)
        {
            writer.WriteNumber("retry_after"u8, seconds);
        }

        foreach (var (key, value) in error.Data)
        {
            writer.WritePropertyName(key);
            WriteValue(writer, value);
        }
    }

    private static string FormatTime(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static void WriteValue(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case string s:
                writer.WriteStringValue(s);
                break;
            case long l:
                writer.WriteNumberValue(l);
                break;
            case int i:
                writer.WriteNumberValue(i);
                break;
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case Uri u:
                writer.WriteStringValue(u.IsAbsoluteUri ? u.AbsoluteUri : u.OriginalString);
                break;
            case DateTimeOffset d:
                writer.WriteStringValue(FormatTime(d));
                break;
            case IEnumerable<string> list:
                writer.WriteStartArray();
                foreach (var item in list)
                {
                    writer.WriteStringValue(item);
                }

                writer.WriteEndArray();
                break;
            default:
                writer.WriteStringValue(Convert.ToString(value, CultureInfo.InvariantCulture));
                break;
        }
    }
}
