using System.Diagnostics.CodeAnalysis;
using McpGuard.Admin;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps McpGuard's admin API.</summary>
public static class McpGuardAdminEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the admin API under <paramref name="prefix"/>: account top-ups, adjustments, caps, suspension and ledger pages,
    /// API keys created and revoked at run time, and tool pause, archive and restore. JSON in and out (snake_case);
    /// every error is problem+json. Protected by the admin key (<c>McpGuard:Admin:KeyHash</c>, sent as
    /// <c>Authorization: Bearer &lt;admin key&gt;</c>) or by an authorization policy (<c>McpGuard:Admin:Policy</c>);
    /// with neither configured every admin request gets 403.
    /// </summary>
    /// <returns>The group, for further conventions (the admin checks still run first).</returns>
    /// <exception cref="InvalidOperationException"><c>AddMcpGuard</c> was not called.</exception>
    public static RouteGroupBuilder MapMcpGuardAdmin(this IEndpointRouteBuilder endpoints, [StringSyntax("Route")] string prefix = "/admin")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrWhiteSpace(prefix);
        McpGuardMarkerService.EnsureRegistered(endpoints.ServiceProvider);

        // Resolved on first use, not here: the API needs the validated options, and invalid options must fail when the
        // host starts (listing every problem), not while the app is still being mapped.
        var services = endpoints.ServiceProvider;
        var api = new Lazy<AdminApi>(services.GetRequiredService<AdminApi>);

        var group = endpoints.MapGroup(prefix);
        Map(group, HttpMethods.Post, "/accounts/{id}/topup", context => api.Value.TopUpAsync(context));
        Map(group, HttpMethods.Post, "/accounts/{id}/adjust", context => api.Value.AdjustAsync(context));
        Map(group, HttpMethods.Get, "/accounts/{id}", context => api.Value.GetAccountAsync(context));
        Map(group, HttpMethods.Put, "/accounts/{id}/cap", context => api.Value.SetCapAsync(context));
        Map(group, HttpMethods.Post, "/accounts/{id}/suspend", context => api.Value.SuspendAsync(context));
        Map(group, HttpMethods.Post, "/accounts/{id}/reactivate", context => api.Value.ReactivateAsync(context));
        Map(group, HttpMethods.Get, "/accounts/{id}/ledger", context => api.Value.GetLedgerAsync(context));
        Map(group, HttpMethods.Post, "/keys", context => api.Value.CreateKeyAsync(context));
        Map(group, HttpMethods.Post, "/keys/{id}/revoke", context => api.Value.RevokeKeyAsync(context));
        Map(group, HttpMethods.Post, "/tools/{name}/pause", context => api.Value.PauseToolAsync(context));
        Map(group, HttpMethods.Post, "/tools/{name}/archive", context => api.Value.ArchiveToolAsync(context));
        Map(group, HttpMethods.Post, "/tools/{name}/restore", context => api.Value.RestoreToolAsync(context));

        // Runs when the endpoints are built (on the first request), after the host validated the options.
        ((IEndpointConventionBuilder)group).Add(endpoint => api.Value.Protect(endpoint));
        return group;
    }

    private static void Map(RouteGroupBuilder group, string method, string pattern, RequestDelegate handler) =>
        group.MapMethods(pattern, [method], handler).WithDisplayName($"McpGuard admin {method} {pattern}");
}
