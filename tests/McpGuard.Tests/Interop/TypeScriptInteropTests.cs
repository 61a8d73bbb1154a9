using System.Diagnostics;
using System.Text.Json;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using ModelContextProtocol.AspNetCore;

namespace McpGuard.Tests.Interop;

/// <summary>
/// The official TypeScript MCP SDK client (tests/interop-ts, run with Node.js 20) against the sample on a real port:
/// an API-key session, the SDK's own parsing of our challenge, RFC 9728 discovery and resource check, and its full
/// OAuth flow through a real authorization server. Needs <c>node</c> on PATH; installs the pinned SDK with
/// <c>npm ci</c> when tests/interop-ts/node_modules is missing.
/// </summary>
public sealed class TypeScriptInteropTests
{
    private const string AllScopes = "tools:basic tools:premium";
    private const string EchoText = "hello from TypeScript";
    private static readonly TimeSpan ScriptTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(4);
    private static readonly SemaphoreSlim InstallLock = new(1, 1);

    [Fact]
    public async Task TypeScript_client_calls_tools_with_an_api_key_and_accepts_our_challenge_and_metadata()
    {
        var (host, log, resource) = await OAuthResourceServer.StartAsync(authorizationServer: null);
        await using var _ = host;

        var output = await RunScriptAsync(host.McpEndpoint.ToString(), DemoKeys.Alice);

        // (a) A session with the API key.
        Assert.Equal(["add", "echo", "fail", "premium_report", "search", "slow"], Strings(output.GetProperty("tools")));
        AssertEcho(output.GetProperty("echo"));

        // (b) Our 401, as the SDK parses it (first Bearer challenge, comma-separated parameters).
        var metadataUrl = $"{host.BaseAddress.GetLeftPart(UriPartial.Authority)}/.well-known/oauth-protected-resource/mcp";
        var challenge = output.GetProperty("challenge");
        Assert.Equal(401, challenge.GetProperty("status").GetInt32());
        Assert.Equal($"Bearer resource_metadata=\"{metadataUrl}\", scope=\"{AllScopes}\"", challenge.GetProperty("wwwAuthenticate").GetString());
        Assert.Equal(metadataUrl, challenge.GetProperty("resourceMetadataUrl").GetString());
        Assert.Equal(AllScopes, challenge.GetProperty("scope").GetString());
        Assert.Equal(JsonValueKind.Null, challenge.GetProperty("error").ValueKind);

        // The metadata the SDK fetched and validated (its zod schema) and the resource it would send to an authorization server.
        var metadata = output.GetProperty("metadata");
        Assert.Equal(
            ["authorization_servers", "bearer_methods_supported", "resource", "resource_name", "scopes_supported"],
            metadata.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(resource, metadata.GetProperty("resource").GetString());
        Assert.Equal(["http://127.0.0.1:5080/dev-issuer"], Strings(metadata.GetProperty("authorization_servers")));
        Assert.Equal(["tools:basic", "tools:premium"], Strings(metadata.GetProperty("scopes_supported")));
        Assert.Equal(["header"], Strings(metadata.GetProperty("bearer_methods_supported")));
        Assert.Equal("McpGuard sample", metadata.GetProperty("resource_name").GetString());
        var check = output.GetProperty("resourceCheck");
        Assert.True(check.GetProperty("allowed").GetBoolean());
        Assert.Equal(resource, check.GetProperty("requestedResource").GetString());
        Assert.Equal(resource, check.GetProperty("selectedResource").GetString());

        // The server's view: the key authenticated every request of the session (initialize, notifications/initialized,
        // tools/list, tools/call; the SDK's GET for a standalone SSE stream, if sent before the session closes, gets 405
        // from this POST-only endpoint); the raw POST without credentials got the 401, and the SDK then read our metadata.
        var key = $"Bearer {DemoKeys.Alice}";
        Assert.Equal(
            [(key, 200), (key, 202), (key, 200), (key, 200), ("", 401)],
            log.Entries.Where(r => r.Method == "POST" && r.Path == "/mcp").Select(r => (r.Authorization, r.StatusCode)));
        Assert.Equal(
            [("/.well-known/oauth-protected-resource/mcp", "", 200)],
            log.Entries.Where(r => r.Method == "GET" && r.Path != "/mcp").Select(r => (r.Path, r.Authorization, r.StatusCode)));
        Assert.All(log.Entries.Where(r => r.Method == "GET" && r.Path == "/mcp"), r => Assert.Equal((key, 405), (r.Authorization, r.StatusCode)));
    }

    [Fact]
    public async Task TypeScript_client_completes_its_oauth_flow_through_our_metadata_and_calls_tools()
    {
        await using var authorizationServer = await TestAuthorizationServer.StartAsync();
        var (host, log, resource) = await OAuthResourceServer.StartAsync(authorizationServer);
        await using var _ = host;

        var output = await RunScriptAsync("--oauth", host.McpEndpoint.ToString());

        Assert.Equal(["add", "echo", "fail", "premium_report", "search", "slow"], Strings(output.GetProperty("tools")));
        AssertEcho(output.GetProperty("echo"));
        Assert.Equal("dcr-client-1", output.GetProperty("clientId").GetString());
        Assert.Equal(AllScopes, output.GetProperty("grantedScope").GetString());
        var authorization = Assert.Single(output.GetProperty("authorizations").EnumerateArray().ToList());
        Assert.Equal(resource, authorization.GetProperty("resource").GetString());
        Assert.Equal(AllScopes, authorization.GetProperty("scope").GetString());
        Assert.Equal("S256", authorization.GetProperty("code_challenge_method").GetString());

        // The authorization server saw the SDK's discovery, registration, authorization and token requests for our
        // resource (finishAuth() discovers the authorization server again before exchanging the code).
        Assert.Equal(
            [
                "GET /.well-known/oauth-authorization-server 200", "POST /register 201", "GET /authorize 302",
                "GET /.well-known/oauth-authorization-server 200", "POST /token 200",
            ],
            authorizationServer.Requests.Select(r => $"{r.Method} {r.Path} {r.StatusCode}"));
        Assert.Equal(resource, authorizationServer.RequestsTo("/token")[0].Parameters["resource"]);
        var issued = Assert.Single(authorizationServer.IssuedTokens);
        Assert.Equal([resource], new JsonWebToken(issued.AccessToken).Audiences);

        // The server's view: the 401 with the challenge; our metadata read (by auth() and again by finishAuth());
        // then every request of the session carried the issued token.
        var metadataUrl = $"{host.BaseAddress.GetLeftPart(UriPartial.Authority)}/.well-known/oauth-protected-resource/mcp";
        var bearer = $"Bearer {issued.AccessToken}";
        var posts = log.Entries.Where(r => r.Method == "POST" && r.Path == "/mcp").ToList();
        Assert.Equal([("", 401), (bearer, 200), (bearer, 202), (bearer, 200), (bearer, 200)], posts.Select(r => (r.Authorization, r.StatusCode)));
        Assert.Equal($"Bearer resource_metadata=\"{metadataUrl}\", scope=\"{AllScopes}\"", posts[0].WwwAuthenticate);
        Assert.Equal(
            [("/.well-known/oauth-protected-resource/mcp", "", 200), ("/.well-known/oauth-protected-resource/mcp", "", 200)],
            log.Entries.Where(r => r.Method == "GET" && r.Path != "/mcp").Select(r => (r.Path, r.Authorization, r.StatusCode)));
        Assert.All(log.Entries.Where(r => r.Method == "GET" && r.Path == "/mcp"), r => Assert.Equal((bearer, 405), (r.Authorization, r.StatusCode)));
    }

    /// <summary>
    /// The integration suite's cases (see MapMcpClientTests) with the TypeScript client, which speaks 2025-11-25 (the
    /// <c>initialize</c> handshake), against MapMcp() in each session mode: the results it reports, and the exact
    /// status, headers and body of each exchange it made.
    /// </summary>
    [Theory]
    [InlineData(HttpServerSessionMode.Stateless)]
    [InlineData(HttpServerSessionMode.Stateful)]
    [InlineData(HttpServerSessionMode.StatefulForInitializeClients)]
    public async Task TypeScript_client_runs_the_same_cases(HttpServerSessionMode mode)
    {
        var configuration = new Dictionary<string, string?>
        {
            ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "3",
            ["McpGuard:Accounts:bob:FreeCallsPerMonth"] = "0",
        };
        await using var host = await GuardedHost.StartSampleAsync(configuration, builder => builder.ConfigureServices(services =>
        {
            services.AddSingleton<TimeProvider>(new FakeTimeProvider(new DateTimeOffset(2026, 11, 21, 10, 0, 30, TimeSpan.Zero)));
            services.Configure<HttpServerTransportOptions>(options => options.SessionMode = mode);
        }));

        var output = await RunScriptAsync("--cases", host.McpEndpoint.ToString(), DemoKeys.Alice, DemoKeys.Bob);
        var alice = output.GetProperty("alice");
        var bob = output.GetProperty("bob");
        var anonymous = output.GetProperty("anonymous");

        // The handshake, and a session where the server keeps them.
        Assert.Equal("2025-11-25", alice.GetProperty("protocolVersion").GetString());
        Assert.Equal(mode == HttpServerSessionMode.Stateless, alice.GetProperty("sessionId").ValueKind == JsonValueKind.Null);

        // tools/list, filtered by scope.
        Assert.Equal(["add", "echo", "fail", "premium_report", "search", "slow"], Strings(alice.GetProperty("tools")));
        Assert.Equal(["add", "echo", "fail", "search", "slow"], Strings(bob.GetProperty("tools")));

        // A free call: no charge headers.
        Assert.Equal("hello", ResultText(alice.GetProperty("free")));
        var free = ToolExchange(alice, "echo", 0);
        Assert.Equal(200, free.GetProperty("status").GetInt32());
        WireAssert.IsGeneratedRequestId(HeaderOf(free, "x-request-id")!);
        Assert.Null(HeaderOf(free, "mcpguard-charge-micro"));

        // A priced call: charged once, with the charge headers.
        Assert.Equal("5", ResultText(alice.GetProperty("priced")));
        var priced = ToolExchange(alice, "add", 0);
        Assert.Equal("800", HeaderOf(priced, "mcpguard-charge-micro"));
        Assert.Equal("999200", HeaderOf(priced, "mcpguard-balance-micro"));

        // A tool error: an isError result; the tool answered, so its charge stands.
        var toolError = alice.GetProperty("toolError").GetProperty("result");
        Assert.True(toolError.GetProperty("isError").GetBoolean());
        Assert.Equal(
            "**Error code:** not_found\nThe requested item was not found.\nCheck the identifier (list or search first), then call again with one that exists.",
            toolError.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("100", HeaderOf(ToolExchange(alice, "fail", 0), "mcpguard-charge-micro"));

        // The call past the limit (three a minute here): 429 with Retry-After.
        var limited = ToolExchange(alice, "echo", 1);
        AssertRefusal(alice.GetProperty("limited"), limited, 429, null,
            $$$$"""{"jsonrpc":"2.0","id":{{{{limited.GetProperty("id").GetInt32()}}}},"error":{"code":-31201,"message":"Rate limit exceeded: retry after 30 s.","data":{"reason":"rate_limited","request_id":"{{{{HeaderOf(limited, "x-request-id")}}}}","retry_after":30,"limit":"default-1m"}}}""");
        Assert.Equal("30", HeaderOf(limited, "retry-after"));

        // Outside bob's scopes: 403 with the step-up challenge.
        var outOfScope = ToolExchange(bob, "premium_report", 0);
        AssertRefusal(bob.GetProperty("outOfScope"), outOfScope, 403,
            "Bearer error=\"insufficient_scope\", scope=\"tools:premium\", resource_metadata=\"http://127.0.0.1:5080/.well-known/oauth-protected-resource/mcp\"",
            $$$$"""{"jsonrpc":"2.0","id":{{{{outOfScope.GetProperty("id").GetInt32()}}}},"error":{"code":-31103,"message":"Insufficient scope: this call needs tools:premium.","data":{"reason":"insufficient_scope","request_id":"{{{{HeaderOf(outOfScope, "x-request-id")}}}}","scope":"tools:premium"}}}""");

        // A call bob cannot pay for: 402 out_of_credit, nothing charged.
        var outOfCredit = ToolExchange(bob, "add", 0);
        AssertRefusal(bob.GetProperty("outOfCredit"), outOfCredit, 402, null,
            $$$$"""{"jsonrpc":"2.0","id":{{{{outOfCredit.GetProperty("id").GetInt32()}}}},"error":{"code":-32402,"message":"Insufficient credit","data":{"reason":"out_of_credit","request_id":"{{{{HeaderOf(outOfCredit, "x-request-id")}}}}","balance_micro":240,"price_micro":800,"topup_url":"https://billing.example.com/topup"}}}""");

        // No key: 401 with the challenge, on the first request.
        var unauthorized = Assert.Single(anonymous.GetProperty("exchanges").EnumerateArray());
        Assert.Equal("initialize", unauthorized.GetProperty("mcpMethod").GetString());
        AssertRefusal(anonymous.GetProperty("connect"), unauthorized, 401,
            "Bearer resource_metadata=\"http://127.0.0.1:5080/.well-known/oauth-protected-resource/mcp\", scope=\"tools:basic tools:premium\"",
            $$$$"""{"jsonrpc":"2.0","id":{{{{unauthorized.GetProperty("id").GetInt32()}}}},"error":{"code":-31101,"message":"invalid or expired API key","data":{"reason":"unauthorized","request_id":"{{{{HeaderOf(unauthorized, "x-request-id")}}}}"}}}""");

        // The session's stream, where there is one, is guarded too; stateless MapMcp() has no GET, and the guard answers 405.
        var streams = alice.GetProperty("exchanges").EnumerateArray().Where(e => e.GetProperty("httpMethod").GetString() == "GET").ToList();
        Assert.All(streams, stream =>
        {
            Assert.Equal(mode == HttpServerSessionMode.Stateless ? 405 : 200, stream.GetProperty("status").GetInt32());
            WireAssert.IsGeneratedRequestId(HeaderOf(stream, "x-request-id")!);
        });

        var ledger = CreditCalls.LedgerPath(host);
        Assert.Equal(999_100, LedgerFile.Balance(ledger, "alice"));
        Assert.Equal(DemoKeys.BobBalance, LedgerFile.Balance(ledger, "bob"));
    }

    private static string ResultText(JsonElement attempt)
    {
        var result = attempt.GetProperty("result");
        Assert.False(result.TryGetProperty("isError", out var isError) && isError.GetBoolean(), result.GetRawText());
        return Assert.Single(result.GetProperty("content").EnumerateArray().ToList()).GetProperty("text").GetString()!;
    }

    /// <summary>The <paramref name="index"/>th tools/call of <paramref name="tool"/> that a client's run made.</summary>
    private static JsonElement ToolExchange(JsonElement client, string tool, int index) =>
        client.GetProperty("exchanges").EnumerateArray()
            .Where(e => e.GetProperty("mcpMethod").GetString() == "tools/call" && e.GetProperty("tool").GetString() == tool)
            .ElementAt(index);

    private static string? HeaderOf(JsonElement exchange, string name) =>
        exchange.GetProperty("headers").TryGetProperty(name, out var value) ? value.GetString() : null;

    /// <summary>A refused call: what the SDK threw (its error carries our body), and the exact response.</summary>
    private static void AssertRefusal(JsonElement attempt, JsonElement exchange, int status, string? challenge, string body)
    {
        Assert.False(attempt.TryGetProperty("result", out _), attempt.GetRawText());
        var error = attempt.GetProperty("error");
        Assert.Equal("StreamableHTTPError", error.GetProperty("name").GetString());
        Assert.Equal(status, error.GetProperty("code").GetInt32());
        Assert.Equal($"Streamable HTTP error: Error POSTing to endpoint: {exchange.GetProperty("body").GetString()}", error.GetProperty("message").GetString());
        Assert.Equal(status, exchange.GetProperty("status").GetInt32());
        Assert.Equal(challenge, HeaderOf(exchange, "www-authenticate"));
        Assert.Equal("application/json; charset=utf-8", HeaderOf(exchange, "content-type"));
        Assert.Equal("no-store", HeaderOf(exchange, "cache-control"));
        WireAssert.JsonEquals(body, exchange.GetProperty("body").GetString()!);
    }

    private static void AssertEcho(JsonElement echo)
    {
        Assert.False(echo.TryGetProperty("isError", out var isError) && isError.GetBoolean());
        var content = Assert.Single(echo.GetProperty("content").EnumerateArray().ToList());
        Assert.Equal("text", content.GetProperty("type").GetString());
        Assert.Equal(EchoText, content.GetProperty("text").GetString());
    }

    private static string[] Strings(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetString()!)];

    /// <summary>Runs tests/interop-ts/interop.mjs with a 60-second limit and parses the JSON it prints.</summary>
    internal static async Task<JsonElement> RunScriptAsync(params string[] arguments)
    {
        var node = FindOnPath(OperatingSystem.IsWindows() ? ["node.exe"] : ["node"])
            ?? throw new Xunit.Sdk.XunitException(
                "Node.js was not found on PATH. The TypeScript interop tests need Node.js 20 (https://nodejs.org/): install it, "
                + "then run `npm ci --prefix tests/interop-ts` (or let this test do it) and run the tests again.");
        var folder = Path.Combine(RepositoryRoot(), "tests", "interop-ts");
        await EnsurePackagesAsync(folder);

        var (exitCode, stdout, stderr) = await RunAsync(node, [Path.Combine(folder, "interop.mjs"), .. arguments], folder, ScriptTimeout);
        Assert.True(exitCode == 0, $"interop.mjs exited with {exitCode}.\nstderr:\n{stderr}\nstdout:\n{stdout}");
        using var document = JsonDocument.Parse(stdout);
        return document.RootElement.Clone();
    }

    private static async Task EnsurePackagesAsync(string folder)
    {
        var sdk = Path.Combine(folder, "node_modules", "@modelcontextprotocol", "sdk", "package.json");
        await InstallLock.WaitAsync();
        try
        {
            if (File.Exists(sdk))
            {
                return;
            }

            var npm = FindOnPath(OperatingSystem.IsWindows() ? ["npm.cmd", "npm.exe"] : ["npm"])
                ?? throw new Xunit.Sdk.XunitException("npm was not found on PATH (it ships with Node.js 20): it is needed once to install tests/interop-ts.");
            var (exitCode, stdout, stderr) = await RunAsync(npm, ["ci", "--no-audit", "--no-fund"], folder, InstallTimeout);
            Assert.True(exitCode == 0 && File.Exists(sdk), $"`npm ci` in {folder} failed with {exitCode}.\nstderr:\n{stderr}\nstdout:\n{stdout}");
        }
        finally
        {
            InstallLock.Release();
        }
    }

    internal static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string fileName, string[] arguments, string workingDirectory, TimeSpan limit)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new Xunit.Sdk.XunitException(
                $"{Path.GetFileName(fileName)} {string.Join(' ', arguments)} did not finish within {limit.TotalSeconds} s.\nstderr:\n{await stderr}\nstdout:\n{await stdout}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    private static string? FindOnPath(string[] names)
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var name in names)
            {
                var candidate = Path.Combine(directory, name);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "McpGuard.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No McpGuard.sln above {AppContext.BaseDirectory}.");
    }
}
