using System.Net;
using System.Text;
using McpGuard.Tests.Docs;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using static McpGuard.Tests.Admin.AdminTestKit;

namespace McpGuard.Tests.Dashboard;

/// <summary>
/// <c>MapMcpGuardDashboard</c>: its three embedded files with their headers, the page's pointers to the admin API, the
/// authorization they share with the admin API under a policy, and the same-origin rule that lets the page's POSTs through.
/// </summary>
public sealed class DashboardTests
{
    private const string Csp = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    [Theory]
    [InlineData("/admin/ui/dashboard.js", "text/javascript; charset=utf-8", "dashboard.js")]
    [InlineData("/admin/ui/dashboard.css", "text/css; charset=utf-8", "dashboard.css")]
    public async Task The_script_and_the_style_sheet_are_the_embedded_files_with_strict_headers(string path, string contentType, string file)
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.Client.GetAsync(path);

        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(contentType, response.Content.Headers.ContentType?.ToString());
        AssertAssetHeaders(response);
        Assert.Equal(File.ReadAllText(Path.Combine(DocsTranscriptTests.RepositoryRoot(), "src", "McpGuard", "Dashboard", "assets", file)), body);
        Assert.Equal(Encoding.UTF8.GetByteCount(body), response.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task The_page_points_at_its_files_and_the_admin_api_and_asks_for_the_admin_key()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.Client.GetAsync("/admin/ui");

        var html = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        AssertAssetHeaders(response);
        Assert.Contains("""<meta name="mcpguard-admin" content="/admin">""", html, StringComparison.Ordinal);
        Assert.Contains("""<meta name="mcpguard-auth" content="key">""", html, StringComparison.Ordinal);
        Assert.Contains("""<link rel="stylesheet" href="/admin/ui/dashboard.css">""", html, StringComparison.Ordinal);
        Assert.Contains("""<script src="/admin/ui/dashboard.js" defer></script>""", html, StringComparison.Ordinal);
        Assert.DoesNotContain("{{", html, StringComparison.Ordinal);

        // No inline script or style, nothing from another origin: the page works under its own policy.
        Assert.Single(html.Split("<script", StringSplitOptions.None).Skip(1));
        Assert.DoesNotContain("<style", html, StringComparison.Ordinal);
        Assert.DoesNotContain(" style=", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http://", html.Replace("http://www.w3.org", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_whose_etag_the_browser_has_is_answered_304_and_a_head_gets_no_body()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        using var first = await host.Client.GetAsync("/admin/ui/dashboard.js");
        var etag = Assert.Single(first.Headers.GetValues("ETag"));
        Assert.Matches("^\"[0-9a-f]{16}\"$", etag);

        using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/ui/dashboard.js");
        request.Headers.TryAddWithoutValidation("If-None-Match", etag);
        using var again = await host.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotModified, again.StatusCode);
        Assert.Equal("", await again.Content.ReadAsStringAsync());
        Assert.Equal(etag, Assert.Single(again.Headers.GetValues("ETag")));

        using var head = await host.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/admin/ui"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("", await head.Content.ReadAsStringAsync());

        using var post = await host.Client.PostAsync("/admin/ui", new StringContent(""));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
    }

    [Fact]
    public async Task The_admin_api_takes_a_post_from_its_own_origin_on_any_host_and_refuses_another_origin()
    {
        await using var host = await StartSampleAsync();
        var own = $"http://{host.BaseAddress.Authority}";

        // The test host's port is not in the sample's McpGuard:AllowedOrigins (which lists port 5080): the page's own origin still passes.
        using (var response = await host.SendAsync(HttpMethod.Post, "/admin/accounts/bob/topup", """{"amount_micro":10}""", headers: new Dictionary<string, string> { ["Origin"] = own }))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // A name that is not loopback, as behind a real host name: the page's origin is the request's scheme and Host.
        using (var response = await host.SendAsync(HttpMethod.Post, "/admin/accounts/bob/topup", """{"amount_micro":10}""",
            headers: new Dictionary<string, string> { ["Origin"] = "http://ops.example.com", ["Host"] = "ops.example.com" }))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        foreach (var (origin, hostHeader) in new[] { ("http://ops.example.com:8080", "ops.example.com"), ("https://ops.example.com", "ops.example.com"), ("http://evil.example", host.BaseAddress.Authority) })
        {
            using var response = await host.SendAsync(HttpMethod.Post, "/admin/accounts/bob/topup", """{"amount_micro":10}""",
                headers: new Dictionary<string, string> { ["Origin"] = origin, ["Host"] = hostHeader });
            await AssertProblemAsync(response, HttpStatusCode.Forbidden, "Forbidden",
                $"Origin '{origin}' may not call the admin API; allowed origins are set in McpGuard:AllowedOrigins.");
        }

        using var account = await host.GetAdminAsync("/admin/accounts/bob");
        await AssertJsonAsync(account, HttpStatusCode.OK, Account("bob", 260, null, 0, 3));
    }

    [Fact]
    public async Task Under_an_admin_policy_the_files_require_it_as_the_admin_api_does_and_the_page_asks_for_no_key()
    {
        await using var host = await GuardedHost.StartAsync(
            builder =>
            {
                builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
                builder.Services.AddAuthentication().AddCookie();
                builder.Services.AddAuthorization(options => options.AddPolicy("operators", policy => policy
                    .AddAuthenticationSchemes(CookieAuthenticationDefaults.AuthenticationScheme)
                    .RequireAssertion(context => context.Resource is HttpContext http && http.Request.Headers["X-Operator"] == "yes")));
            },
            app =>
            {
                app.MapMcpGuardAdmin("/ops/api");
                app.MapMcpGuardDashboard("/ops", adminPrefix: "/ops/api");
            },
            GuardConfiguration.ApiKeys(GuardConfiguration.Alice()).With(new Dictionary<string, string?> { ["McpGuard:Admin:Policy"] = "operators" }));

        // The app's scheme challenges the page and its files with its login redirect; the admin API, an API endpoint, with a
        // 401 (ASP.NET Core's cookie handler does not redirect API endpoints).
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = host.BaseAddress };
        foreach (var path in new[] { "/ops", "/ops/dashboard.js", "/ops/dashboard.css" })
        {
            using var refused = await client.GetAsync(path);
            Assert.True(HttpStatusCode.Redirect == refused.StatusCode, $"{path}: {(int)refused.StatusCode}");
            Assert.Equal(new Uri(host.BaseAddress, "/Account/Login?ReturnUrl=" + Uri.EscapeDataString(path)), refused.Headers.Location);
        }

        using (var api = await client.GetAsync("/ops/api/tools"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, "/ops");
        request.Headers.Add("X-Operator", "yes");
        using var page = await client.SendAsync(request);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("""<meta name="mcpguard-admin" content="/ops/api">""", html, StringComparison.Ordinal);
        Assert.Contains("""<meta name="mcpguard-auth" content="policy">""", html, StringComparison.Ordinal);
        Assert.Contains("""<script src="/ops/dashboard.js" defer></script>""", html, StringComparison.Ordinal);

        // Under a policy the credentials can be ambient (here a header; a cookie or the caller's address alike), so a page
        // that rebinds its own name to this server must not pass by sending that name as both Host and Origin.
        using var rebound = new HttpRequestMessage(HttpMethod.Post, "/ops/api/tools/add/pause");
        rebound.Headers.Add("X-Operator", "yes");
        rebound.Headers.Host = "evil.example";
        rebound.Headers.Add("Origin", "http://evil.example");
        using var refusedOrigin = await client.SendAsync(rebound);
        await AssertProblemAsync(refusedOrigin, HttpStatusCode.Forbidden, "Forbidden",
            "Origin 'http://evil.example' may not call the admin API; allowed origins are set in McpGuard:AllowedOrigins.");
    }

    [Fact]
    public async Task On_a_route_group_the_page_points_at_its_files_under_the_groups_prefix()
    {
        await using var host = await GuardedHost.StartAsync(
            builder =>
            {
                builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
                builder.Services.AddAuthorization();
            },
            app =>
            {
                var ops = app.MapGroup("/ops");
                ops.MapMcpGuardAdmin("/api");
                ops.MapMcpGuardDashboard("/ui", adminPrefix: "/ops/api");
            },
            GuardConfiguration.ApiKeys(GuardConfiguration.Alice()));

        using var page = await host.Client.GetAsync("/ops/ui");
        var html = await page.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("""<script src="/ops/ui/dashboard.js" defer></script>""", html, StringComparison.Ordinal);
        Assert.Contains("""<meta name="mcpguard-admin" content="/ops/api">""", html, StringComparison.Ordinal);
        using var script = await host.Client.GetAsync("/ops/ui/dashboard.js");
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
    }

    [Fact]
    public async Task Mapping_the_dashboard_without_authorization_services_or_with_a_bad_prefix_fails_with_a_clear_message()
    {
        var builder = WebApplication.CreateBuilder();
        builder.Services.AddMcpGuard(new ConfigurationBuilder().Build().GetSection("McpGuard"));
        await using var app = builder.Build();

        var missing = Assert.Throws<InvalidOperationException>(() => app.MapMcpGuardDashboard());
        Assert.Equal(
            "The dashboard is protected by the admin API's authorization, and the app has no authorization services. Call builder.Services.AddAuthorization() in Program.cs before building the app.",
            missing.Message);

        var relative = Assert.Throws<ArgumentException>(() => app.MapMcpGuardDashboard("admin/ui"));
        Assert.Equal("The dashboard's prefix and the admin API's are paths that start with '/' and hold no route parameter (got 'admin/ui' and '/admin').", relative.Message);
    }

    private static void AssertAssetHeaders(HttpResponseMessage response)
    {
        Assert.Equal(Csp, Assert.Single(response.Headers.GetValues("Content-Security-Policy")));
        Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
        Assert.Equal("no-referrer", Assert.Single(response.Headers.GetValues("Referrer-Policy")));
        Assert.Equal("no-cache", response.Headers.CacheControl?.ToString());
        Assert.Matches("^\"[0-9a-f]{16}\"$", Assert.Single(response.Headers.GetValues("ETag")));
    }
}
