using System.Diagnostics;
using McpGuard.Gateway;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tests.Interop;

namespace McpGuard.Tests.Gateway;

/// <summary>How <c>mcpguard-gateway</c> starts, and how it refuses to: the real program, run as a process.</summary>
public sealed class GatewayStartTests
{
    private static string GatewayDll => Path.Combine(AppContext.BaseDirectory, "McpGuard.Gateway.dll");

    [Fact]
    public async Task Without_an_upstream_or_keys_the_gateway_exits_with_a_clear_message()
    {
        var folder = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "mcpguard-gateway-tests", Guid.NewGuid().ToString("N"))).FullName;

        var (exitCode, stdout, stderr) = await TypeScriptInteropTests.RunAsync("dotnet", [GatewayDll, "--urls", "http://127.0.0.1:0"], folder, TimeSpan.FromSeconds(60));

        Assert.Equal(2, exitCode);
        Assert.Equal(string.Empty, stdout);
        Assert.Equal(
            """
            mcpguard-gateway cannot start:
              - No upstream: pass --upstream <url> (for example --upstream http://127.0.0.1:3001/mcp) or set McpGuard:Upstream:Url in appsettings.json.
              - No keys: a gateway lets no anonymous caller through. Turn on API keys (McpGuard:Auth:ApiKeys:Enabled=true) with keys in McpGuard:Auth:ApiKeys:Keys (hashes from 'mcpguard-gateway keygen') or an admin key (McpGuard:Admin:KeyHash) to create them with the admin API, or OAuth tokens (McpGuard:Auth:Jwt).
            Run 'mcpguard-gateway --help' for usage; the manual is docs/gateway.md.

            """.ReplaceLineEndings(),
            stderr);
    }

    [Fact]
    public async Task A_setting_that_is_present_but_wrong_is_reported_with_every_other_problem()
    {
        var folder = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "mcpguard-gateway-tests", Guid.NewGuid().ToString("N"))).FullName;

        var (exitCode, _, stderr) = await TypeScriptInteropTests.RunAsync(
            "dotnet",
            [GatewayDll, "--urls", "http://127.0.0.1:0", "--upstream", "localhost:3001", "--McpGuard:Admin:KeyHash", McpGuardApiKey.Hash("mcpg_admin"),
                "--McpGuard:Auth:ApiKeys:Enabled", "true", "--McpGuard:Auth:Resource", "http://127.0.0.1/mcp", "--McpGuard:Upstream:ConnectTimeout", "00:10:00"],
            folder, TimeSpan.FromSeconds(60));

        Assert.Equal(2, exitCode);
        Assert.Equal(
            """
            mcpguard-gateway cannot start: the configuration is not valid:
              - McpGuard:Upstream:Url must be an absolute http or https URL without query, fragment or user info, for example 'http://127.0.0.1:3001/mcp' (got 'localhost:3001').
              - McpGuard:Upstream:ConnectTimeout must be between 00:00:00.1 and 00:05:00 (got '00:10:00').

            """.ReplaceLineEndings(),
            stderr);
    }

    [Theory]
    [InlineData("an admin key, API keys off", new[] { "--McpGuard:Admin:KeyHash", "916c248ade34eafd4a9ac7f6116e2a666ef8cc97b80bd7ec87de2fb2d7c44829" })]
    [InlineData("key entries, API keys off", new[] { "--McpGuard:Auth:ApiKeys:Keys:0:Id", "k", "--McpGuard:Auth:ApiKeys:Keys:0:Account", "a", "--McpGuard:Auth:ApiKeys:Keys:0:Hash", "916c248ade34eafd4a9ac7f6116e2a666ef8cc97b80bd7ec87de2fb2d7c44829" })]
    [InlineData("API keys on, no key and no admin key", new[] { "--McpGuard:Auth:ApiKeys:Enabled", "true" })]
    public async Task A_gateway_that_would_let_everyone_in_does_not_start(string name, string[] settings)
    {
        var folder = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "mcpguard-gateway-tests", Guid.NewGuid().ToString("N"))).FullName;

        var (exitCode, _, stderr) = await TypeScriptInteropTests.RunAsync(
            "dotnet", [GatewayDll, "--urls", "http://127.0.0.1:0", "--upstream", "http://127.0.0.1:1/mcp", .. settings], folder, TimeSpan.FromSeconds(60));

        Assert.True(exitCode == 2, name);
        Assert.Equal(
            """
            mcpguard-gateway cannot start:
              - No keys: a gateway lets no anonymous caller through. Turn on API keys (McpGuard:Auth:ApiKeys:Enabled=true) with keys in McpGuard:Auth:ApiKeys:Keys (hashes from 'mcpguard-gateway keygen') or an admin key (McpGuard:Admin:KeyHash) to create them with the admin API, or OAuth tokens (McpGuard:Auth:Jwt).
            Run 'mcpguard-gateway --help' for usage; the manual is docs/gateway.md.

            """.ReplaceLineEndings(),
            stderr);
    }

    [Fact]
    public async Task Keygen_prints_a_key_and_the_hash_to_configure()
    {
        var output = new StringWriter();

        var exitCode = await GatewayApp.RunAsync(["keygen", "--prefix", "gw"], output, TextWriter.Null);

        Assert.Equal(0, exitCode);
        var lines = output.ToString().Split(Environment.NewLine);
        var key = Assert.Single(lines, l => l.StartsWith("key:  gw_", StringComparison.Ordinal))["key:  ".Length..];
        Assert.Equal("hash: " + McpGuardApiKey.Hash(key), lines[1]);
    }

    [Fact]
    public void The_upstream_shortcut_becomes_the_configuration_key()
    {
        Assert.Equal(
            ["--McpGuard:Upstream:Url", "http://a/mcp", "--urls", "http://127.0.0.1:0", "--McpGuard:Upstream:Url=http://b/mcp", "--McpGuard:Path", "/x"],
            GatewayApp.ExpandShortcuts(["--upstream", "http://a/mcp", "--urls", "http://127.0.0.1:0", "--upstream=http://b/mcp", "--McpGuard:Path", "/x"]));
    }

    [Fact]
    public async Task The_gateway_reads_appsettings_json_from_its_working_folder_and_serves_the_admin_api_and_health()
    {
        await using var upstream = await EverythingServer.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(
            GatewayEverythingTests.AppSettings().Replace("\"Credits\"", $"\"Admin\": {{ \"KeyHash\": \"{McpGuardApiKey.Hash("mcpg_admin_secret")}\" }},\n    \"Credits\"", StringComparison.Ordinal),
            "--upstream", upstream.Url.ToString());

        using var admin = new HttpRequestMessage(HttpMethod.Get, "/admin/accounts/alice");
        admin.Headers.TryAddWithoutValidation("Authorization", "Bearer mcpg_admin_secret");
        using var account = await gateway.Client.SendAsync(admin);
        using var health = await gateway.Client.GetAsync("/health");

        Assert.Equal(System.Net.HttpStatusCode.OK, account.StatusCode);
        Assert.Equal(
            """{"id":"alice","balance_micro":1000000,"monthly_cap_micro":null,"spent_this_month_micro":0,"free_calls_left":0,"status":"active"}""",
            await account.Content.ReadAsStringAsync());
        Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("Healthy", await health.Content.ReadAsStringAsync());

        // The dashboard's page (its data comes from the admin API, with the admin key).
        using var dashboard = await gateway.Client.GetAsync("/admin/ui");
        Assert.Equal(System.Net.HttpStatusCode.OK, dashboard.StatusCode);
        Assert.Equal("text/html; charset=utf-8", dashboard.Content.Headers.ContentType?.ToString());

        // McpGuard's metrics, in Prometheus text format, behind the admin key.
        using var list = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""", System.Text.Encoding.UTF8, "application/json") };
        list.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");
        using (var refused = await gateway.Client.SendAsync(list))
        {
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        using var anonymous = await gateway.Client.GetAsync("/admin/metrics");
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using var scrape = new HttpRequestMessage(HttpMethod.Get, "/admin/metrics");
        scrape.Headers.TryAddWithoutValidation("Authorization", "Bearer mcpg_admin_secret");
        using var metrics = await gateway.Client.SendAsync(scrape);
        Assert.Equal(System.Net.HttpStatusCode.OK, metrics.StatusCode);
        Assert.StartsWith("text/plain", metrics.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        Assert.Contains(
            """mcpguard_requests_total{otel_scope_name="McpGuard",otel_scope_version="0.1.0",mcp_method_name="tools/list",mcpguard_outcome="refused",mcpguard_reason="unauthorized"} 1""",
            (await metrics.Content.ReadAsStringAsync()).Split('\n'));
    }
}
