using System.Net;
using Yarp.ReverseProxy.Forwarder;

namespace McpGuard.Proxy;

/// <summary>
/// What every forwarded request of one configuration shares, made once per configuration (a reload makes the next one)
/// rather than once per request: the upstream's URI and the forwarder's settings for calls and for GET streams.
/// </summary>
internal sealed class UpstreamRoutes
{
    private Route? _current;

    public Route For(McpGuardState state)
    {
        var route = _current;
        if (route?.State != state)
        {
            route = new Route(state);
            _current = route;
        }

        return route;
    }

    internal sealed class Route(McpGuardState state)
    {
        public McpGuardState State { get; } = state;

        public Uri Uri { get; } = new(state.Options.Upstream.Url!);

        /// <summary>POST and DELETE: the upstream may stay silent for <c>Upstream:ResponseTimeout</c>.</summary>
        public ForwarderRequestConfig Calls { get; } = Config(state.Options.Upstream.ResponseTimeout);

        /// <summary>GET: the server's channel for messages it sends on its own, where silence is normal.</summary>
        public ForwarderRequestConfig Streams { get; } = Config(Timeout.InfiniteTimeSpan);

        private static ForwarderRequestConfig Config(TimeSpan activityTimeout) => new()
        {
            ActivityTimeout = activityTimeout,
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
        };
    }
}
