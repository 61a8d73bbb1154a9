using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Protocol;

/// <summary>
/// Works out the <c>Allow</c> header for a 405 at the guarded path: POST, plus whatever methods the app's
/// own endpoints at that path serve (say GET and DELETE from <c>MapMcp()</c>). Computed once per path.
/// </summary>
internal sealed class AllowedMethods
{
    private Entry? _cached;

    public string For(HttpContext context, PathString path)
    {
        if (_cached is { } cached && cached.Path == path)
        {
            return cached.Value;
        }

        var methods = new SortedSet<string>(StringComparer.Ordinal) { HttpMethods.Post };
        var dataSource = context.RequestServices.GetService<EndpointDataSource>();
        if (dataSource is not null)
        {
            var target = path.Value!.Trim('/');
            foreach (var endpoint in dataSource.Endpoints)
            {
                if (endpoint is RouteEndpoint route
                    && string.Equals(route.RoutePattern.RawText?.Trim('/'), target, StringComparison.OrdinalIgnoreCase)
                    && route.Metadata.GetMetadata<IHttpMethodMetadata>() is { } metadata)
                {
                    methods.UnionWith(metadata.HttpMethods);
                }
            }
        }

        var value = string.Join(", ", methods);
        _cached = new Entry(path, value);
        return value;
    }

    private sealed record Entry(PathString Path, string Value);
}
