using System.Net;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;

namespace McpGuard.Tests.Admin;

/// <summary>The sample's OpenAPI document for the admin API (<c>AddOpenApi("mcpguard-admin")</c>, <c>MapOpenApi()</c>).</summary>
public sealed class AdminOpenApiTests
{
    [Fact]
    public async Task The_sample_serves_an_openapi_document_with_every_admin_path_and_the_request_records()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.Client.GetAsync("/openapi/mcpguard-admin.json");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected 200, got {(int)response.StatusCode}: {text}");
        var document = JsonNode.Parse(text)!.AsObject();

        var paths = document["paths"]!.AsObject();
        Assert.Equal(
            [
                "/admin/accounts/{id}",
                "/admin/accounts/{id}/adjust",
                "/admin/accounts/{id}/cap",
                "/admin/accounts/{id}/ledger",
                "/admin/accounts/{id}/reactivate",
                "/admin/accounts/{id}/suspend",
                "/admin/accounts/{id}/topup",
                "/admin/keys",
                "/admin/keys/{id}/revoke",
                "/admin/ledger/verify",
                "/admin/tools",
                "/admin/tools/{name}/archive",
                "/admin/tools/{name}/pause",
                "/admin/tools/{name}/restore",
                "/admin/traffic",
                "/admin/usage",
            ],
            paths.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(paths, p => p.Key.StartsWith("/mcp", StringComparison.Ordinal));
        Assert.Equal("McpGuardAdminUsage", paths["/admin/usage"]!["get"]!["operationId"]!.GetValue<string>());

        var schemas = document["components"]!["schemas"]!.AsObject();
        foreach (var name in new[] { "TopUpRequest", "AdjustRequest", "SetCapRequest", "CreateKeyRequest" })
        {
            Assert.True(schemas.ContainsKey(name), $"No schema {name} in: {string.Join(", ", schemas.Select(s => s.Key))}");
        }

        // The request bodies are the records, in JSON, with the wire's snake_case names.
        Assert.Equal("#/components/schemas/TopUpRequest",
            paths["/admin/accounts/{id}/topup"]!["post"]!["requestBody"]!["content"]!["application/json"]!["schema"]!["$ref"]!.GetValue<string>());
        Assert.Equal(["amount_micro", "note"], schemas["TopUpRequest"]!["properties"]!.AsObject().Select(p => p.Key));
        Assert.Equal(["account", "scopes", "expires_at", "id", "max_price_micro"], schemas["CreateKeyRequest"]!["properties"]!.AsObject().Select(p => p.Key));
        Assert.Equal("McpGuardAdminTopUp", paths["/admin/accounts/{id}/topup"]!["post"]!["operationId"]!.GetValue<string>());
    }
}
