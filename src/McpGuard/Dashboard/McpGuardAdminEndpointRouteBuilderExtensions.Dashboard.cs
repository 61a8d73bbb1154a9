using System.Diagnostics.CodeAnalysis;
using McpGuard;
using McpGuard.Admin;
using McpGuard.Dashboard;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

// The dashboard: a page on top of the admin API.
public static partial class McpGuardAdminEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the dashboard under <paramref name="prefix"/>: one page (at <paramref name="prefix"/>) with its script and style
    /// sheet, embedded in McpGuard (nothing is loaded from elsewhere). The page holds no data: it reads and changes
    /// everything through the admin API mapped by <c>MapMcpGuardAdmin(<paramref name="adminPrefix"/>)</c>, with the admin
    /// key the operator types in (kept in the tab's session storage), or with the app's own sign-in when
    /// <c>McpGuard:Admin:Policy</c> is set; the files then require that policy too.
    /// </summary>
    /// <param name="endpoints">The app.</param>
    /// <param name="prefix">Where the page is served.</param>
    /// <param name="adminPrefix">Where the admin API is mapped (the page calls it there).</param>
    /// <returns>A builder for the three endpoints, for further conventions such as <c>RequireAuthorization(…)</c>.</returns>
    /// <exception cref="InvalidOperationException"><c>AddMcpGuard</c> or <c>AddAuthorization</c> was not called.</exception>
    public static IEndpointConventionBuilder MapMcpGuardDashboard(
        this IEndpointRouteBuilder endpoints,
        [StringSyntax("Route")] string prefix = "/admin/ui",
        [StringSyntax("Route")] string adminPrefix = "/admin")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrWhiteSpace(prefix);
        ArgumentException.ThrowIfNullOrWhiteSpace(adminPrefix);
        if (!prefix.StartsWith('/') || !adminPrefix.StartsWith('/') || prefix.Contains('{', StringComparison.Ordinal) || adminPrefix.Contains('{', StringComparison.Ordinal))
        {
            throw new ArgumentException($"The dashboard's prefix and the admin API's are paths that start with '/' and hold no route parameter (got '{prefix}' and '{adminPrefix}').");
        }

        McpGuardMarkerService.EnsureRegistered(endpoints.ServiceProvider);
        if (endpoints.ServiceProvider.GetService<IAuthorizationHandlerProvider>() is null)
        {
            throw new InvalidOperationException(
                "The dashboard is protected by the admin API's authorization, and the app has no authorization services. Call builder.Services.AddAuthorization() in Program.cs before building the app.");
        }

        var page = prefix.TrimEnd('/');
        var admin = adminPrefix.TrimEnd('/');
        var assets = DashboardAssets.Instance;
        var group = endpoints.MapGroup(page.Length == 0 ? "/" : page)
            .RequireAuthorization(new DashboardAuthorizeData(endpoints.ServiceProvider))
            .ExcludeFromDescription();
        group.MapMethods("", [HttpMethods.Get, HttpMethods.Head], (HttpContext context) => assets.WritePageAsync(context, PageBase(context, page), admin))
            .WithDisplayName("McpGuard dashboard");
        group.MapMethods("/dashboard.js", [HttpMethods.Get, HttpMethods.Head], assets.WriteScriptAsync)
            .WithDisplayName("McpGuard dashboard: script");
        group.MapMethods("/dashboard.css", [HttpMethods.Get, HttpMethods.Head], assets.WriteStyleAsync)
            .WithDisplayName("McpGuard dashboard: style sheet");
        return group;
    }

    /// <summary>
    /// Where the page is, as routing matched it: on a route group (<c>app.MapGroup("/ops").MapMcpGuardDashboard("/ui")</c>)
    /// that is the group's prefix and the dashboard's (<c>/ops/ui</c>), not the dashboard's alone. Empty at the root.
    /// </summary>
    private static string PageBase(HttpContext context, string page)
    {
        if (context.GetEndpoint() is not RouteEndpoint { RoutePattern.RawText: { } raw })
        {
            return page;
        }

        var trimmed = raw.Trim('/');
        return trimmed.Length == 0 ? "" : "/" + trimmed;
    }

    /// <summary>
    /// The files' authorization, read when they first authorize a request (as the admin API's is): the app's policy named in
    /// <c>McpGuard:Admin:Policy</c>, else an open one, since under the admin key the page asks for the key itself.
    /// </summary>
    private sealed class DashboardAuthorizeData(IServiceProvider services) : IAuthorizeData
    {
        public string? Policy
        {
            get => services.GetRequiredService<McpGuardStateProvider>().Current.Options.Admin.Policy ?? DashboardAssets.OpenPolicyName;
            set => throw new NotSupportedException();
        }

        public string? Roles { get => null; set => throw new NotSupportedException(); }

        public string? AuthenticationSchemes { get => null; set => throw new NotSupportedException(); }
    }
}
