using System.Reflection;
using McpGuard.Errors;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Admin;

/// <summary>The admin API's shape: its reasons are catalog entries, and its endpoints are protected by an authorization policy.</summary>
public sealed class AdminSurfaceTests
{
    [Fact]
    public void Every_admin_reason_has_one_catalog_entry_that_mcp_clients_never_see()
    {
        var reasons = typeof(McpGuardAdminReasons).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => (string)f.GetRawConstantValue()!)
            .ToList();

        Assert.Equal(reasons.Order(StringComparer.Ordinal), McpGuardErrorCatalog.AdminEntries.Select(e => e.Reason).Order(StringComparer.Ordinal));
        Assert.All(reasons, reason => Assert.Same(McpGuardErrorCatalog.AdminEntries.Single(e => e.Reason == reason), McpGuardErrorCatalog.Admin(reason)));
        Assert.All(reasons, reason => Assert.False(McpGuardErrorCatalog.IsKnownReason(reason), $"{reason} must not be configurable or rendered to MCP clients"));
        Assert.All(McpGuardErrorCatalog.AdminEntries, e => Assert.InRange(e.StatusCode, 400, 499));
        Assert.Equal(
            [
                ("admin_invalid_request", 400, "Invalid request"),
                ("admin_unauthorized", 401, "Unauthorized"),
                ("admin_forbidden", 403, "Forbidden"),
                ("admin_not_found", 404, "Not Found"),
                ("admin_conflict", 409, "Conflict"),
                ("admin_credits_disabled", 409, "Conflict"),
                ("admin_unsupported_media_type", 415, "Unsupported Media Type"),
                ("admin_payload_too_large", 413, "Payload Too Large"),
                ("admin_request_timeout", 408, "Request Timeout"),
            ],
            McpGuardErrorCatalog.AdminEntries.Select(e => (e.Reason, e.StatusCode, e.Message)));
        var ex = Assert.Throws<KeyNotFoundException>(() => McpGuardErrorCatalog.Admin("not_found"));
        Assert.Equal("McpGuard has no admin error catalog entry for reason 'not_found'.", ex.Message);
    }

    [Fact]
    public async Task Every_admin_endpoint_requires_the_admin_key_policy_and_declares_only_catalog_problems()
    {
        await using var host = await AdminTestKit.StartSampleAsync();

        var endpoints = host.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith("/admin", StringComparison.Ordinal) == true)
            .Where(e => e.RoutePattern.RawText?.StartsWith("/admin/ui", StringComparison.Ordinal) != true) // the sample's dashboard
            .ToList();
        Assert.Equal(16, endpoints.Count);
        var problemStatuses = McpGuardErrorCatalog.AdminEntries.Select(e => e.StatusCode).ToHashSet();
        foreach (var endpoint in endpoints)
        {
            var authorize = Assert.Single(endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>());
            Assert.Equal("McpGuard.Admin", authorize.Policy);
            Assert.False(string.IsNullOrEmpty(endpoint.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName), endpoint.DisplayName);
            Assert.False(string.IsNullOrEmpty(endpoint.Metadata.GetMetadata<IEndpointSummaryMetadata>()?.Summary), endpoint.DisplayName);
            var problems = endpoint.Metadata.GetOrderedMetadata<IProducesResponseTypeMetadata>()
                .Where(p => p.Type is not null && typeof(ProblemDetails).IsAssignableFrom(p.Type))
                .Select(p => p.StatusCode)
                .ToList();
            Assert.Contains(401, problems);
            Assert.All(problems, status => Assert.Contains(status, problemStatuses));
        }

        var policy = await host.Services.GetRequiredService<IAuthorizationPolicyProvider>().GetPolicyAsync("McpGuard.Admin");
        Assert.NotNull(policy);
        Assert.Equal([McpGuardSchemes.AdminKey], policy.AuthenticationSchemes);
        Assert.Equal("McpGuard.AdminKey", McpGuardSchemes.AdminKey);
    }
}
