using System.Net;
using System.Net.Http.Headers;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Auth;

/// <summary>
/// McpGuard authenticates only the requests it guards. Its JwtBearer handler runs as a component of the
/// gate, not as a registered authentication scheme, so it never becomes the app's default scheme, never
/// authenticates requests to other endpoints, and leaves the app's own authentication alone.
/// </summary>
public sealed class AppIsolationTests
{
    [Fact]
    public async Task McpGuard_registers_no_authentication_scheme()
    {
        await using var host = await GuardedHost.StartSampleAsync(TestTokens.JwtEnabled());

        Assert.Null(host.Services.GetService<IAuthenticationSchemeProvider>());
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
