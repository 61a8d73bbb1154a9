using System.Net;
using System.Net.Http.Headers;
using McpGuard.Sample;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Tokens;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Auth;

/// <summary>
/// An app that already had <c>AddAuthentication().AddJwtBearer()</c> puts the guard on it with
/// <c>McpGuard:Auth:Schemes: ["Bearer"]</c>: its own JwtBearer validates the tokens, McpGuard's API keys still work beside
/// it, and the guard answers 401 and 403 with its RFC 9728 challenges and catalog bodies, as with its own JWT scheme.
/// The app's scheme stays its default, and its other endpoints authenticate as before.
/// </summary>
public sealed class AppSchemesTests : IAsyncLifetime
{
    private GuardedHost _host = null!;

    public async Task InitializeAsync() => _host = await StartAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task A_token_of_the_apps_own_scheme_calls_a_tool_its_scope_allows()
    {
        using var response = await _host.PostMcpAsync(Echo("from the app's issuer"), apiKey: TestTokens.Create(subject: "dora", scope: "tools:basic"));

        await AssertToolTextAsync(response, "from the app's issuer");
    }

    [Fact]
    public async Task A_token_of_the_apps_own_scheme_without_the_tools_scope_gets_403_insufficient_scope()
    {
        using var response = await _host.PostMcpAsync(PremiumReport(), apiKey: TestTokens.Create(scope: "tools:basic"));

        await AssertPremiumRefusedAsync(response);
    }

    [Theory]
    [InlineData("expired")]
    [InlineData("wrong audience")]
    [InlineData("bad signature")]
    [InlineData("no sub")]
    public async Task A_token_the_apps_own_scheme_refuses_gets_401_invalid_token(string why)
    {
        var token = why switch
        {
            "expired" => TestTokens.Expired(),
            "wrong audience" => TestTokens.Create(audience: "https://other.example.com/mcp"),
            "bad signature" => TestTokens.Create(signingKey: TestTokens.OtherSigningKey),
            _ => TestTokens.Create(subject: null),
        };

        using var response = await _host.PostMcpAsync(Echo(), apiKey: token);

        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidTokenEchoChallenge, -31102, InvalidTokenMessage, "invalid_token");
    }

    [Fact]
    public async Task No_credential_gets_401_with_the_resource_metadata_challenge()
    {
        using var response = await _host.PostMcpAsync(Echo(), apiKey: null);

        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"",
            -31101, InvalidKeyMessage, "unauthorized");
    }

    [Fact]
    public async Task McpGuards_api_keys_work_beside_the_apps_scheme()
    {
        using var response = await _host.PostMcpAsync(PremiumReport(), apiKey: DemoKeys.Alice);

        await AssertToolTextAsync(response, "Premium report on tea: demand is steady, risks are known, and the outlook is fair.");
    }

    [Fact]
    public async Task The_apps_scheme_stays_its_default_and_its_own_endpoints_authenticate_as_before()
    {
        var schemes = _host.Services.GetRequiredService<IAuthenticationSchemeProvider>();
        Assert.Equal(JwtBearerDefaults.AuthenticationScheme, (await schemes.GetDefaultAuthenticateSchemeAsync())?.Name);
        Assert.Equal(JwtBearerDefaults.AuthenticationScheme, (await schemes.GetDefaultChallengeSchemeAsync())?.Name);

        using (var anonymous = await _host.Client.GetAsync("/whoami"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            Assert.Equal("Bearer", Challenge(anonymous));
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, "/whoami");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestTokens.Create(subject: "dora"));
        using var response = await _host.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("dora", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Naming_a_scheme_the_app_did_not_register_fails_at_start_up_with_the_registered_ones()
    {
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => StartAsync(scheme: "Entra"));

        Assert.Contains("McpGuard:Auth:Schemes:0 'Entra' is not a registered authentication scheme (registered: Bearer).", failure.ToString(), StringComparison.Ordinal);
    }

    private static Task<GuardedHost> StartAsync(string scheme = JwtBearerDefaults.AuthenticationScheme) =>
        GuardedHost.StartAsync(
            builder =>
            {
                // The app as it was before McpGuard: its own JwtBearer, its own endpoint behind it.
                builder.Services.AddAuthentication().AddJwtBearer(options =>
                {
                    options.TokenValidationParameters = new TokenValidationParameters
                    {
                        ValidIssuer = TestTokens.Issuer,
                        ValidAudience = TestTokens.Audience,
                        IssuerSigningKey = new SymmetricSecurityKey(Convert.FromBase64String(TestTokens.SigningKey)),
                    };
                });
                builder.Services.AddAuthorization();

                builder.Configuration.AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"));
                builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["McpGuard:Auth:Schemes:0"] = scheme });
                builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
                builder.Services.AddMcpServer().WithHttpTransport().WithTools<SampleTools>().WithMcpGuard();
            },
            app =>
            {
                app.UseAuthentication();
                app.UseAuthorization();
                app.UseMcpGuard();
                app.MapMcp("/mcp");
                app.MapGet("/whoami", (HttpContext context) => context.User.FindFirst(System.Security.Claims.ClaimTypes.NameIdentifier)?.Value ?? "-")
                    .RequireAuthorization();
            });
}
