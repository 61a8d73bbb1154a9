using System.Net;
using System.Security.Claims;
using System.Text.Encodings.Web;
using McpGuard.Sample;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using static McpGuard.Tests.Admin.AdminTestKit;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Admin;

/// <summary>Who may use the admin API: the admin key, a configured policy instead, and nobody when neither is configured.</summary>
public sealed class AdminAuthorizationTests
{
    private const string NeedsKey = "The admin API needs the admin key: send 'Authorization: Bearer <admin key>'.";
    private const string NotConfigured =
        "The admin API is not configured: set McpGuard:Admin:KeyHash to the SHA-256 of an admin key, or McpGuard:Admin:Policy to an authorization policy.";

    [Fact]
    public async Task Without_the_admin_key_every_endpoint_is_401_with_a_bearer_challenge_and_nothing_changes()
    {
        await using var host = await StartSampleAsync();
        var balance = await host.SnapshotAsync("/admin/accounts/bob");
        var ledger = await host.SnapshotAsync("/admin/accounts/bob/ledger");

        (HttpMethod Method, string Path, string? Body)[] endpoints =
        [
            (HttpMethod.Post, "/admin/accounts/bob/topup", """{"amount_micro": 1000}"""),
            (HttpMethod.Post, "/admin/accounts/bob/adjust", """{"amount_micro": -240, "note": "x"}"""),
            (HttpMethod.Get, "/admin/accounts/bob", null),
            (HttpMethod.Put, "/admin/accounts/bob/cap", """{"monthly_cap_micro": 0}"""),
            (HttpMethod.Post, "/admin/accounts/bob/suspend", null),
            (HttpMethod.Post, "/admin/accounts/carol/reactivate", null),
            (HttpMethod.Get, "/admin/accounts/bob/ledger", null),
            (HttpMethod.Post, "/admin/keys", """{"account": "bob", "scopes": ["tools:basic"], "id": "sneaky"}"""),
            (HttpMethod.Post, "/admin/keys/sneaky/revoke", null),
            (HttpMethod.Post, "/admin/tools/add/pause", null),
            (HttpMethod.Post, "/admin/tools/add/archive", null),
            (HttpMethod.Post, "/admin/tools/add/restore", null),
        ];
        foreach (var (method, path, body) in endpoints)
        {
            using (var none = await host.SendAsync(method, path, body, key: null))
            {
                await AssertProblemAsync(none, HttpStatusCode.Unauthorized, "Unauthorized", NeedsKey);
                Assert.Equal("Bearer realm=\"mcpguard-admin\"", Challenge(none));
            }

            using var wrong = await host.SendAsync(method, path, body, key: "mcpg_admin_guess");
            await AssertProblemAsync(wrong, HttpStatusCode.Unauthorized, "Unauthorized", NeedsKey);
            Assert.Equal("Bearer realm=\"mcpguard-admin\", error=\"invalid_token\"", Challenge(wrong));
        }

        Assert.Equal(balance, await host.SnapshotAsync("/admin/accounts/bob"));
        Assert.Equal(ledger, await host.SnapshotAsync("/admin/accounts/bob/ledger"));
        using (var carol = await host.GetAdminAsync("/admin/accounts/carol"))
        {
            await AssertJsonAsync(carol, HttpStatusCode.OK, Account("carol", 0, null, 0, 0, "suspended"));
        }

        using (var add = await host.CallToolAsync(DemoKeys.Alice, "add", new { a = 1, b = 1 }, "still-live"))
        {
            await AssertToolTextAsync(add, "2");
        }

        var refusals = host.Logs.Entries.Where(e => e.Category == "McpGuard.Admin").ToList();
        Assert.Equal(endpoints.Length * 2, refusals.Count);
        Assert.All(refusals, e => Assert.Equal(new EventId(7101, "AdminRefused"), e.EventId));
        Assert.All(refusals, e => Assert.Equal(LogLevel.Warning, e.Level));
        Assert.Equal("Admin request POST /admin/accounts/bob/topup refused: no admin key.", refusals[0].Message);
        Assert.Equal("Admin request POST /admin/accounts/bob/topup refused: wrong admin key.", refusals[1].Message);
        Assert.All(host.Logs.Entries, e => Assert.DoesNotContain("mcpg_admin_guess", e.FullText, StringComparison.Ordinal));
        Assert.All(host.Logs.Entries, e => Assert.DoesNotContain(AdminKey, e.FullText, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Basic bWNwZ19hZG1pbl90ZXN0Og==")]
    [InlineData("Bearer")]
    [InlineData("Bearer    ")]
    [InlineData("mcpg_admin_test")]
    public async Task A_credential_that_is_not_a_bearer_token_counts_as_none(string authorization)
    {
        await using var host = await StartSampleAsync();

        using var response = await host.SendAsync(HttpMethod.Get, "/admin/accounts/bob", key: null,
            headers: new Dictionary<string, string> { ["Authorization"] = authorization });

        await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "Unauthorized", NeedsKey);
        Assert.Equal("Bearer realm=\"mcpguard-admin\"", Challenge(response));
    }

    [Fact]
    public async Task Api_keys_are_not_admin_keys_and_the_admin_key_is_not_an_api_key()
    {
        await using var host = await StartSampleAsync();

        using (var response = await host.GetAdminAsync("/admin/accounts/alice", key: DemoKeys.Alice))
        {
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "Unauthorized", NeedsKey);
            Assert.Equal("Bearer realm=\"mcpguard-admin\", error=\"invalid_token\"", Challenge(response));
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: AdminKey))
        {
            await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized,
                $"Bearer error=\"invalid_token\", error_description=\"invalid or expired API key\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"",
                -31102, InvalidKeyMessage, "invalid_token");
        }

        // The scheme name is case-insensitive, as for API keys.
        using var ok = await host.SendAsync(HttpMethod.Get, "/admin/accounts/alice", key: null,
            headers: new Dictionary<string, string> { ["Authorization"] = $"bearer {AdminKey}" });
        await AssertJsonAsync(ok, HttpStatusCode.OK, Account("alice", 1_000_000, 2_000_000, 0, 0));
    }

    [Fact]
    public async Task Without_a_key_hash_or_a_policy_the_admin_api_is_closed_to_everyone()
    {
        await using var host = await StartAppAsync(Minimal());

        foreach (var key in new[] { null, AdminKey, DemoAdminKey, "anything" })
        {
            using var response = await host.GetAdminAsync("/admin/accounts/zoe", key: key);
            await AssertProblemAsync(response, HttpStatusCode.Forbidden, "Forbidden", NotConfigured);
            Assert.Null(Challenge(response));
        }

        using var topUp = await host.PostAdminAsync("/admin/accounts/zoe/topup", """{"amount_micro": 5}""");
        await AssertProblemAsync(topUp, HttpStatusCode.Forbidden, "Forbidden", NotConfigured);
        var line = host.Logs.Entries.Last(e => e.Category == "McpGuard.Admin");
        Assert.Equal("Admin request POST /admin/accounts/zoe/topup refused: not configured.", line.Message);
    }

    [Fact]
    public async Task A_configured_policy_is_enforced_instead_of_the_admin_key()
    {
        var configuration = Minimal();
        configuration["McpGuard:Admin:Policy"] = "billing-admins";
        configuration["McpGuard:Admin:KeyHash"] = McpGuardApiKey.Hash(AdminKey);
        await using var host = await StartAppAsync(configuration, builder =>
        {
            builder.Services.AddAuthentication().AddScheme<AuthenticationSchemeOptions, HeaderAuthenticationHandler>(HeaderAuthenticationHandler.SchemeName, null);
            builder.Services.AddAuthorization(options => options.AddPolicy("billing-admins", policy => policy
                .AddAuthenticationSchemes(HeaderAuthenticationHandler.SchemeName)
                .RequireAuthenticatedUser()
                .RequireRole("billing-admin")));
        });
        var admin = new Dictionary<string, string> { ["X-Test-User"] = "ops", ["X-Test-Role"] = "billing-admin" };
        var viewer = new Dictionary<string, string> { ["X-Test-User"] = "intern", ["X-Test-Role"] = "viewer" };

        // The admin key alone no longer opens anything: the policy's scheme challenges.
        using (var response = await host.GetAdminAsync("/admin/accounts/zoe"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("", await response.Content.ReadAsStringAsync());
        }

        using (var response = await host.GetAdminAsync("/admin/accounts/zoe", key: null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        using (var response = await host.SendAsync(HttpMethod.Post, "/admin/accounts/zoe/topup", """{"amount_micro": 5}""", key: null, headers: viewer))
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("", await response.Content.ReadAsStringAsync());
        }

        using (var response = await host.SendAsync(HttpMethod.Get, "/admin/accounts/zoe", key: null, headers: admin))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, Account("zoe", 500, null, 0, 0));
        }

        using (var response = await host.SendAsync(HttpMethod.Post, "/admin/accounts/zoe/topup", """{"amount_micro": 5}""", key: null, headers: admin))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var response = await host.SendAsync(HttpMethod.Get, "/admin/accounts/zoe", key: null, headers: admin))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, Account("zoe", 505, null, 0, 0));
        }

        var audit = Assert.Single(host.Logs.Entries, e => e.Category == "McpGuard.Admin");
        Assert.Equal("Admin (ops) topped up account zoe by 5 (ledger row 2); balance now 505.", audit.Message);
    }

    [Fact]
    public async Task Map_without_the_apps_authorization_services_throws_the_clear_message_and_AddMcpGuard_adds_none()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
        await using var app = builder.Build();

        Assert.Null(app.Services.GetService<Microsoft.AspNetCore.Authorization.IAuthorizationHandlerProvider>());
        var exception = Assert.Throws<InvalidOperationException>(() => app.MapMcpGuardAdmin("/admin"));

        Assert.Equal(
            "The admin API is protected by an authorization policy, and the app has no authorization services. Call builder.Services.AddAuthorization() in Program.cs before building the app.",
            exception.Message);
    }

    [Fact]
    public async Task Map_without_AddMcpGuard_throws_the_clear_message()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        await using var app = builder.Build();

        var exception = Assert.Throws<InvalidOperationException>(() => app.MapMcpGuardAdmin("/admin"));

        Assert.Equal(
            "McpGuard's services are not registered. Call builder.Services.AddMcpGuard() in Program.cs before building the app.",
            exception.Message);
    }

    [Fact]
    public async Task A_browser_origin_outside_the_allow_list_is_refused_even_with_the_key()
    {
        await using var host = await StartSampleAsync();

        using (var response = await host.SendAsync(HttpMethod.Post, "/admin/accounts/bob/topup", """{"amount_micro": 5}""",
            headers: new Dictionary<string, string> { ["Origin"] = "http://evil.example" }))
        {
            await AssertProblemAsync(response, HttpStatusCode.Forbidden, "Forbidden",
                "Origin 'http://evil.example' may not call the admin API; allowed origins are set in McpGuard:AllowedOrigins.");
        }

        using (var response = await host.SendAsync(HttpMethod.Get, "/admin/accounts/bob",
            headers: new Dictionary<string, string> { ["Origin"] = "http://127.0.0.1:5080" }))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, Account("bob", 240, null, 0, 3));
        }
    }

    [Fact]
    public async Task With_credits_disabled_the_admin_api_says_so_after_checking_the_key()
    {
        var configuration = Minimal();
        configuration["McpGuard:Credits:Enabled"] = "false";
        configuration["McpGuard:Admin:KeyHash"] = McpGuardApiKey.Hash(AdminKey);
        await using var host = await StartAppAsync(configuration);

        using (var response = await host.GetAdminAsync("/admin/accounts/zoe", key: null))
        {
            await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "Unauthorized", NeedsKey);
        }

        // The money endpoints need the ledger; the others work without it (CreditsOffTests).
        foreach (var (method, path) in new[] { ("GET", "/admin/accounts/zoe"), ("GET", "/admin/accounts/zoe/ledger"), ("POST", "/admin/accounts/zoe/topup"), ("POST", "/admin/accounts/zoe/adjust"), ("PUT", "/admin/accounts/zoe/cap") })
        {
            using var refused = method == "GET" ? await host.GetAdminAsync(path) : await host.SendAsync(new HttpMethod(method), path, """{"amount_micro":5,"note":"n","monthly_cap_micro":5}""", AdminKey);
            await AssertProblemAsync(refused, HttpStatusCode.Conflict, "Conflict",
                "Credits are disabled (McpGuard:Credits:Enabled is false): balances, caps and the ledger are not in use. Keys, suspensions and tool statuses work without them.");
        }

        using var paused = await host.PostAdminAsync("/admin/tools/add/pause");
        Assert.Equal(HttpStatusCode.OK, paused.StatusCode);
    }

    [Fact]
    public async Task A_bad_key_hash_and_an_empty_policy_fail_start_up_together()
    {
        var hash = McpGuardApiKey.Hash(AdminKey);
        var exception = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartSampleAsync(
            new Dictionary<string, string?>
            {
                ["McpGuard:Admin:KeyHash"] = hash.ToUpperInvariant(),
                ["McpGuard:Admin:Policy"] = " ",
            },
            inMemory: true));

        Assert.Equal(
            [
                "McpGuard:Admin:KeyHash must be the 64-character lowercase hex SHA-256 of the admin key (see McpGuardApiKey.Hash or the sample's 'hash' command).",
                "McpGuard:Admin:Policy must name an authorization policy (got ' ').",
            ],
            exception.Failures);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("916c248ade34eafd4a9ac7f6116e2a666ef8cc97b80bd7ec87de2fb2d7c4482")]
    [InlineData("916c248ade34eafd4a9ac7f6116e2a666ef8cc97b80bd7ec87de2fb2d7c44829a")]
    [InlineData("g16c248ade34eafd4a9ac7f6116e2a666ef8cc97b80bd7ec87de2fb2d7c44829")]
    public async Task A_key_hash_that_is_not_64_lowercase_hex_is_refused(string keyHash)
    {
        var configuration = Minimal();
        configuration["McpGuard:Admin:KeyHash"] = keyHash;

        var exception = await Assert.ThrowsAsync<OptionsValidationException>(() => StartAppAsync(configuration));

        Assert.Equal(
            ["McpGuard:Admin:KeyHash must be the 64-character lowercase hex SHA-256 of the admin key (see McpGuardApiKey.Hash or the sample's 'hash' command)."],
            exception.Failures);
    }

    [Fact]
    public async Task A_new_key_hash_takes_effect_on_reload_and_a_bad_one_keeps_the_last_good_key()
    {
        const string OldKey = "mcpg_admin_old";
        const string NewKey = "mcpg_admin_new";
        var directory = Directory.CreateTempSubdirectory("mcpguard-admin-").FullName;
        try
        {
            var file = Path.Combine(directory, "admin.json");
            await ReplaceAsync(file, $$"""{ "McpGuard": { "Admin": { "KeyHash": "{{McpGuardApiKey.Hash(OldKey)}}" } } }""");
            await using var host = await GuardedHost.StartSampleAsync(configure: builder => builder.ConfigureAppConfiguration((_, config) => config.AddJsonFile(file, optional: false, reloadOnChange: true)));
            using (var response = await host.GetAdminAsync("/admin/accounts/bob", key: OldKey))
            {
                await AssertJsonAsync(response, HttpStatusCode.OK, Account("bob", 240, null, 0, 3));
            }

            await ReplaceAsync(file, $$"""{ "McpGuard": { "Admin": { "KeyHash": "{{McpGuardApiKey.Hash(NewKey)}}" } } }""");
            await WaitForLogAsync(host, 1002);
            using (var response = await host.GetAdminAsync("/admin/accounts/bob", key: OldKey))
            {
                await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "Unauthorized", NeedsKey);
            }

            await ReplaceAsync(file, """{ "McpGuard": { "Admin": { "KeyHash": "not-a-hash" } } }""");
            await WaitForLogAsync(host, 1001);
            using (var response = await host.GetAdminAsync("/admin/accounts/bob", key: NewKey))
            {
                await AssertJsonAsync(response, HttpStatusCode.OK, Account("bob", 240, null, 0, 3));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        static Task ReplaceAsync(string path, string json) => ConfigFile.ReplaceAsync(path, json);

        // File watchers report changes asynchronously: wait for the reload's log event.
        static Task WaitForLogAsync(GuardedHost host, int eventId) => host.Logs.WaitForAsync(eventId, ConfigFile.ReloadBound);
    }

    /// <summary>The least configuration the admin API works with: API keys, in-memory credits, one seeded account (zoe, 500).</summary>
    private static Dictionary<string, string?> Minimal() => new()
    {
        ["McpGuard:Auth:Resource"] = "http://127.0.0.1:5080/mcp",
        ["McpGuard:Auth:ApiKeys:Enabled"] = "true",
        ["McpGuard:Credits:Enabled"] = "true",
        ["McpGuard:Store"] = "InMemory",
        ["McpGuard:Accounts:zoe:InitialBalance"] = "500",
        ["McpGuard:Tools:add:Price"] = "10",
    };

    private static Task<GuardedHost> StartAppAsync(Dictionary<string, string?> configuration, Action<WebApplicationBuilder>? build = null) =>
        GuardedHost.StartAsync(
            builder =>
            {
                builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
                builder.Services.AddAuthorization();
                build?.Invoke(builder);
            },
            app => app.MapMcpGuardAdmin("/admin"),
            configuration);

    /// <summary>A test scheme: <c>X-Test-User</c> names the user, <c>X-Test-Role</c> gives a role.</summary>
    private sealed class HeaderAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        public const string SchemeName = "TestHeader";

        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            if (Request.Headers["X-Test-User"] is not { Count: 1 } user)
            {
                return Task.FromResult(AuthenticateResult.NoResult());
            }

            var claims = new List<Claim> { new(ClaimTypes.Name, user[0]!) };
            claims.AddRange(Request.Headers["X-Test-Role"].Select(role => new Claim(ClaimTypes.Role, role!)));
            var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName)));
        }
    }
}
