using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace McpGuard.Proxy;

/// <summary>
/// Shapes the forwarded request: YARP copies the headers (<c>Mcp-Session-Id</c>, <c>MCP-Protocol-Version</c>,
/// <c>Mcp-Method</c>, <c>Mcp-Name</c>, <c>Last-Event-ID</c>, <c>Accept</c>, trace context…) and the body the front door
/// read; this drops the caller's credentials (the MCP specification forbids passing a token through), replaces any
/// <c>Forwarded</c>/<c>X-Forwarded-*</c> the client sent with the proxy's own, sends the request id McpGuard settled on
/// (<c>X-Request-Id</c>), adds the configured upstream credential,
/// and sends the request to the upstream URL itself rather than appending the proxy's own path to it.
/// </summary>
internal sealed class UpstreamTransformer(SessionBindings sessions, UpstreamRoutes routes) : HttpTransformer
{
    internal const string SessionHeader = "Mcp-Session-Id";

    // Credentials (the caller's own, and cookies an app's scheme may read), the client's forwarding claims, and
    // Accept-Encoding: the guard reads every answer it settles or filters, so the upstream must send it uncompressed.
    private static readonly string[] Dropped =
    [
        "Authorization", "Proxy-Authorization", "Cookie", "Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
        "X-Forwarded-Prefix", "Accept-Encoding",
    ];

    /// <summary>The trace-context headers the forwarder's handler writes from the current span (W3C, its older Request-Id, baggage).</summary>
    private static readonly string[] TraceContext = ["traceparent", "tracestate", "Request-Id", "baggage", "Correlation-Context"];

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        var feature = httpContext.Features.GetRequiredFeature<McpGuardFeature>();
        var state = feature.State;
        var request = httpContext.Request;
        proxyRequest.RequestUri = request.QueryString.HasValue ? new Uri(destinationPrefix + request.QueryString.ToUriComponent()) : routes.For(state).Uri;

        // The upstream's own host, not the one the client named (which would pick the upstream's virtual host).
        proxyRequest.Headers.Host = null;

        var headers = proxyRequest.Headers;
        foreach (var name in Dropped)
        {
            headers.Remove(name);
        }

        if (System.Diagnostics.Activity.Current is not null)
        {
            // A span is open (McpGuard's, under the caller's trace when it sent one): the upstream's request is its child. The
            // handler writes the span's context only where the caller's copy is gone. With no span, the caller's headers go
            // through as they came, so the trace still reaches the upstream.
            foreach (var name in TraceContext)
            {
                headers.Remove(name);
            }
        }

        if (state.Auth.KeyHeader is { } keyHeader)
        {
            headers.Remove(keyHeader);
            proxyRequest.Content?.Headers.Remove(keyHeader);
        }

        if (httpContext.Connection.RemoteIpAddress is { } remote)
        {
            headers.TryAddWithoutValidation("X-Forwarded-For", remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4().ToString() : remote.ToString());
        }

        headers.TryAddWithoutValidation("X-Forwarded-Proto", request.Scheme);
        if (request.Host.HasValue)
        {
            headers.TryAddWithoutValidation("X-Forwarded-Host", request.Host.ToUriComponent());
        }

        if (request.PathBase.HasValue)
        {
            headers.TryAddWithoutValidation("X-Forwarded-Prefix", request.PathBase.ToUriComponent());
        }

        // The upstream's logs can then be matched with the guard's and the ledger's.
        headers.Remove(state.RequestIdHeader);
        headers.TryAddWithoutValidation(state.RequestIdHeader, feature.RequestId);

        if (state.UpstreamCredential is { } credential)
        {
            var header = state.Options.Upstream.Credential.Header!;
            headers.Remove(header);
            headers.TryAddWithoutValidation(header, credential);
        }
    }

    /// <summary>
    /// Binds a session the upstream opened to the caller it opened it for; forgets one the upstream ended (a DELETE it
    /// accepted) or no longer knows (404).
    /// </summary>
    public override ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        if (proxyResponse is not null && proxyResponse.Content.Headers.ContentEncoding.Any(e => !string.Equals(e, "identity", StringComparison.OrdinalIgnoreCase)))
        {
            // Compressed although the proxy asked for nothing of the kind: the guard could not read the answer it settles
            // or filters, and the client could. Not passed on (the proxy answers 502).
            httpContext.Features.Set(EncodedAnswer.Instance);
            return new ValueTask<bool>(false);
        }

        if (proxyResponse is not null)
        {
            var request = httpContext.Request;
            var sent = request.Headers[SessionHeader];
            if (sent.Count == 0 && proxyResponse.IsSuccessStatusCode && proxyResponse.Headers.TryGetValues(SessionHeader, out var opened)
                && opened.SingleOrDefault() is { Length: > 0 } sessionId)
            {
                var caller = httpContext.Features.GetRequiredFeature<McpGuardFeature>().Caller;
                sessions.Bind(sessionId, caller?.Account ?? SessionBindings.Anonymous);
            }
            else if (sent.Count == 1 && (proxyResponse.StatusCode == System.Net.HttpStatusCode.NotFound
                || (HttpMethods.IsDelete(request.Method) && proxyResponse.IsSuccessStatusCode)))
            {
                sessions.Forget(sent[0]!);
            }
        }

        return CopyHeadersAsync(httpContext, proxyResponse, cancellationToken);
    }

    private async ValueTask<bool> CopyHeadersAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var copy = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        if (HttpMethods.IsPost(httpContext.Request.Method) && HttpSyntax.IsEventStream(httpContext.Response.ContentType))
        {
            // The stream loses its id lines on the way (EventIdStrippingBody): the upstream's length no longer holds.
            httpContext.Response.ContentLength = null;
        }

        return copy;
    }
}

/// <summary>Marks a request whose upstream answer came compressed (and was not passed on).</summary>
internal sealed class EncodedAnswer
{
    public static readonly EncodedAnswer Instance = new();
}
