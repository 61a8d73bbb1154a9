using System.Net;
using System.Net.Http.Headers;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Auth;

/// <summary>
/// McpGuard authenticates only the requests it guards. Its schemes (API keys and its own JwtBearer) are registered
/// under their own names and asked for by name; they never become the app's default scheme, never authenticate
/// requests to other endpoints, and leave the app's own authentication alone.
/// </summary>
public sealed class AppIsolationTests
{
    [Fact]
    public async Task McpGuards_schemes_are_registered_but_are_never_the_default()
    {
        await using var host = await GuardedHost.StartSampleAsync(TestTokens.JwtEnabled());

        var schemes = host.Services.GetRequiredService<IAuthenticationSchemeProvider>();
        Assert.Equal(
            [McpGuardSchemes.AdminKey, McpGuardSchemes.ApiKey, McpGuardSchemes.Jwt],
            (await schemes.GetAllSchemesAsync()).Select(s => s.Name).Order(StringComparer.Ordinal));
        Assert.Null(await schemes.GetDefaultAuthenticateSchemeAsync());
        Assert.Null(await schemes.GetDefaultChallengeSchemeAsync());
    }

    [Fact]
    public void AddMcpGuard_adds_no_problem_details_service_no_http_context_accessor_and_no_default_scheme()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddMcpGuard(new ConfigurationBuilder().Build());

        Assert.DoesNotContain(services, d => d.ServiceType == typeof(IProblemDetailsService) || d.ServiceType == typeof(IProblemDetailsWriter));
        Assert.DoesNotContain(services, d => d.ServiceType == typeof(IHttpContextAccessor));
        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<AuthenticationOptions>>().Value;
        Assert.Null(options.DefaultScheme);
        Assert.Null(options.DefaultAuthenticateScheme);
        Assert.Null(options.DefaultChallengeScheme);
    }

    [Fact]
    public async Task A_guard_token_sent_to_another_endpoint_does_not_authenticate_it()
    {
        await using var app = await GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("Guard")),
            web =>
            {
                web.UseMcpGuard();
                web.MapGet("/other", (HttpContext context) => Results.Text(
                    $"authenticated={context.User.Identity?.IsAuthenticated == true};sub={context.User.FindFirst("sub")?.Value ?? "-"}"));
                web.MapPost("/mcp", () => Results.Ok());
            },
            new Dictionary<string, string?>
            {
                ["Guard:Auth:Resource"] = TestTokens.Audience,
                ["Guard:Auth:AuthorizationServers:0"] = TestTokens.Issuer,
                ["Guard:Auth:Jwt:Enabled"] = "true",
                ["Guard:Auth:Jwt:Issuer"] = TestTokens.Issuer,
                ["Guard:Auth:Jwt:SigningKey"] = TestTokens.SigningKey,
            });

        using var request = new HttpRequestMessage(HttpMethod.Get, "/other");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TestTokens.Create());
        using var response = await app.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("authenticated=False;sub=-", await response.Content.ReadAsStringAsync());
        Assert.DoesNotContain(app.Logs.Entries, e => e.Category.StartsWith("McpGuard", StringComparison.Ordinal) || e.Category.Contains("JwtBearer", StringComparison.Ordinal));
    }
}
