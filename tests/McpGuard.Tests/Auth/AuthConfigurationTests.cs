using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace McpGuard.Tests.Auth;

/// <summary>Bad auth configuration stops the host from starting, naming every problem at once.</summary>
public sealed class AuthConfigurationTests
{
    private const string NotAScopeToken = "is not a scope token (printable ASCII without spaces, quotes, backslashes or commas).";
    private const string BadHash = "must be the 64-character lowercase hex SHA-256 of the key (see McpGuardApiKey.Hash or the sample's 'hash' command).";

    [Fact]
    public async Task Every_auth_problem_is_reported_at_once()
    {
        var aliceHash = McpGuardApiKey.Hash("mcpg_demo_alice");
        var failure = await StartFailsAsync(new Dictionary<string, string?>
        {
            // Keys on, but no Resource.
            ["Guard:Auth:ApiKeys:Enabled"] = "true",
            ["Guard:Auth:ApiKeys:Keys:0:Id"] = "k1",
            ["Guard:Auth:ApiKeys:Keys:0:Account"] = "alice",
            ["Guard:Auth:ApiKeys:Keys:0:Hash"] = aliceHash.ToUpperInvariant(),
            ["Guard:Auth:ApiKeys:Keys:0:Scopes:0"] = "tools,basic",
            ["Guard:Auth:ApiKeys:Keys:1:Id"] = "k1",
            ["Guard:Auth:ApiKeys:Keys:1:Account"] = "bob",
            ["Guard:Auth:ApiKeys:Keys:1:Hash"] = aliceHash[..63],
            ["Guard:Auth:ApiKeys:Keys:1:Scopes:0"] = "tools basic",
            // JWTs on, with no authorization server, no key source, no issuer.
            ["Guard:Auth:Jwt:Enabled"] = "true",
            ["Guard:Methods:tools/call:Scopes:0"] = "tools:basic",
        });

        Assert.Equal(
            [
                "McpGuard:Auth:Resource is required when API keys or JWTs are enabled: the canonical URI of the MCP endpoint, e.g. https://mcp.example.com/mcp.",
                $"McpGuard:Auth:ApiKeys:Keys:0:Hash {BadHash}",
                $"McpGuard:Auth:ApiKeys:Keys:0:Scopes:0 'tools,basic' {NotAScopeToken}",
                "McpGuard:Auth:ApiKeys:Keys:1:Id 'k1' is used by another key.",
                $"McpGuard:Auth:ApiKeys:Keys:1:Hash {BadHash}",
                $"McpGuard:Auth:ApiKeys:Keys:1:Scopes:0 'tools basic' {NotAScopeToken}",
                "McpGuard:Auth:AuthorizationServers needs at least one entry when JWTs are enabled (RFC 9728 metadata requires it).",
                "McpGuard:Auth:Jwt needs an Authority (to fetch signing keys) or a SigningKey.",
                "McpGuard:Auth:Jwt:Issuer is required unless an Authority supplies it.",
                "McpGuard:Methods:tools/call is not allowed: give each tool its own policy under McpGuard:Tools.",
            ],
            failure.Failures);
        Assert.All(failure.Failures, f => Assert.Contains(f, failure.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_trailing_slash_on_the_resource_and_a_short_signing_key_are_both_reported()
    {
        var failure = await StartFailsAsync(new Dictionary<string, string?>
        {
            ["Guard:Auth:Resource"] = "https://mcp.example.com/mcp/",
            ["Guard:Auth:AuthorizationServers:0"] = "https://auth.example.com",
            ["Guard:Auth:Jwt:Enabled"] = "true",
            ["Guard:Auth:Jwt:Issuer"] = "https://auth.example.com",
            ["Guard:Auth:Jwt:SigningKey"] = Convert.ToBase64String(new byte[31]),
        });

        Assert.Equal(
            [
                "McpGuard:Auth:Resource must be an absolute http(s) URI with no query, fragment, trailing slash, comma or quote (got 'https://mcp.example.com/mcp/').",
                "McpGuard:Auth:Jwt:SigningKey must be base64 of at least 32 bytes.",
            ],
            failure.Failures);
    }

    [Fact]
    public async Task A_signing_key_of_exactly_32_bytes_is_accepted()
    {
        var builder = CreateBuilder(new Dictionary<string, string?>
        {
            ["Guard:Auth:Resource"] = "https://mcp.example.com/mcp",
            ["Guard:Auth:AuthorizationServers:0"] = "https://auth.example.com",
            ["Guard:Auth:Jwt:Enabled"] = "true",
            ["Guard:Auth:Jwt:Issuer"] = "https://auth.example.com",
            ["Guard:Auth:Jwt:SigningKey"] = Convert.ToBase64String(new byte[32]),
        });
        await using var app = builder.Build();
        app.UseMcpGuard();

        await app.StartAsync();
        await app.StopAsync();
    }

    /// <summary>One problem at a time on top of the sample's (valid) configuration: exactly that problem is reported.</summary>
    [Theory]
    [InlineData("McpGuard:Auth:Resource=http://127.0.0.1:5080/mcp/",
        "McpGuard:Auth:Resource must be an absolute http(s) URI with no query, fragment, trailing slash, comma or quote (got 'http://127.0.0.1:5080/mcp/').")]
    [InlineData("McpGuard:Auth:Resource=/mcp",
        "McpGuard:Auth:Resource must be an absolute http(s) URI with no query, fragment, trailing slash, comma or quote (got '/mcp').")]
    [InlineData("McpGuard:Auth:Resource=http://127.0.0.1:5080/mcp?tenant=1",
        "McpGuard:Auth:Resource must be an absolute http(s) URI with no query, fragment, trailing slash, comma or quote (got 'http://127.0.0.1:5080/mcp?tenant=1').")]
    [InlineData("McpGuard:Auth:Resource=",
        "McpGuard:Auth:Resource is required when API keys or JWTs are enabled: the canonical URI of the MCP endpoint, e.g. https://mcp.example.com/mcp.")]
    [InlineData("McpGuard:Auth:AuthorizationServers:0=http://127.0.0.1:5080/a,b",
        "McpGuard:Auth:AuthorizationServers:0 must be an absolute http(s) URI (got 'http://127.0.0.1:5080/a,b').")]
    [InlineData("McpGuard:Auth:ApiKeys:Keys:0:Hash=F1911F32D0418F84581E05118DF2D3AE638F8FC2B7E8EBF1F0C2A843C9C45CC1",
        $"McpGuard:Auth:ApiKeys:Keys:0:Hash {BadHash}")]
    [InlineData("McpGuard:Auth:ApiKeys:Keys:2:Hash=mcpg_demo_carol",
        $"McpGuard:Auth:ApiKeys:Keys:2:Hash {BadHash}")]
    [InlineData("McpGuard:Auth:ApiKeys:Keys:1:Id=demo-alice",
        "McpGuard:Auth:ApiKeys:Keys:1:Id 'demo-alice' is used by another key.")]
    [InlineData("McpGuard:Auth:ApiKeys:Keys:0:Scopes:1=tools:basic,tools:premium",
        $"McpGuard:Auth:ApiKeys:Keys:0:Scopes:1 'tools:basic,tools:premium' {NotAScopeToken}")]
    [InlineData("McpGuard:Auth:ApiKeys:Keys:0:MaxPriceMicro=-1",
        "McpGuard:Auth:ApiKeys:Keys:0:MaxPriceMicro must be 0 or more micro-units, or unset for no ceiling (got -1).")]
    [InlineData("McpGuard:Tools:search:Price:PerUnitMicro=0",
        "McpGuard:Tools:search:Price is a metered price: it needs PerUnitMicro and MaxMicro, whole numbers above 0, PerUnitMicro at most MaxMicro (got PerUnitMicro '0', MaxMicro '20').")]
    [InlineData("McpGuard:Tools:search:Price:PerUnitMicro=30",
        "McpGuard:Tools:search:Price is a metered price: it needs PerUnitMicro and MaxMicro, whole numbers above 0, PerUnitMicro at most MaxMicro (got PerUnitMicro '30', MaxMicro '20').")]
    [InlineData("McpGuard:Tools:search:Price:Units=2",
        "McpGuard:Tools:search:Price has unknown setting(s) Units: a metered price is { \"PerUnitMicro\": 2, \"MaxMicro\": 20000 }.")]
    [InlineData("McpGuard:Tools:add:Price:MaxMicro=900",
        "McpGuard:Tools:add:Price is both a number (800) and a metered price; give one.")]
    [InlineData("McpGuard:Tools:echo:Scopes:0=tools basic",
        $"McpGuard:Tools:echo:Scopes:0 'tools basic' {NotAScopeToken}")]
    [InlineData("McpGuard:Methods:resources/read:Scopes:0=a,b",
        $"McpGuard:Methods:resources/read:Scopes:0 'a,b' {NotAScopeToken}")]
    [InlineData("McpGuard:Auth:ScopesSupported:0=tools:basic tools:premium",
        $"McpGuard:Auth:ScopesSupported:0 'tools:basic tools:premium' {NotAScopeToken}")]
    [InlineData("McpGuard:Methods:tools/call:Scopes:0=tools:basic",
        "McpGuard:Methods:tools/call is not allowed: give each tool its own policy under McpGuard:Tools.")]
    [InlineData("McpGuard:Auth:Jwt:Enabled=true;McpGuard:Auth:Jwt:SigningKey=c2hvcnQ=",
        "McpGuard:Auth:Jwt:SigningKey must be base64 of at least 32 bytes.")]
    [InlineData("McpGuard:Auth:Jwt:Enabled=true;McpGuard:Auth:Jwt:SigningKey=not base64 at all, not even close!!",
        "McpGuard:Auth:Jwt:SigningKey must be base64 of at least 32 bytes.")]
    public async Task One_bad_setting_on_the_sample_is_reported_exactly(string overrides, string expected)
    {
        var configuration = overrides.Split(';').Select(o => o.Split('=', 2)).ToDictionary(kv => kv[0], kv => (string?)kv[1]);
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartSampleAsync(configuration, inMemory: true));

        Assert.Equal([expected], failure.Failures);
    }

    [Fact]
    public async Task Jwt_on_the_sample_without_authorization_servers_is_refused()
    {
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartSampleAsync(
            new Dictionary<string, string?> { ["McpGuard:Auth:Jwt:Enabled"] = "true" },
            builder => builder.ConfigureServices(services => services.PostConfigure<McpGuardOptions>(o => o.Auth.AuthorizationServers.Clear())),
            inMemory: true));

        Assert.Equal(["McpGuard:Auth:AuthorizationServers needs at least one entry when JWTs are enabled (RFC 9728 metadata requires it)."], failure.Failures);
    }

    /// <summary>
    /// Section "Guard", not "McpGuard": the sample's appsettings.json sits in the test output folder and would mix in.
    /// </summary>
    private static async Task<OptionsValidationException> StartFailsAsync(Dictionary<string, string?> configuration)
    {
        await using var app = CreateBuilder(configuration).Build();
        app.UseMcpGuard();
        return await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
    }

    private static WebApplicationBuilder CreateBuilder(Dictionary<string, string?> configuration)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, EnvironmentName = "Production" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration.AddInMemoryCollection(configuration);
        builder.Logging.ClearProviders();
        builder.Services.AddMcpGuard(builder.Configuration.GetSection("Guard"));
        return builder;
    }
}
