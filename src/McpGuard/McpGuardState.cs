using System.Collections.Frozen;
using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Errors;
using McpGuard.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace McpGuard;

/// <summary>
/// Validated options compiled into the shape the hot path wants: no per-request option lookups,
/// no string parsing of configuration per request. Replaced whole on a good reload.
/// </summary>
internal sealed class McpGuardState
{
    public McpGuardState(McpGuardOptions options)
    {
        Options = options;
        Path = new PathString(options.Path.Length > 1 ? options.Path.TrimEnd('/') : options.Path);
        MaxRequestBodySize = options.MaxRequestBodySize;
        MaxJsonDepth = options.MaxJsonDepth;
        AllowAnyOrigin = options.AllowedOrigins.Contains("*");
        AllowedOrigins = options.AllowedOrigins.Where(o => o != "*").ToFrozenSet(StringComparer.OrdinalIgnoreCase);
        RequestIdHeader = options.RequestIdHeader;
        Catalog = McpGuardErrorCatalog.Create(options.Errors);
        Auth = new AuthState(options);
        RateLimits = new RateLimitState(options);
        Credits = new CreditState(options);
        UpstreamCredential = UpstreamOptionsValidation.ResolveCredential(options.Upstream.Credential);
    }

    /// <summary>The value of the header the proxy adds upstream (<c>Upstream:Credential</c>), resolved when the state was built; null for none.</summary>
    public string? UpstreamCredential { get; }

    public CreditState Credits { get; }

    public RateLimitState RateLimits { get; }

    public AuthState Auth { get; }

    /// <summary>The validated options this state was compiled from.</summary>
    public McpGuardOptions Options { get; }

    public PathString Path { get; }

    public long MaxRequestBodySize { get; }

    public int MaxJsonDepth { get; }

    public bool AllowAnyOrigin { get; }

    public FrozenSet<string> AllowedOrigins { get; }

    /// <summary>
    /// Whether a request's <c>Origin</c> (exactly one value) may call the guarded endpoint and the admin API: one of
    /// <c>AllowedOrigins</c>; or, when none is configured, the request's own origin on a loopback host (a page served by
    /// the same local server: <c>Origin</c> equal to the request's scheme and <c>Host</c>, where the host is
    /// <c>localhost</c>, <c>127.0.0.1</c> or <c>[::1]</c>). A DNS-rebinding page cannot pass: its <c>Host</c> is its own
    /// name, not a loopback one.
    /// </summary>
    public bool IsOriginAllowed(StringValues origin, HttpRequest request)
    {
        if (origin.Count != 1)
        {
            return false;
        }

        if (AllowAnyOrigin || AllowedOrigins.Contains(origin[0]!))
        {
            return true;
        }

        return AllowedOrigins.Count == 0 && IsOwnLoopbackOrigin(origin[0]!, request);
    }

    private static bool IsOwnLoopbackOrigin(string origin, HttpRequest request)
    {
        var host = request.Host;
        if (!host.HasValue || !IsLoopbackName(host.Host))
        {
            return false;
        }

        return IsOwnOrigin(origin, request);
    }

    /// <summary>Whether <paramref name="origin"/> is the request's own: its scheme and <c>Host</c>, exactly (case aside).</summary>
    public static bool IsOwnOrigin(string origin, HttpRequest request)
    {
        var host = request.Host;
        var scheme = request.Scheme;
        return host.HasValue
            && origin.Length == scheme.Length + 3 + host.Value!.Length
            && origin.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)
            && origin.AsSpan(scheme.Length).StartsWith("://", StringComparison.Ordinal)
            && origin.AsSpan(scheme.Length + 3).Equals(host.Value, StringComparison.OrdinalIgnoreCase);
    }

    private static bool IsLoopbackName(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host is "127.0.0.1" or "[::1]";

    public string RequestIdHeader { get; }

    public McpGuardErrorCatalog Catalog { get; }
}
