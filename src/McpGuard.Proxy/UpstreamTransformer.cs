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
internal sealed class UpstreamTransformer(SessionBindings sessions) : HttpTransformer
{
    internal const string SessionHeader = "Mcp-Session-Id";

    private static readonly string[] Dropped =
    [
        "Authorization", "Proxy-Authorization", "Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Prefix",
    ];

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        var feature = httpContext.Features.GetRequiredFeature<McpGuardFeature>();
        var state = feature.State;
        var request = httpContext.Request;
        proxyRequest.RequestUri = new Uri(destinationPrefix + request.QueryString.ToUriComponent());

        var headers = proxyRequest.Headers;
        foreach (var name in Dropped)
        {
            headers.Remove(name);
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

        return base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
    }
}
