using Microsoft.AspNetCore.Http;

namespace McpGuard.Auth;

/// <summary>
/// Serves the RFC 9728 protected-resource metadata at <c>/.well-known/oauth-protected-resource</c> and at the
/// path-suffixed form for the endpoint (<c>/.well-known/oauth-protected-resource/mcp</c>). It never requires
/// credentials: clients read it precisely because they have none yet.
/// </summary>
internal static class ProtectedResourceMetadataEndpoint
{
    public static bool Matches(HttpContext context, AuthState auth)
    {
        if (auth.MetadataJson is null || !(HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method)))
        {
            return false;
        }

        var path = context.Request.Path;
        return path.Equals(auth.MetadataPath, StringComparison.Ordinal) || path.Equals(auth.MetadataSuffixedPath, StringComparison.Ordinal);
    }

    public static Task WriteAsync(HttpContext context, AuthState auth)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json";
        response.Headers.CacheControl = "public, max-age=3600";
        response.Headers.AccessControlAllowOrigin = "*";
        response.ContentLength = auth.MetadataJson!.Length;
        return HttpMethods.IsHead(context.Request.Method)
            ? Task.CompletedTask
            : response.Body.WriteAsync(auth.MetadataJson).AsTask();
    }
}
