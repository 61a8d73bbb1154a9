using System.Buffers;
using System.IO.Pipelines;
using McpGuard.Errors;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Primitives;
using ModelContextProtocol.Protocol;

namespace McpGuard.Protocol;

/// <summary>
/// The checks every request to the guarded endpoint passes before anything else runs: Origin, HTTP method,
/// Content-Type, Accept, body size, the JSON-RPC envelope, and the Mcp-Method / Mcp-Name headers.
/// The body is read once and parsed once, and the endpoint reads the same bytes: in place in the server's request pipe
/// when it is small and the server's own, else from a pooled buffer the front door copied it into.
/// </summary>
internal sealed class FrontDoor(AllowedMethods allowedMethods)
{
    private const string McpMethodHeader = "Mcp-Method";
    private const string McpNameHeader = "Mcp-Name";
    private const string ProtocolVersionHeader = "MCP-Protocol-Version";
    private const int MaxEchoedHeaderLength = 100;
    private const string CanonicalContentType = "application/json; charset=utf-8";

    public async ValueTask<McpGuardError?> CheckAsync(HttpContext context, McpGuardFeature feature)
    {
        var state = feature.State;
        var catalog = state.Catalog;
        var request = context.Request;

        var origin = request.Headers.Origin;
        if (!StringValues.IsNullOrEmpty(origin) && !state.IsOriginAllowed(origin, request))
        {
            return new McpGuardError(catalog[McpGuardReasons.OriginNotAllowed], "Origin not allowed: this server does not accept requests from that web origin.");
        }

        if (!HttpMethods.IsPost(request.Method))
        {
            if (EndpointHandles(context, request.Method))
            {
                return null;
            }

            return new McpGuardError(catalog[McpGuardReasons.MethodNotAllowed], $"Method Not Allowed: this endpoint accepts {allowedMethods.For(context, state.Path)}.")
            {
                Allow = allowedMethods.For(context, state.Path),
            };
        }

        if (!IsJsonContentType(request.ContentType))
        {
            return new McpGuardError(catalog[McpGuardReasons.UnsupportedMediaType], "Unsupported Media Type: send the body as Content-Type: application/json.");
        }

        // The legacy SSE transport's POST answers 202 with no body to negotiate: its clients need not send Accept.
        if (!feature.LegacySse && !AcceptsJsonAndEventStream(request.Headers.Accept))
        {
            return new McpGuardError(catalog[McpGuardReasons.NotAcceptable], "Not Acceptable: the client must accept both application/json and text/event-stream.");
        }

        if (request.ContentLength > state.MaxRequestBodySize)
        {
            return TooLarge(catalog, state.MaxRequestBodySize);
        }

        var protocolVersion = request.Headers[ProtocolVersionHeader].ToString();
        McpEnvelope? envelope;
        EnvelopeFailure failure;
        if (request.ContentLength is <= InPlaceLimit && ServerBodyPipe(context) is { } reader)
        {
            var (body, outcome) = await PeekBodyAsync(context, reader);
            if (outcome != BodyOutcome.Read)
            {
                return Refused(context, catalog, state, outcome);
            }

            // Looked at, not consumed: the endpoint reads these very bytes from the server's own request pipe.
            feature.AttachBody(reader);
            try
            {
                envelope = Parse(body, protocolVersion, state.MaxJsonDepth, out failure);
            }
            finally
            {
                reader.AdvanceTo(body.Start, body.End);
            }
        }
        else
        {
            var (buffer, length, outcome) = await ReadBodyAsync(context, state.MaxRequestBodySize);
            if (buffer is null)
            {
                return Refused(context, catalog, state, outcome);
            }

            feature.AttachBody(buffer);
            context.Response.RegisterForDispose(feature);
            request.Body = new MemoryStream(buffer, 0, length, writable: false);
            envelope = Parse(new ReadOnlySequence<byte>(buffer, 0, length), protocolVersion, state.MaxJsonDepth, out failure);
        }

        // The endpoint reads the body as JSON in UTF-8 (checked above): say so in the one form every JSON reader takes.
        // ASP.NET Core's ReadFromJsonAsync (MapMcp's) fails with a 500 on a quoted charset.
        request.ContentType = CanonicalContentType;

        if (envelope is null)
        {
            return new McpGuardError(catalog[failure.Reason], failure.Detail) { Id = failure.Id };
        }

        feature.RecordEnvelope(envelope);
        return CheckStandardHeaders(request.Headers, envelope, protocolVersion, catalog);
    }

    private static McpGuardError TooLarge(McpGuardErrorCatalog catalog, long limit) =>
        new(catalog[McpGuardReasons.PayloadTooLarge], $"Payload Too Large: the request body exceeds {limit} bytes.");

    private static McpGuardError Refused(HttpContext context, McpGuardErrorCatalog catalog, McpGuardState state, BodyOutcome outcome) => outcome switch
    {
        BodyOutcome.TooSlow => new McpGuardError(catalog[McpGuardReasons.RequestTimeout], "Request Timeout: the request body arrived too slowly."),
        BodyOutcome.Malformed => new McpGuardError(catalog[McpGuardReasons.InvalidRequest],
            "Invalid Request: the request body could not be read; its chunked encoding or Content-Length is broken."),
        // The lower of the two limits refused it: McpGuard's, or the server's own (Kestrel's MaxRequestBodySize).
        _ => TooLarge(catalog, Math.Min(state.MaxRequestBodySize, context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize ?? long.MaxValue)),
    };

    /// <summary>
    /// A body with a <c>Content-Length</c> up to this many bytes is read in place (<see cref="PeekBodyAsync"/>); a larger or
    /// chunked one is copied into a pooled buffer (<see cref="ReadBodyAsync"/>). Far below what the server's request pipe
    /// holds before it stops reading the socket (Kestrel's <c>MaxRequestBufferSize</c>, 1 MB; HTTP/2's stream window,
    /// 768 KB), so a body left unconsumed there never stalls its own arrival.
    /// </summary>
    internal const int InPlaceLimit = 16 * 1024;

    /// <summary>
    /// Buffers the whole body in the server's request pipe and returns it without consuming it: the caller parses it, then
    /// marks it examined and not consumed, and the endpoint reads the same bytes. The outcome is <see cref="BodyOutcome.Read"/>
    /// or why the body could not be read, as for <see cref="ReadBodyAsync"/>.
    /// </summary>
    private static async ValueTask<(ReadOnlySequence<byte> Body, BodyOutcome Outcome)> PeekBodyAsync(HttpContext context, PipeReader reader)
    {
        try
        {
            while (true)
            {
                // No cancellation token, as in ReadBodyAsync.
                var result = await reader.ReadAsync(CancellationToken.None);
                if (result.IsCompleted)
                {
                    return (result.Buffer, BodyOutcome.Read);
                }

                reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            }
        }
        catch (IOException ex) when (!ClientDisconnect.Caused(ex, context))
        {
            return (default, Outcome(ex));
        }
    }

    /// <summary>
    /// The body reader when it is the server's own request pipe with the server's own stream over it (Kestrel's; IIS and
    /// HTTP.sys have no request pipe of their own): then the endpoint reads from the pipe the front door left the body
    /// in, whether it reads the pipe or the stream. Null elsewhere (TestServer, or a body stream that middleware before the
    /// guard replaced, as <c>EnableBuffering</c> does): the reader is then a wrapper over the stream that keeps what it
    /// read to itself, the stream would read nothing after it, and the body is copied instead.
    /// </summary>
    private static PipeReader? ServerBodyPipe(HttpContext context)
    {
        var pipe = context.Features.Get<IRequestBodyPipeFeature>();
        if (pipe is null || !ReferenceEquals(pipe, context.Features.Get<IHttpRequestFeature>()))
        {
            return null;
        }

        // The server's stream, and its pipe rather than a wrapper it made over a stream that was swapped in and back out.
        var server = pipe.GetType().Assembly;
        var reader = pipe.Reader;
        return context.Request.Body.GetType().Assembly == server && reader.GetType().Assembly == server ? reader : null;
    }

    /// <summary>The envelope of the body (read in place, or copied: one segment), or null with why not.</summary>
    private static McpEnvelope? Parse(ReadOnlySequence<byte> body, string protocolVersion, int maxDepth, out EnvelopeFailure failure)
    {
        if (body.IsSingleSegment)
        {
            return McpEnvelopeParser.TryParse(body.FirstSpan, protocolVersion, maxDepth, out var envelope, out failure) ? envelope : null;
        }

        // A body read in place across the pipe's blocks: the parser reads one span, so copy it (at most InPlaceLimit bytes).
        var copy = ArrayPool<byte>.Shared.Rent((int)body.Length);
        try
        {
            body.CopyTo(copy);
            return McpEnvelopeParser.TryParse(copy.AsSpan(0, (int)body.Length), protocolVersion, maxDepth, out var envelope, out failure) ? envelope : null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    /// <summary>
    /// Reads the whole body into a pooled buffer (null unless the outcome is <see cref="BodyOutcome.Read"/>). The
    /// client's framing errors are outcomes, not failures; a client that went away is rethrown for the pipeline.
    /// </summary>
    private static async ValueTask<(byte[]? Buffer, int Length, BodyOutcome Outcome)> ReadBodyAsync(HttpContext context, long limit)
    {
        var request = context.Request;
        var expected = request.ContentLength ?? 4096;
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(expected + 1, limit + 1));
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, limit + 1));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                // No cancellation token: a client that leaves ends the read anyway (reset, or a body cut short), and the
                // read then fails the same way every time instead of racing the aborted token.
                var read = await request.Body.ReadAsync(buffer.AsMemory(length), CancellationToken.None);
                if (read == 0)
                {
                    return (buffer, length, BodyOutcome.Read);
                }

                length += read;
                if (length > limit)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    return (null, 0, BodyOutcome.TooLarge);
                }
            }
        }
        catch (IOException ex) when (!ClientDisconnect.Caused(ex, context))
        {
            // The server refused the body while we read it (Kestrel says why with a BadHttpRequestException, or with a
            // bare IOException for a chunk size that overflows): the client's fault, answered with the status it chose.
            ArrayPool<byte>.Shared.Return(buffer);
            return (null, 0, Outcome(ex));
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>What a refused body read says about the body (Kestrel says why with a <c>BadHttpRequestException</c>).</summary>
    private static BodyOutcome Outcome(IOException ex) => (ex as BadHttpRequestException)?.StatusCode switch
    {
        // The server's own body limit is lower than ours; answer the same way.
        StatusCodes.Status413PayloadTooLarge => BodyOutcome.TooLarge,
        StatusCodes.Status408RequestTimeout => BodyOutcome.TooSlow,
        _ => BodyOutcome.Malformed,
    };

    /// <summary>What reading the body came to.</summary>
    private enum BodyOutcome
    {
        /// <summary>The whole body is in the buffer.</summary>
        Read,

        /// <summary>The body is larger than the limit.</summary>
        TooLarge,

        /// <summary>The body's framing is broken: a bad chunk, or fewer bytes than <c>Content-Length</c> said.</summary>
        Malformed,

        /// <summary>The body arrived more slowly than Kestrel's <c>MinRequestBodyDataRate</c>.</summary>
        TooSlow,
    }

    private static McpGuardError? CheckStandardHeaders(IHeaderDictionary headers, McpEnvelope envelope, string protocolVersion, McpGuardErrorCatalog catalog)
    {
        if (envelope.Kind == McpMessageKind.Response)
        {
            return null;
        }

        // From 2026-07-28 the headers are required; before, they are checked only when sent.
        var required = McpProtocolVersions.IsPerRequestMetadata(protocolVersion);

        var methodHeader = headers[McpMethodHeader];
        if (methodHeader.Count == 0)
        {
            if (required)
            {
                return Mismatch(catalog, envelope, "Header mismatch: the Mcp-Method header is required.");
            }
        }
        else if (methodHeader.Count > 1 || !string.Equals(methodHeader[0]!.Trim(), envelope.Method, StringComparison.Ordinal))
        {
            return Mismatch(catalog, envelope, $"Header mismatch: Mcp-Method header value '{Echo(methodHeader)}' does not match body value '{envelope.Method}'.");
        }

        var routingName = envelope.RoutingName;
        var nameHeader = headers[McpNameHeader];
        if (nameHeader.Count == 0)
        {
            if (required && routingName is not null)
            {
                return Mismatch(catalog, envelope, "Header mismatch: the Mcp-Name header is required.");
            }

            return null;
        }

        if (routingName is null)
        {
            // A method whose name member McpGuard does not read (tasks/get names its task by taskId, say): the header is
            // the server's to judge, not ours.
            return null;
        }

        var decoded = nameHeader.Count == 1 ? McpHeaderEncoder.DecodeValue(nameHeader[0]!.Trim()) : null;
        if (decoded is null || !string.Equals(decoded, routingName, StringComparison.Ordinal))
        {
            return Mismatch(catalog, envelope, $"Header mismatch: Mcp-Name header value '{Echo(nameHeader)}' does not match body value '{routingName}'.");
        }

        return null;
    }

    private static McpGuardError Mismatch(McpGuardErrorCatalog catalog, McpEnvelope envelope, string detail) =>
        new(catalog[McpGuardReasons.HeaderMismatch], detail) { Id = envelope.Id };

    private static string Echo(StringValues values)
    {
        var text = values.ToString();
        return text.Length <= MaxEchoedHeaderLength ? text : string.Concat(text.AsSpan(0, MaxEchoedHeaderLength), "…");
    }

    private static bool EndpointHandles(HttpContext context, string method)
    {
        var methods = context.GetEndpoint()?.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods;
        if (methods is null)
        {
            return false;
        }

        foreach (var candidate in methods)
        {
            if (string.Equals(candidate, method, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary><c>application/json</c>, optionally with <c>charset=utf-8</c>; any other charset is refused.</summary>
    internal static bool IsJsonContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return false;
        }

        if (!HttpSyntax.IsJson(contentType))
        {
            return false;
        }

        var span = contentType.AsSpan();
        var semicolon = span.IndexOf(';');

        while (semicolon >= 0)
        {
            span = span[(semicolon + 1)..];
            semicolon = span.IndexOf(';');
            var parameter = (semicolon < 0 ? span : span[..semicolon]).Trim();
            var equals = parameter.IndexOf('=');
            if (equals < 0)
            {
                continue;
            }

            var name = parameter[..equals].Trim();
            var value = parameter[(equals + 1)..].Trim().Trim('"');
            if (name.Equals("charset", StringComparison.OrdinalIgnoreCase)
                && !value.Equals("utf-8", StringComparison.OrdinalIgnoreCase)
                && !value.Equals("utf8", StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Streamable HTTP clients must accept both JSON and SSE responses; wildcards count.</summary>
    internal static bool AcceptsJsonAndEventStream(StringValues accept)
    {
        bool json = false, eventStream = false;
        foreach (var value in accept)
        {
            var span = value.AsSpan();
            while (!span.IsEmpty)
            {
                var comma = span.IndexOf(',');
                var part = comma < 0 ? span : span[..comma];
                span = comma < 0 ? default : span[(comma + 1)..];
                var mediaType = HttpSyntax.MediaType(part);
                if (mediaType.Equals("*/*", StringComparison.OrdinalIgnoreCase))
                {
                    json = eventStream = true;
                }
                else if (mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || mediaType.Equals("application/*", StringComparison.OrdinalIgnoreCase))
                {
                    json = true;
                }
                else if (mediaType.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase) || mediaType.Equals("text/*", StringComparison.OrdinalIgnoreCase))
                {
                    eventStream = true;
                }
            }
        }

        return json && eventStream;
    }
}
