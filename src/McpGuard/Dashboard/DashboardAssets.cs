using System.Net;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using McpGuard.Admin;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Net.Http.Headers;

namespace McpGuard.Dashboard;

/// <summary>
/// The dashboard's three files, embedded in the assembly: the page (rendered per request with where the dashboard and the
/// admin API are, and how the admin API is protected), its script and its style sheet. Each is answered with a strict
/// Content-Security-Policy (no inline script or style, nothing from another origin, no framing), nosniff, no referrer,
/// <c>Cache-Control: no-cache</c> and an ETag, so a browser revalidates and an upgrade is seen at once.
/// </summary>
internal sealed class DashboardAssets
{
    /// <summary>The authorization policy of the files under the admin key: open (they hold no data).</summary>
    internal const string OpenPolicyName = "McpGuard.Dashboard";

    internal const string ContentSecurityPolicy =
        "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private readonly string _page = Read("dashboard.html");
    private readonly Asset _script = new(Encoding.UTF8.GetBytes(Read("dashboard.js")), "text/javascript; charset=utf-8");
    private readonly Asset _style = new(Encoding.UTF8.GetBytes(Read("dashboard.css")), "text/css; charset=utf-8");

    public static DashboardAssets Instance { get; } = new();

    /// <summary>The page, with the dashboard's own path, the admin API's and the protection mode written into its meta tags.</summary>
    public Task WritePageAsync(HttpContext context, string prefix, string adminPrefix)
    {
        var state = context.RequestServices.GetRequiredService<McpGuardStateProvider>().Current;
        var pathBase = context.Request.PathBase;
        var html = _page
            .Replace("{{base}}", WebUtility.HtmlEncode(pathBase.Add(prefix).Value ?? prefix), StringComparison.Ordinal)
            .Replace("{{admin}}", WebUtility.HtmlEncode(pathBase.Add(adminPrefix).Value ?? adminPrefix), StringComparison.Ordinal)
            .Replace("{{auth}}", state.Options.Admin.Policy is null ? "key" : "policy", StringComparison.Ordinal);
        return WriteAsync(context, new Asset(Encoding.UTF8.GetBytes(html), "text/html; charset=utf-8"));
    }

    public Task WriteScriptAsync(HttpContext context) => WriteAsync(context, _script);

    public Task WriteStyleAsync(HttpContext context) => WriteAsync(context, _style);

    private static Task WriteAsync(HttpContext context, Asset asset)
    {
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-cache";
        headers.ETag = asset.ETag;
        if (context.Request.Headers.IfNoneMatch is { Count: > 0 } match
            && EntityTagHeaderValue.TryParseList(match, out var tags)
            && tags.Any(t => t.Compare(EntityTagHeaderValue.Any, useStrongComparison: false) || t.Tag == asset.ETag))
        {
            context.Response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }

        context.Response.ContentType = asset.ContentType;
        context.Response.ContentLength = asset.Bytes.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : context.Response.Body.WriteAsync(asset.Bytes).AsTask();
    }

    private static string Read(string name)
    {
        using var stream = typeof(DashboardAssets).Assembly.GetManifestResourceStream("McpGuard.Dashboard." + name)
            ?? throw new InvalidOperationException($"The dashboard's {name} is missing from the McpGuard assembly.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    private sealed class Asset(byte[] bytes, string contentType)
    {
        public byte[] Bytes { get; } = bytes;

        public string ContentType { get; } = contentType;

        /// <summary>A strong tag from the content: the same bytes, the same tag, on every instance.</summary>
        public string ETag { get; } = "\"" + Convert.ToHexStringLower(SHA256.HashData(bytes).AsSpan(0, 8)) + "\"";
    }
}
