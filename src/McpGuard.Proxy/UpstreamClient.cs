using System.Diagnostics;
using System.Net;

namespace McpGuard.Proxy;

/// <summary>The one HTTP client the proxy forwards with, set up as YARP recommends for a proxy.</summary>
internal static class UpstreamClient
{
    public static HttpMessageInvoker Create(TimeSpan connectTimeout) =>
        new(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = connectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            // W3C trace context: the upstream's spans join the guarded request's trace.
            ActivityHeadersPropagator = DistributedContextPropagator.CreateDefaultPropagator(),
        }, disposeHandler: true);
}
