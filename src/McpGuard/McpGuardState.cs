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
    }

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

    /// <summary>Whether a request's <c>Origin</c> (exactly one value) may call the guarded endpoint and the admin API.</summary>
    public bool IsOriginAllowed(StringValues origin) =>
        origin.Count == 1 && (AllowAnyOrigin || AllowedOrigins.Contains(origin[0]!));

    public string RequestIdHeader { get; }

    public McpGuardErrorCatalog Catalog { get; }
}
