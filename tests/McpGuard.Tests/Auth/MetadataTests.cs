using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol;
using ModelContextProtocol.Authentication;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Auth;

/// <summary>RFC 9728 protected-resource metadata, served by the guard without credentials.</summary>
public sealed class MetadataTests : IAsyncLifetime
{
    private const string SampleMetadata =
        """{"resource":"http://127.0.0.1:5080/mcp","authorization_servers":["http://127.0.0.1:5080/dev-issuer"],"bearer_methods_supported":["header"],"scopes_supported":["tools:basic","tools:premium"],"resource_name":"McpGuard sample"}""";

    private GuardedHost _host = null!;

    public async Task InitializeAsync() => _host = await GuardedHost.StartSampleAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Theory]
    [InlineData("/.well-known/oauth-protected-resource")]
    [InlineData("/.well-known/oauth-protected-resource/mcp")]
    public async Task Metadata_is_served_without_credentials(string path)
    {
        using var response = await _host.Client.GetAsync(path);

        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.ToString());
        Assert.Equal(text.Length, response.Content.Headers.ContentLength);
        Assert.Equal("public, max-age=3600", response.Headers.CacheControl?.ToString());
        Assert.Equal("*", Assert.Single(response.Headers.GetValues("Access-Control-Allow-Origin")));
        Assert.Null(Challenge(response));
        AssertJsonEqual(JsonNode.Parse(SampleMetadata)!, JsonNode.Parse(text));
        Assert.DoesNotContain("/mcp/\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metadata_ignores_credentials_even_bad_ones()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/.well-known/oauth-protected-resource/mcp");
        request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {DemoKeys.Revoked}");

        using var response = await _host.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertJsonEqual(JsonNode.Parse(SampleMetadata)!, JsonNode.Parse(await response.Content.ReadAsStringAsync()));
    }

    [Theory]
    [InlineData("/.well-known/oauth-protected-resource")]
    [InlineData("/.well-known/oauth-protected-resource/mcp")]
    public async Task Head_gets_the_headers_without_the_body(string path)
    {
        using var response = await _host.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.ToString());
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(SampleMetadata), response.Content.Headers.ContentLength);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    [Theory]
    [InlineData("/.well-known/oauth-protected-resource")]
    [InlineData("/.well-known/oauth-protected-resource/mcp")]
    public async Task Post_to_the_metadata_path_is_not_served_as_metadata(string path)
    {
        using var response = await _host.Client.PostAsync(path, new StringContent("{}", System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Empty(await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("/.well-known/oauth-protected-resource/other")]
    [InlineData("/.well-known/oauth-protected-resource/mcp/extra")]
    public async Task Other_suffixes_are_not_metadata(string path)
    {
        using var response = await _host.Client.GetAsync(path);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task The_document_deserializes_into_the_sdks_ProtectedResourceMetadata()
    {
        using var response = await _host.Client.GetAsync("/.well-known/oauth-protected-resource/mcp");

        var metadata = JsonSerializer.Deserialize<ProtectedResourceMetadata>(await response.Content.ReadAsStringAsync(), McpJsonUtilities.DefaultOptions);

        Assert.NotNull(metadata);
        Assert.Equal("http://127.0.0.1:5080/mcp", metadata.Resource?.ToString());
        Assert.Equal(["http://127.0.0.1:5080/dev-issuer"], metadata.AuthorizationServers.Select(s => s.ToString()));
        Assert.Equal(["header"], metadata.BearerMethodsSupported);
        Assert.Equal(["tools:basic", "tools:premium"], metadata.ScopesSupported);
        Assert.Equal("McpGuard sample", metadata.ResourceName);
        Assert.Null(metadata.ResourceDocumentation);
        Assert.Null(metadata.JwksUri);
    }

    [Fact]
    public async Task Configured_scopes_supported_replace_the_derived_list()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Auth:ScopesSupported:0"] = "mcp:tools",
            ["McpGuard:Auth:ScopesSupported:1"] = "mcp:admin",
            ["McpGuard:Auth:ResourceDocumentation"] = "https://docs.example.com/mcp",
        });

        using (var response = await host.Client.GetAsync("/.well-known/oauth-protected-resource"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            AssertJsonEqual(
                JsonNode.Parse(
                    """{"resource":"http://127.0.0.1:5080/mcp","authorization_servers":["http://127.0.0.1:5080/dev-issuer"],"bearer_methods_supported":["header"],"scopes_supported":["mcp:tools","mcp:admin"],"resource_name":"McpGuard sample","resource_documentation":"https://docs.example.com/mcp"}""")!,
                JsonNode.Parse(await response.Content.ReadAsStringAsync()));
        }

        // A method without scopes of its own challenges with the supported scopes: the configured ones.
        using (var response = await host.PostMcpAsync(Request("tools/list"), apiKey: null))
        {
            Assert.Equal($"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"mcp:tools mcp:admin\"", Challenge(response));
        }
    }

    [Fact]
    public async Task Derived_scopes_supported_include_method_scopes_sorted_and_distinct()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Methods:resources/read:Scopes:0"] = "resources:read",
            ["McpGuard:Methods:prompts/get:Scopes:0"] = "tools:basic",
        });

        using var response = await host.Client.GetAsync("/.well-known/oauth-protected-resource/mcp");

        var metadata = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        AssertJsonEqual(JsonNode.Parse("""["resources:read","tools:basic","tools:premium"]""")!, metadata["scopes_supported"]);
    }

    [Fact]
    public async Task Without_authorization_servers_no_metadata_is_served_and_challenges_do_not_point_to_it()
    {
        await using var host = await GuardedHost.StartSampleAsync(
            configure: builder => builder.ConfigureServices(services => services.PostConfigure<McpGuardOptions>(o => o.Auth.AuthorizationServers.Clear())));

        using (var response = await host.Client.GetAsync("/.well-known/oauth-protected-resource"))
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        using (var response = await host.Client.GetAsync("/.well-known/oauth-protected-resource/mcp"))
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: null))
        {
            await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, "Bearer scope=\"tools:basic\"", -31101, InvalidKeyMessage, "unauthorized");
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: DemoKeys.Revoked))
        {
            await AssertJsonRpcErrorAsync(
                response,
                HttpStatusCode.Unauthorized,
                "Bearer error=\"invalid_token\", error_description=\"invalid or expired API key\", scope=\"tools:basic\"",
                -31102,
                InvalidKeyMessage,
                "invalid_token");
        }

        using (var response = await host.PostMcpAsync(PremiumReport(), apiKey: DemoKeys.Bob))
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("Bearer error=\"insufficient_scope\", scope=\"tools:premium\"", Challenge(response));
        }
    }

    [Fact]
    public async Task A_resource_at_the_root_publishes_only_the_plain_well_known_path()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Auth:Resource"] = "https://mcp.example.com",
        });

        using (var response = await host.Client.GetAsync("/.well-known/oauth-protected-resource"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("https://mcp.example.com", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["resource"]!.GetValue<string>());
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: null))
        {
            Assert.Equal("Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource\", scope=\"tools:basic\"", Challenge(response));
        }
    }
}
